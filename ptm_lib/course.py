"""Run the course headless, and keep the committed notebooks' outputs honest.

    python -m ptm_lib.course run [--smoke] [--seed N] [NOTEBOOK ...]
        Execute notebooks with papermill, each in a fresh `python3` kernel whose working
        directory is the notebook's folder. Executed copies go to build/notebooks/, each
        lesson's results to build/results/<stem>.json, and a status table to
        build/results/summary.json. Exit status 1 if any notebook failed.

    python -m ptm_lib.course execute [NOTEBOOK ...]
        Re-run notebooks in full (default) mode and write the outputs back into notebooks/,
        stamped with a hash of the code cells (`make execute`). `stale_reasons` uses the stamp
        to tell when committed outputs no longer match the code.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .report import repo_root

STAMP_KEY = "ptm_course"

CHAPTERS = [  # (essay section, notebook stem, what the lesson does)
    ("-", "00_start_here", "how to use the course; a first 30-second experiment"),
    ("§1 Background", "01_why_pretrain", "the limits of end-to-end training, measured"),
    ("§2 Core concepts", "02_concepts", "pretraining, fine-tuning, transfer; encoder/decoder families; objectives"),
    ("§3 Algorithm", "03_pipeline", "pretrain a mini-BERT, fine-tune it, and measure label efficiency"),
    ("§4 Maths", "04_maths", "cross-entropy, softmax gradients, perplexity; the essay's formulas corrected"),
    ("§5 Project practice", "05_essay_code_fixed", "the essay's code run as printed, then fixed and pretrained"),
    ("§6 Applications", "06_applications", "BERT-, ResNet- and wav2vec-style pretraining"),
    ("§7 Tools", "07_tools", "the tools and papers the essay cites, with the citations corrected"),
    ("§8 Trends and challenges", "08_trends", "compression, adaptive optimisation, multimodal, privacy, interpretability"),
    ("§9 FAQ", "09_faq", "the essay's questions answered with experiments"),
]


def chapter_map() -> str:
    """The essay-section -> notebook map as a Markdown table, marking chapters not written yet."""
    lines = ["| essay section | notebook | what you do there |", "|---|---|---|"]
    for section, stem, what in CHAPTERS:
        exists = (notebooks_dir() / f"{stem}.ipynb").exists()
        lines.append(f"| {section} | `{stem}.ipynb`{'' if exists else ' (planned)'} | {what} |")
    return "\n".join(lines)
RUNNER_PARAMETERS = ("SMOKE", "SEED")


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def list_notebooks(names: list[str] | None = None) -> list[Path]:
    """Notebook paths: all of notebooks/*.ipynb, or the given names/paths (stem or file)."""
    if not names:
        return sorted(notebooks_dir().glob("[0-9]*.ipynb"))
    paths = []
    for name in names:
        p = Path(name)
        if not p.exists():
            p = notebooks_dir() / (name if name.endswith(".ipynb") else f"{name}.ipynb")
        if not p.exists():
            raise FileNotFoundError(f"no notebook {name!r}; choose from {[q.stem for q in list_notebooks()]}")
        paths.append(p.resolve())
    return paths


def code_hash(nb) -> str:
    """sha256 of the notebook's code cells (papermill's injected-parameters cell excluded)."""
    sources = [c.source for c in nb.cells
               if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def _kernel_env(results: Path, smoke: bool | None) -> dict:
    env = dict(os.environ)
    env["PTM_RESULTS_DIR"] = str(results)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # kernel = this env's python
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env.pop("PTM_SMOKE", None)
    if smoke:
        env["PTM_SMOKE"] = "1"
    return env


EXPECTED_ERROR_TAG = "raises-exception"  # also honoured by nbclient and nbval


def _raise_for_unexpected_errors(papermill_check, nb, output_path):
    """papermill fails a run on any error output. Cells tagged `raises-exception` (a lesson showing
    that some code fails) are expected to fail, so their errors are hidden from that check."""
    expected = [c for c in nb.cells if EXPECTED_ERROR_TAG in c.get("metadata", {}).get("tags", [])]
    saved = [(c.get("outputs", []), dict(c.metadata.get("papermill", {}))) for c in expected]
    for cell in expected:
        cell.outputs = [o for o in cell.get("outputs", []) if o.get("output_type") != "error"]
        cell.metadata.get("papermill", {}).pop("exception", None)
    try:
        papermill_check(nb, output_path)
    finally:
        for cell, (outputs, meta) in zip(expected, saved):
            cell.outputs = outputs
            if meta:
                cell.metadata["papermill"] = meta


def run_notebook(path: Path, out_path: Path, *, parameters: dict | None, results: Path,
                 smoke: bool | None = None, timeout: int = 600) -> dict:
    """Execute one notebook with papermill; return {"notebook", "status", "wall_s", "error"}.

    A cell tagged `raises-exception` may fail (the lesson shows an error); any other error fails the run.
    """
    import papermill as pm
    import papermill.execute as pm_execute

    old_env, kernel_env = dict(os.environ), _kernel_env(results, smoke)
    os.environ.clear()
    os.environ.update(kernel_env)  # papermill's kernel inherits this process's env
    t0 = time.perf_counter()
    status, error = "ok", None
    papermill_check = pm_execute.raise_for_execution_errors
    pm_execute.raise_for_execution_errors = functools.partial(_raise_for_unexpected_errors, papermill_check)
    try:
        pm.execute_notebook(str(path), str(out_path), parameters=parameters, kernel_name="python3",
                            cwd=str(path.parent), progress_bar=False, execution_timeout=timeout)
    except Exception as e:  # PapermillExecutionError carries the cell's traceback
        status, error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    finally:
        pm_execute.raise_for_execution_errors = papermill_check
        os.environ.clear()
        os.environ.update(old_env)
    return {"notebook": path.stem, "status": status, "wall_s": round(time.perf_counter() - t0, 2), "error": error}


def run(names: list[str] | None = None, *, smoke: bool = False, seed: int = 0, timeout: int = 600,
        build: Path | None = None) -> list[dict]:
    """Execute notebooks into `build` (default <course>/build) and print a status table; return the rows."""
    build = Path(build or repo_root() / "build")
    out_dir, results = build / "notebooks", build / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in list_notebooks(names):
        print(f"running {path.stem} ({'smoke' if smoke else 'full'}, seed {seed}) ...", flush=True)
        row = run_notebook(path, out_dir / path.name, parameters={"SMOKE": smoke, "SEED": seed},
                           results=results, smoke=smoke, timeout=timeout)
        row["results"] = str(results / f"{path.stem}.json")
        rows.append(row)
    summary = {"mode": "smoke" if smoke else "full", "seed": seed, "notebooks": rows}
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(format_table(rows))
    return rows


def format_table(rows: list[dict]) -> str:
    width = max([len(r["notebook"]) for r in rows] + [8])
    lines = [f"{'notebook':<{width}}  status  wall_s", f"{'-' * width}  ------  ------"]
    for r in rows:
        lines.append(f"{r['notebook']:<{width}}  {r['status']:<6}  {r['wall_s']:>6.1f}")
        if r["error"]:
            lines.append(f"{'':<{width}}  {r['error']}")
    return "\n".join(lines)


def execute_in_place(path: Path, timeout: int = 600) -> dict:
    """Run `path` in full default mode and save its outputs into the notebook, stamped."""
    root = repo_root()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / path.name
        row = run_notebook(path, out, parameters=None, results=root / "build" / "results",
                           smoke=False, timeout=timeout)
        if row["status"] != "ok":
            return row
        nb = nbformat.read(out, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    import torch

    nb.metadata[STAMP_KEY] = {"mode": "full", "seed": 0, "code_sha256": code_hash(nb),
                              "torch": torch.__version__.split("+")[0], "wall_s": row["wall_s"]}
    nbformat.write(nb, path)
    return row


def stale_reasons(path: Path) -> list[str]:
    """Why the committed outputs of `path` cannot be trusted (empty list: they are fine)."""
    nb = nbformat.read(path, as_version=4)
    stamp = nb.metadata.get(STAMP_KEY)
    if not stamp:
        return ["never executed with `make execute` (no stamp)"]
    reasons = []
    if stamp.get("mode") != "full":
        reasons.append(f"outputs come from {stamp.get('mode')!r} mode, not a full default run")
    if stamp.get("code_sha256") != code_hash(nb):
        reasons.append("code cells changed since the outputs were produced")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any(c.get("execution_count") is None for c in code if c.source.strip()):
        reasons.append("some code cells were not executed")
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])
           if "raises-exception" not in c.metadata.get("tags", [])):
        reasons.append("a cell's committed output is an error")
    if any("injected-parameters" in c.metadata.get("tags", []) for c in code):
        reasons.append("an injected-parameters cell was committed (outputs of a parametrised run)")
    return reasons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks headless into build/")
    p_run.add_argument("--smoke", action="store_true", help="tiny data and few steps: seconds per notebook")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p_run.add_argument("notebooks", nargs="*")
    p_exec = sub.add_parser("execute", help="re-run in full mode and save outputs into notebooks/")
    p_exec.add_argument("notebooks", nargs="*")
    p_check = sub.add_parser("check", help="list notebooks whose committed outputs are stale")
    p_check.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)

    if args.command == "run":
        rows = run(args.notebooks, smoke=args.smoke, seed=args.seed, timeout=args.timeout)
        return int(any(r["status"] != "ok" for r in rows))
    if args.command == "execute":
        rows = [execute_in_place(p) for p in list_notebooks(args.notebooks)]
        print(format_table(rows))
        return int(any(r["status"] != "ok" for r in rows))
    stale = {p.stem: stale_reasons(p) for p in list_notebooks(args.notebooks)}
    for name, reasons in stale.items():
        print(f"{name}: {'; '.join(reasons) if reasons else 'up to date'}")
    return int(any(stale.values()))


if __name__ == "__main__":
    sys.exit(main())
