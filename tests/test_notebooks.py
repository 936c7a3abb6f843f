"""Every notebook runs top to bottom in smoke mode through the course runner (papermill): each in a
fresh kernel, offline (every connection but loopback refused), in a shuffled order, writing nothing
outside its build folder; and a second run with the same seed gives the same numbers."""
import json
import math
import os
import random
import zlib

import pytest

from ptm_lib import course
from ptm_lib.report import load_registry, repo_root

# A new order for every test session, the same in every pytest-xdist worker (they share the run's id).
# Reproduce an order with PTM_NOTEBOOK_ORDER=<seed>.
ORDER_SEED = int(os.environ.get("PTM_NOTEBOOK_ORDER") or
                 zlib.crc32(os.environ.get("PYTEST_XDIST_TESTRUNUID", str(random.random())).encode()))
NOTEBOOKS = course.list_notebooks()
random.Random(ORDER_SEED).shuffle(NOTEBOOKS)
REGISTRY = load_registry()
ROOT = repo_root()
WATCHED = ("notebooks", "data")   # a lesson's working folder and the shipped files: never written by a run
RERUN = "03_pipeline"             # pretraining and fine-tuning in worker processes: the hardest to repeat
FIRST_RUNS: dict[str, dict] = {}  # notebook -> its results file, for the determinism test below


def snapshot() -> dict[str, tuple[int, int]]:
    """path -> (size, mtime) of every file under WATCHED (editor checkpoints and caches aside)."""
    files = {}
    for folder in WATCHED:
        for path in (ROOT / folder).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_file() and ".ipynb_checkpoints" not in rel and "__pycache__" not in rel:
                stat = path.stat()
                files[rel] = (stat.st_size, stat.st_mtime_ns)
    return files


def run_smoke(stem: str, build) -> dict:
    rows = course.run([stem], smoke=True, seed=1, timeout=300, build=build, offline=True)
    assert rows[0]["status"] == "ok", (f"{stem} failed in smoke mode: {rows[0]['error']} (see {build / 'notebooks'}; "
                                       f"notebook order seed {ORDER_SEED})")
    return json.loads((build / "results" / f"{stem}.json").read_text())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path, capsys):
    before = snapshot()
    results = run_smoke(path.stem, tmp_path)
    after = snapshot()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"{path.name} wrote outside build/ (hidden state for other notebooks): {changed}"
    FIRST_RUNS[path.stem] = results
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["mode"] == "smoke" and summary["notebooks"][0]["notebook"] == path.stem
    assert results["mode"] == "smoke" and results["seed"] == 1, "SMOKE/SEED did not reach the notebook"
    assert results["claims"], f"{path.name} records no claims"
    assert all(not c["enforced"] for c in results["claims"].values())
    registered = REGISTRY[path.stem]
    assert results["missing_claims"] == [] and set(results["claims"]) == set(registered), \
        f"{path.name} must measure every claim registered in notebooks/claims.toml, in smoke mode too"
    for name, claim in results["claims"].items():       # the registered bar, whatever the mode
        entry = registered[name]
        assert (claim["op"], claim["threshold"], claim["unit"] or "") == (
            entry["op"], entry["threshold"], entry["unit"]), f"{path.name}: {name} is not held to its registered bar"
    assert {"torch", "device", "wall_s", "numbers"} <= set(results)
    assert (tmp_path / "notebooks" / path.name).exists()
    assert "status  wall_s" in capsys.readouterr().out


def measured(results: dict) -> dict:
    """What a run measured: its numbers and claims (value, holds), without timings."""
    def drop_timings(obj):
        if isinstance(obj, dict):
            return {k: drop_timings(v) for k, v in obj.items() if "seconds" not in str(k) and k != "wall_s"}
        return [drop_timings(v) for v in obj] if isinstance(obj, list) else obj

    claims = {name: (c["value"], c["holds"]) for name, c in results["claims"].items()}
    return drop_timings({"seed": results["seed"], "mode": results["mode"], "numbers": results["numbers"],
                         "claims": claims})


def differences(a, b, where="") -> list[str]:
    """Where `a` and `b` differ; numbers may differ by 1e-6 (NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys(), key=str)
                for d in (differences(a.get(k), b.get(k), f"{where}/{k}") if k in a and k in b else [f"{where}/{k}"])]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        same = (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6
        return [] if same else [f"{where}: {a!r} != {b!r}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def test_the_same_seed_gives_the_same_numbers(tmp_path):
    """A second smoke run of RERUN (seed 1, a fresh kernel) measures exactly what the first did."""
    first = FIRST_RUNS.get(RERUN) or run_smoke(RERUN, tmp_path / "first")
    second = run_smoke(RERUN, tmp_path / "second")
    diff = differences(measured(first), measured(second))
    assert not diff, f"{RERUN}, seed 1, run twice, measured different numbers: {diff[:10]}"


def test_differences_sees_what_matters():
    assert differences({"a": [1.0, float("nan")], "seconds": 3}, {"a": [1.0 + 1e-7, float("nan")], "seconds": 3}) == []
    assert differences({"a": {"b": 0.5}}, {"a": {"b": 0.51}}) == ["/a/b: 0.5 != 0.51"]
    assert differences({"a": 1}, {"b": 1}) == ["/a", "/b"]
    results = {"seed": 1, "mode": "smoke", "numbers": {"x": 1, "pretrain_seconds": {"value": 9}},
               "claims": {"c": {"value": 0.5, "holds": True, "note": "n"}}, "wall_s": 3}
    assert measured(results) == {"seed": 1, "mode": "smoke", "numbers": {"x": 1}, "claims": {"c": (0.5, True)}}
