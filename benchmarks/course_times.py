"""Wall time of every notebook, smoke and full, from the course runner's results files.

`python -m ptm_lib.course run [--smoke]` writes ``build/results/<notebook>.json`` with the run's
``mode`` ("smoke" or "full") and ``wall_s``; a later run of the other mode overwrites it, so for each
notebook this reports what the latest file holds and names the runs that are missing. The course is
not rerun here (a full run takes most of an hour).
"""
from __future__ import annotations

from pathlib import Path

from ptm_lib.course import list_notebooks
from ptm_lib.report import load_results

MODES = ("smoke", "full")


def course_wall_times(results_dir: str | Path) -> dict:
    """{"results_dir", "notebooks": {name: {"smoke": s | None, "full": s | None, "finished_utc"}},
    "missing": ["name (mode)", ...], "total_s": {mode: sum over notebooks with a figure}}."""
    results_dir = Path(results_dir)
    rows, missing = {}, []
    for path in list_notebooks():
        row = {mode: None for mode in MODES}
        found = load_results(path.stem, mode=None, folder=results_dir)
        if found is not None and found.get("mode") in MODES:
            row[found["mode"]] = found.get("wall_s")
            row["finished_utc"] = found.get("finished_utc")
        missing += [f"{path.stem} ({mode})" for mode in MODES if row[mode] is None]
        rows[path.stem] = row
    totals = {mode: round(sum(r[mode] for r in rows.values() if r[mode] is not None), 1) for mode in MODES}
    return {"results_dir": str(results_dir), "notebooks": rows, "missing": missing, "total_s": totals}
