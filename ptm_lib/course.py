"""Run the course headless, and keep the committed notebooks' outputs honest.

    python -m ptm_lib.course run [--smoke] [--seed N] [--allow-network] [NOTEBOOK ...]
        Execute notebooks with papermill, each in a fresh `python3` kernel whose working
        directory is the notebook's folder. Executed copies (with their widget state) go to
        build/notebooks/, each lesson's results to build/results/<stem>.json, and a status table
        to build/results/summary.json. In full mode a notebook also fails when its results file
        is missing, lacks a claim registered in notebooks/claims.toml, or has a claim that does
        not hold. Exit status 1 if any notebook failed.
        `run` writes only under build/ (never into notebooks/: a learner's edits are safe), and its
        kernels are offline: every network connection but loopback is refused (`ptm_lib.offline`,
        installed as the kernel's sitecustomize), so a notebook that needs the internet fails
        loudly. --allow-network lifts that.

    python -m ptm_lib.course execute [NOTEBOOK ...]
        Re-run notebooks in full (default) mode and write the outputs back into notebooks/
        (`make execute`), stamped with hashes of what produced them: the code cells, every
        ptm_lib/**/*.py, every file under data/, the notebook's section of notebooks/claims.toml,
        the torch version, and the outputs themselves. This is the one command that writes into
        notebooks/, on purpose; it saves nothing if the notebook file changed while it ran (edited
        and saved in JupyterLab meanwhile), so those edits are kept. Offline too.

    python -m ptm_lib.course check [NOTEBOOK ...]
        List notebooks whose committed outputs are stale, and why (`stale_reasons`).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .report import load_registry, registry_path, repo_root

STAMP_KEY = "ptm_course"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CHAPTERS = [  # (essay section, notebook stem, what the lesson does)
    ("-", "00_start_here", "how to use the course; a first 30-second experiment"),
    ("§1 Background", "01_why_pretrain", "the limits of end-to-end training, measured"),
    ("§2 Core concepts", "02_concepts", "pretraining, fine-tuning, transfer; encoder/decoder families; objectives"),
    ("§3 Algorithm", "03_pipeline", "pretrain a mini-BERT, fine-tune it, and measure label efficiency"),
    ("§4 Maths", "04_maths", "cross-entropy, softmax gradients, perplexity; the essay's formulas corrected"),
    ("§5 Project practice", "05_essay_code_fixed", "the essay's code run as printed, then fixed and pretrained"),
    ("§6 Applications: text", "06a_text", "a real pre-trained BERT (MiniLM) on real English: probes, search, fine-tuning"),
    ("§6 Applications: vision", "06b_vision", "ResNet-style pretraining and transfer on images"),
    ("§6 Applications: speech", "06c_speech", "wav2vec-style pretraining on real spoken words"),
    ("§6 Applications: other fields", "06d_other_domains", "pretraining on sequences from biology and finance"),
    ("§6 Applications: language tasks", "06e_language_tasks", "extractive question answering and translation, with and without pretraining"),
    ("§7 Tools", "07_tools", "the tools and papers the essay cites, with the citations corrected"),
    ("§8 Trends: compression", "08a_compression", "int8 quantisation, pruning and distillation: size, latency, accuracy"),
    ("§8 Trends: adaptive optimisation", "08b_adaptation", "optimisers, warm-up, layer-wise rates; LoRA by hand and with peft"),
    ("§8 Trends: architecture search", "08c_search", "random search vs. Optuna under a parameter budget, the Pareto front"),
    ("§8 Trends: multimodal", "08d_multimodal", "CLIP-style pretraining of images with captions; zero-shot classification"),
    ("§8 Challenges: privacy", "08e_privacy", "membership inference, and DP-SGD with Opacus at several epsilons"),
    ("§8 Challenges: interpretability", "08f_interpretability", "attention maps, integrated gradients with Captum, probes per layer"),
    ("§8 Challenges: compute", "08g_compute", "FLOPs, a scaling law, accumulation, checkpointing, torchrun DDP"),
    ("§9 FAQ", "09_faq", "the fine-tuning recipe as one API; the essay's and learners' questions answered by experiments"),
    ("Appendix", "10_errata", "every error the course found in the essay, with its evidence; quick checks re-run live"),
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


# --- the stamp: what produced a notebook's committed outputs ----------------------------------

def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code_cells(nb) -> list:
    """Code cells, papermill's injected-parameters cell excluded."""
    return [c for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def code_hash(nb) -> str:
    """sha256 of the notebook's code cells (papermill's injected-parameters cell excluded)."""
    return _sha256(json.dumps([c.source for c in _code_cells(nb)]))


def outputs_hash(nb) -> str:
    """sha256 of a canonical JSON of every code cell's outputs and execution count."""
    cells = [{"execution_count": c.get("execution_count"), "outputs": c.get("outputs", [])} for c in _code_cells(nb)]
    return _sha256(json.dumps(cells, sort_keys=True, separators=(",", ":")))


def tree_hash(root: Path, folder: str, pattern: str = "*") -> str:
    """sha256 over the files `folder/**/pattern` under `root`: sorted relative paths and their bytes.
    Hidden files and folders (.ipynb_checkpoints, .DS_Store) are left out."""
    digest = hashlib.sha256()
    files = [p for p in (Path(root) / folder).rglob(pattern) if p.is_file()]
    for rel in sorted(p.relative_to(root).as_posix() for p in files):
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        data = (Path(root) / rel).read_bytes()
        digest.update(f"{rel}\0{len(data)}\0".encode() + data)
    return digest.hexdigest()


def claims_hash(stem: str, root: Path | None = None) -> str:
    """sha256 of the notebook's section of notebooks/claims.toml (canonical JSON)."""
    section = load_registry(registry_path(root or repo_root())).get(stem, {})
    return _sha256(json.dumps(section, sort_keys=True))


def torch_version() -> str:
    import torch

    return torch.__version__.split("+")[0]


STAMP_PARTS = {  # stamp key -> what it covers, as `stale_reasons` names it
    "code_sha256": "code cells",
    "library_sha256": "ptm_lib",
    "data_sha256": "data/",
    "claims_sha256": "its claims in notebooks/claims.toml",
    "torch": "torch version",
}


def input_stamp(nb, stem: str, root: Path | None = None) -> dict:
    """The hashes of everything that produced the outputs, and one `inputs_sha256` over them all."""
    root = Path(root or repo_root())
    parts = {"code_sha256": code_hash(nb), "library_sha256": tree_hash(root, "ptm_lib", "*.py"),
             "data_sha256": tree_hash(root, "data"), "claims_sha256": claims_hash(stem, root),
             "torch": torch_version()}
    return {**parts, "inputs_sha256": _sha256(json.dumps(parts, sort_keys=True))}


def _widget_views_without_state(nb) -> list[str]:
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    views = [o["data"][WIDGET_VIEW]["model_id"] for c in nb.cells if c.cell_type == "code"
             for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    return [v for v in views if v not in state]


def stale_reasons(path: Path, root: Path | None = None) -> list[str]:
    """Why the committed outputs of `path` cannot be trusted (empty list: they are fine).

    `root`: the course folder whose ptm_lib/, data/ and notebooks/claims.toml are compared
    with the stamp (default: `repo_root()`).
    """
    nb = nbformat.read(path, as_version=4)
    stamp = nb.metadata.get(STAMP_KEY)
    if not stamp:
        return ["never executed with `make execute` (no stamp)"]
    reasons = []
    if stamp.get("mode") != "full":
        reasons.append(f"outputs come from {stamp.get('mode')!r} mode, not a full default run")
    now = input_stamp(nb, Path(path).stem, root)
    unrecorded = [what for key, what in {**STAMP_PARTS, "outputs_sha256": "outputs"}.items() if key not in stamp]
    if unrecorded:
        reasons.append(f"the stamp has no hash of {', '.join(unrecorded)} (an older `make execute` wrote it)")
    for key, what in STAMP_PARTS.items():
        if key not in stamp:
            continue
        if key == "torch" and stamp[key] != now[key]:
            reasons.append(f"outputs come from torch {stamp[key]}, this environment has torch {now[key]}")
        elif stamp[key] != now[key]:
            reasons.append(f"{what} changed since the outputs were produced")
    if "outputs_sha256" in stamp and stamp["outputs_sha256"] != outputs_hash(nb):
        reasons.append("outputs were edited after execution (they do not match the stamp)")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if any(c.get("execution_count") is None for c in code if c.source.strip()):
        reasons.append("some code cells were not executed")
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])
           if EXPECTED_ERROR_TAG not in c.metadata.get("tags", [])):
        reasons.append("a cell's committed output is an error")
    if any("injected-parameters" in c.metadata.get("tags", []) for c in code):
        reasons.append("an injected-parameters cell was committed (outputs of a parametrised run)")
    if _widget_views_without_state(nb):
        reasons.append("widget outputs lack their stored widget state (metadata.widgets was dropped, "
                       "e.g. by saving in JupyterLab)")
    return reasons


# --- running notebooks ------------------------------------------------------------------------

def _kernel_env(results: Path, smoke: bool | None, offline_hook: Path | None = None) -> dict:
    env = dict(os.environ)
    env["PTM_RESULTS_DIR"] = str(results)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # kernel = this env's python
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The course's models are small: one torch thread per kernel. Measured on 2 cores: two threads
    # were 20 % faster on an idle machine but up to 10x slower when anything else ran (OpenMP threads
    # spin while they wait); chapters that run many models use worker processes instead.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("PTM_SMOKE", None)
    if smoke:
        env["PTM_SMOKE"] = "1"
    if offline_hook is not None:   # Python imports sitecustomize from here at start-up: the network is off
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(offline_hook), env.get("PYTHONPATH")) if p)
        env["HF_HUB_OFFLINE"] = "1"    # Hugging Face libraries: use the installed files, do not ask the hub
    return env


@contextlib.contextmanager
def _environment(env: dict):
    """Replace os.environ by `env` inside the block (papermill's kernel inherits this process's)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _offline_hook(offline: bool):
    """A temporary folder holding `ptm_lib/offline.py` as sitecustomize.py (None when not offline)."""
    if not offline:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ptm-offline-") as folder:
        shutil.copyfile(Path(__file__).with_name("offline.py"), Path(folder) / "sitecustomize.py")
        yield Path(folder)


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


def results_problems(results_file: Path, notebook: str, *, registry: dict | str | os.PathLike | None = None,
                     seed: int | None = None) -> list[str]:
    """Why a full run's results file does not show every registered claim holding (empty: it does)."""
    results_file = Path(results_file)
    if not results_file.exists():
        return [f"no results file {results_file.name}: the notebook never called report.save()"]
    try:
        results = json.loads(results_file.read_text())
    except json.JSONDecodeError as e:
        return [f"results file {results_file.name} is not valid JSON ({e})"]
    problems = []
    if results.get("mode") != "full":
        problems.append(f"results come from {results.get('mode')!r} mode, not a full run")
    if seed is not None and results.get("seed") != seed:
        problems.append(f"results are for seed {results.get('seed')}, the run asked for seed {seed}")
    claims = results.get("claims", {})
    missing = [name for name in load_registry(registry).get(notebook, {}) if name not in claims]
    if missing:
        problems.append(f"registered claim(s) never measured: {', '.join(missing)}")
    failed = [f"{name} ({c.get('value'):.4g} {c.get('op')} {c.get('threshold'):.4g})"
              for name, c in claims.items() if c.get("holds") is not True]
    if failed:
        problems.append(f"claim(s) that do not hold: {', '.join(failed)}")
    return problems


def run_notebook(path: Path, out_path: Path, *, parameters: dict | None, results: Path,
                 smoke: bool | None = None, timeout: int = 600,
                 registry: dict | str | os.PathLike | None = None, offline: bool = True) -> dict:
    """Execute one notebook with papermill; return {"notebook", "status", "wall_s", "error"}.

    A cell tagged `raises-exception` may fail (the lesson shows an error); any other error fails the run.
    The output notebook keeps the widgets' state (metadata.widgets), so saved widgets can render.
    Full mode (`smoke` falsy): the run also fails unless the notebook wrote `results/<stem>.json`
    during this run, with every claim registered for it (`registry`, default notebooks/claims.toml)
    measured and holding.
    `offline`: the kernel refuses every network connection but loopback (see `ptm_lib.offline`).
    """
    import papermill as pm
    import papermill.execute as pm_execute

    if Path(out_path).resolve() == Path(path).resolve():
        raise ValueError(f"refusing to write the executed copy over {path}: the runner never overwrites a "
                         "notebook (a learner's edits live there); write it under build/")
    results_file = Path(results) / f"{Path(path).stem}.json"
    results_file.unlink(missing_ok=True)   # a file left by an earlier run proves nothing
    with _offline_hook(offline) as hook, _environment(_kernel_env(results, smoke, hook)):  # the kernel inherits it
        t0 = time.perf_counter()
        status, error = "ok", None
        papermill_check = pm_execute.raise_for_execution_errors
        pm_execute.raise_for_execution_errors = functools.partial(_raise_for_unexpected_errors, papermill_check)
        try:
            pm.execute_notebook(str(path), str(out_path), parameters=parameters, kernel_name="python3",
                                cwd=str(Path(path).parent), progress_bar=False, execution_timeout=timeout,
                                store_widget_state=True)   # an nbclient option, passed on by papermill
        except Exception as e:  # PapermillExecutionError carries the cell's traceback
            status, error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
        finally:
            pm_execute.raise_for_execution_errors = papermill_check
    if status == "ok" and not smoke:
        seed = (parameters or {}).get("SEED")
        problems = results_problems(results_file, Path(path).stem, registry=registry, seed=seed)
        if problems:
            status, error = "failed", "full run: " + "; ".join(problems)
    return {"notebook": Path(path).stem, "status": status, "wall_s": round(time.perf_counter() - t0, 2),
            "error": error}


def run(names: list[str] | None = None, *, smoke: bool = False, seed: int = 0, timeout: int = 600,
        build: Path | None = None, registry: dict | str | os.PathLike | None = None,
        offline: bool = True) -> list[dict]:
    """Execute notebooks into `build` (default <course>/build) and print a status table; return the rows.
    Writes only under `build`; `offline`: kernels refuse every network connection but loopback."""
    build = Path(build or repo_root() / "build")
    out_dir, results = build / "notebooks", build / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in list_notebooks(names):
        print(f"running {path.stem} ({'smoke' if smoke else 'full'}, seed {seed}) ...", flush=True)
        row = run_notebook(path, out_dir / path.name, parameters={"SMOKE": smoke, "SEED": seed},
                           results=results, smoke=smoke, timeout=timeout, registry=registry, offline=offline)
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


def without_absolute_paths(nb, root: Path) -> None:
    """Rewrite this machine's folders in the outputs (tracebacks, warnings name files) so a committed
    notebook holds no absolute path: the Python environment -> "<python>", the course -> ".",
    the home folder -> "~" (the longest match first)."""
    names = {str(Path(root).resolve()): ".", sys.prefix: "<python>", sys.base_prefix: "<python>",
             str(Path.home()): "~"}
    folders = sorted(((k, v) for k, v in names.items() if len(k) > 1), key=lambda kv: -len(kv[0]))

    def clean(value):
        if isinstance(value, str):
            for folder, name in folders:
                value = value.replace(folder, name)
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):   # images are base64: left alone
            return {k: v if k.startswith("image/") else clean(v) for k, v in value.items()}
        return value

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(clean(dict(o))) for o in cell.get("outputs", [])]


def execute_in_place(path: Path, timeout: int = 600, root: Path | None = None) -> dict:
    """Run `path` in full default mode and save its outputs into the notebook, stamped.

    `root`: the course folder (default `repo_root()`): results go to its build/results, claims are
    checked against its notebooks/claims.toml, and the stamp hashes its ptm_lib/ and data/. If any
    of those, or the notebook file itself (a learner saved edits meanwhile), change while the
    notebook runs, nothing is written and the row says so.
    """
    root = Path(root or repo_root())
    source = Path(path).read_bytes()
    before = input_stamp(nbformat.reads(source.decode(), as_version=4), Path(path).stem, root)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / Path(path).name
        row = run_notebook(path, out, parameters=None, results=root / "build" / "results",
                           smoke=False, timeout=timeout, registry=registry_path(root))
        if row["status"] != "ok":
            return row
        nb = nbformat.read(out, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    without_absolute_paths(nb, root)
    if Path(path).read_bytes() != source:
        return {**row, "status": "failed", "error": f"{Path(path).name} was saved while it ran (edited?); outputs "
                "not written, so those edits are kept. Run it again"}
    stamp = input_stamp(nb, Path(path).stem, root)
    if stamp != before:
        changed = [what for key, what in STAMP_PARTS.items() if stamp[key] != before[key]]
        return {**row, "status": "failed",
                "error": f"{', '.join(changed)} changed while the notebook ran; outputs not saved, run it again"}
    nb.metadata[STAMP_KEY] = {"mode": "full", "seed": 0, **stamp, "outputs_sha256": outputs_hash(nb),
                              "wall_s": row["wall_s"]}
    nbformat.write(nb, path)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.course", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute notebooks headless into build/")
    p_run.add_argument("--smoke", action="store_true", help="tiny data and few steps: seconds per notebook")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    p_run.add_argument("--allow-network", action="store_true",
                       help="let kernels use the network (by default every connection but loopback is refused)")
    p_run.add_argument("notebooks", nargs="*")
    p_exec = sub.add_parser("execute", help="re-run in full mode and save outputs into notebooks/")
    p_exec.add_argument("notebooks", nargs="*")
    p_check = sub.add_parser("check", help="list notebooks whose committed outputs are stale")
    p_check.add_argument("notebooks", nargs="*")
    args = parser.parse_args(argv)

    if args.command == "run":
        rows = run(args.notebooks, smoke=args.smoke, seed=args.seed, timeout=args.timeout,
                   offline=not args.allow_network)
        return int(any(r["status"] != "ok" for r in rows))
    if args.command == "execute":
        rows = [execute_in_place(p) for p in list_notebooks(args.notebooks)]
        print(format_table(rows))
        return int(any(r["status"] != "ok" for r in rows))
    stale = {p.stem: stale_reasons(p) for p in list_notebooks(args.notebooks)}
    for name, reasons in stale.items():
        print(f"{name}: {'; '.join(reasons) + f' (run make execute NOTEBOOKS={name})' if reasons else 'up to date'}")
    return int(any(stale.values()))


if __name__ == "__main__":
    sys.exit(main())
