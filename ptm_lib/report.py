"""Modes (smoke/full) and the results every lesson records.

A lesson records measured numbers and *claims*:

    report = Report("03_pipeline", smoke=SMOKE, seed=SEED)
    report.record("pretrain_seconds", 41.2)
    report.claim("pretrained_beats_scratch", gain, 15.0, op=">=", unit="points")
    report.save()     # -> build/results/03_pipeline.json

In full mode a claim that does not hold stops the notebook with ClaimFailed, after saving the
results file (so reviewers see the numbers). In smoke mode (tiny data, few steps) claims are
recorded with ``holds`` but not enforced.
"""
from __future__ import annotations

import json
import math
import operator
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def is_smoke(default: bool = False) -> bool:
    """Smoke mode if the notebook parameter says so or the env var PTM_SMOKE is 1/true/yes."""
    env = os.environ.get("PTM_SMOKE", "").strip().lower()
    return bool(default) or env in ("1", "true", "yes", "on")


def repo_root(start: str | os.PathLike | None = None) -> Path:
    """The course folder: the nearest parent of `start` (default: cwd) holding pyproject.toml and ptm_lib/."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").exists() and (folder / "ptm_lib").is_dir():
            return folder
    return here


def results_dir() -> Path:
    """Where results go: $PTM_RESULTS_DIR, else <course>/build/results."""
    return Path(os.environ.get("PTM_RESULTS_DIR") or repo_root() / "build" / "results")


class ClaimFailed(AssertionError):
    """A claim made in the lesson's text did not hold in a full run."""


def _plain(value):
    """Tensors/NumPy scalars -> plain Python numbers, so results are JSON."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Report:
    """Measured numbers and claims of one lesson run, saved as JSON."""

    def __init__(self, name: str, *, smoke: bool, seed: int, device: torch.device | str | None = None):
        self.name, self.smoke, self.seed = name, bool(smoke), int(seed)
        self.device = str(device) if device is not None else "cpu"
        self.numbers: dict[str, object] = {}
        self.claims: dict[str, dict] = {}
        self._t0 = time.perf_counter()

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else "full"

    def record(self, name: str, value, unit: str | None = None) -> None:
        """Record a measured number (or a list/dict of numbers)."""
        self.numbers[name] = {"value": _plain(value), "unit": unit} if unit else _plain(value)

    def claim(self, name: str, value, threshold, *, op: str = ">=", unit: str | None = None,
              note: str = "") -> bool:
        """Check `value op threshold`, record it, and in full mode raise ClaimFailed if it fails."""
        if op not in OPS:
            raise ValueError(f"op must be one of {list(OPS)}, got {op!r}")
        value, threshold = float(_plain(value)), float(threshold)
        holds = (not math.isnan(value)) and OPS[op](value, threshold)
        self.claims[name] = {"value": value, "threshold": threshold, "op": op, "holds": bool(holds),
                             "unit": unit, "note": note, "enforced": not self.smoke}
        status = "holds" if holds else ("does NOT hold" if not self.smoke else "does not hold (smoke: not enforced)")
        print(f"claim {name}: {value:.4g} {op} {threshold:.4g}{' ' + unit if unit else ''} -> {status}")
        if not holds and not self.smoke:
            path = self.save()
            raise ClaimFailed(f"claim {name!r} failed: measured {value:.4g}, needed {op} {threshold:.4g}"
                              f"{' ' + unit if unit else ''} (seed={self.seed}). {note} Results saved to {path}.")
        return holds

    def as_dict(self) -> dict:
        return {
            "notebook": self.name, "mode": self.mode, "seed": self.seed, "device": self.device,
            "torch": torch.__version__, "wall_s": round(time.perf_counter() - self._t0, 3),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "numbers": self.numbers, "claims": self.claims,
            "all_claims_hold": all(c["holds"] for c in self.claims.values()),
        }

    def _repr_markdown_(self) -> str:
        """A table of the recorded numbers and claims (how a Report shows in a notebook)."""
        lines = [f"**{self.name}** ({self.mode} mode, seed {self.seed}, {self.device})", "",
                 "| claim | measured | needed | holds |", "|---|---|---|---|"]
        for name, c in self.claims.items():
            unit = f" {c['unit']}" if c["unit"] else ""
            lines.append(f"| `{name}` | {c['value']:.4g}{unit} | {c['op']} {c['threshold']:.4g}{unit} | "
                         f"{'yes' if c['holds'] else 'NO'} |")
        lines += ["", "| number | value |", "|---|---|"]
        for name, v in self.numbers.items():
            text = f"{v['value']} {v['unit']}" if isinstance(v, dict) and "unit" in v else str(v)
            lines.append(f"| `{name}` | {text[:80]} |")
        return "\n".join(lines)

    def save(self) -> Path:
        """Write build/results/<name>.json (atomically) and return its path."""
        folder = results_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path
