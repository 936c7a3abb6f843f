"""Every notebook runs top to bottom in smoke mode through the course runner (papermill)."""
import json

import pytest

from ptm_lib import course
from ptm_lib.report import load_registry

NOTEBOOKS = course.list_notebooks()
REGISTRY = load_registry()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path, capsys):
    rows = course.run([path.stem], smoke=True, seed=1, timeout=300, build=tmp_path)
    row = rows[0]
    assert row["status"] == "ok", f"{path.name} failed in smoke mode: {row['error']} (see {tmp_path / 'notebooks'})"
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["mode"] == "smoke" and summary["notebooks"][0]["notebook"] == path.stem
    results = json.loads((tmp_path / "results" / f"{path.stem}.json").read_text())
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
