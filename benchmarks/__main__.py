"""`python -m benchmarks [--out build/bench] [--threads 2] [--quick]`: run every benchmark, write JSON + README.md."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from ptm_lib.report import repo_root

from . import course_times, inference, machine, mlm, report


def run(out: Path, threads: int = 2, quick: bool = False, results_dir: Path | None = None,
        parts=("course", "mlm", "inference"), device: str = "cpu") -> dict:
    """Run the benchmarks, write `out`/<part>.json, `out`/results.json and `out`/README.md; return everything.
    `device`: where the training steps and the matmul peak run ("cuda" on a GPU machine); the int8
    inference benchmark is CPU-only (dynamic quantisation has CPU kernels only)."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    info = machine.machine_info(threads, device)
    big = (2048, 4096, 8192) if torch.device(device).type == "cuda" else (512, 1024, 2048)
    info.update(machine.matmul_peak_gflops(sizes=(256,) if quick else big, device=device))
    results = {"machine": info}
    _write(out / "machine.json", info)
    if "course" in parts:
        results["course"] = course_times.course_wall_times(results_dir or repo_root() / "build" / "results")
        _write(out / "course.json", results["course"])
    if "mlm" in parts:
        results["mlm"] = {}
        for name, size in mlm.sizes(quick).items():
            print(f"masked-LM training step, {name} ...", flush=True)
            results["mlm"][name] = mlm.bench_size(size, info["peak_gflops"], rounds=2 if quick else 5,
                                                  repeats=1 if quick else 2, device=device)
        _write(out / "mlm.json", results["mlm"])
    if "inference" in parts:
        print("inference fp32 / int8 ...", flush=True)
        results["inference"] = inference.bench_inference(threads=threads, rounds=2 if quick else 5,
                                                         repeats=2 if quick else 10)
        _write(out / "inference.json", results["inference"])
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    _write(out / "results.json", results)
    (out / "README.md").write_text(report.markdown(results))
    return results


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--out", type=Path, default=repo_root() / "build" / "bench")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: seconds (for the tests)")
    parser.add_argument("--results", type=Path, default=None,
                        help="the course runner's results folder (default build/results)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--parts", nargs="+", default=["course", "mlm", "inference"],
                        choices=["course", "mlm", "inference"])
    args = parser.parse_args(argv)
    run(args.out, args.threads, args.quick, args.results, tuple(args.parts), args.device)
    print(f"wrote {args.out}/README.md and {args.out}/*.json")
    print((args.out / "README.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
