"""Modes (smoke/full) and the results every lesson records.

A lesson records measured numbers and *claims*:

    report = Report("03_pipeline", smoke=SMOKE, seed=SEED)
    report.record("pretrain_seconds", 41.2)
    report.claim("pretrained_beats_scratch", gain)     # op, threshold, unit: from notebooks/claims.toml
    report.save()     # -> build/results/03_pipeline.json

Every claim is registered, with the reason for its threshold, in the reviewed registry
``notebooks/claims.toml``. A notebook cannot lower its own bar: an unregistered name, or an op,
threshold or unit that differs from the registry, raises ValueError. ``report.threshold(name)``
gives the registered bar to prose.

In full mode a claim that does not hold stops the notebook with ClaimFailed, after saving the
results file (so reviewers see the numbers), and the final ``save()`` raises MissingClaims when a
registered claim was never measured. In smoke mode (tiny data, few steps) claims are recorded
with ``holds`` but not enforced.
"""
from __future__ import annotations

import json
import math
import operator
import os
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import torch

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
REGISTRY = Path("notebooks") / "claims.toml"   # relative to the course folder
ENTRY_KEYS = {"op", "threshold", "unit", "anchor", "reason"}


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


def load_results(notebook: str, mode: str | None = "full", folder: str | os.PathLike | None = None) -> dict | None:
    """The latest results file of `notebook` (``<folder>/<notebook>.json``, folder defaults to
    `results_dir()`), as a dict; None when there is none, when it cannot be read, or when it comes
    from another `mode` ("full" or "smoke"; None accepts either). A smoke run overwrites the full
    run's file, so a lesson that reads another chapter's measured numbers asks for mode="full"."""
    if mode not in ("full", "smoke", None):
        raise ValueError(f"mode must be 'full', 'smoke' or None, got {mode!r}")
    path = Path(folder or results_dir()) / f"{notebook}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or (mode is not None and data.get("mode") != mode):
        return None
    return data


def registry_path(root: str | os.PathLike | None = None) -> Path:
    """The claims registry: <root>/notebooks/claims.toml. Without `root`: that of the course folder
    around the working directory, else the one next to this (editable) package."""
    if root is not None:
        return Path(root) / REGISTRY
    path = repo_root() / REGISTRY
    return path if path.exists() else Path(__file__).resolve().parents[1] / REGISTRY


def load_registry(source: dict | str | os.PathLike | None = None) -> dict[str, dict[str, dict]]:
    """The reviewed claims, ``{notebook: {claim: {"op", "threshold", "unit", "anchor"/"reason"}}}``.

    `source`: a path to a TOML file (default: `registry_path()`) or a dict of the same shape.
    Raises ValueError naming the entry when one is malformed.
    """
    if source is None or isinstance(source, (str, os.PathLike)):
        path = Path(source) if source is not None else registry_path()
        with open(path, "rb") as f:
            try:
                data, where = tomllib.load(f), str(path)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML: {e}") from None
    else:
        data, where = source, "claims registry"
    registry = {}
    for notebook, claims in data.items():
        if not isinstance(claims, dict):
            raise ValueError(f"{where}: [{notebook}] must be a table of claims")
        registry[notebook] = {name: _check_entry(f"{where}: [{notebook}.{name}]", entry)
                              for name, entry in claims.items()}
    return registry


def _check_entry(where: str, entry) -> dict:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a table with op, threshold, unit and a reason or anchor")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(ENTRY_KEYS)}")
    missing = {"op", "threshold", "unit"} - set(entry)
    if missing:
        raise ValueError(f"{where}: missing {sorted(missing)}")
    if entry["op"] not in OPS:
        raise ValueError(f"{where}: op must be one of {list(OPS)}, got {entry['op']!r}")
    threshold = entry["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or math.isnan(threshold):
        raise ValueError(f"{where}: threshold must be a number, got {threshold!r}")
    if not isinstance(entry["unit"], str):
        raise ValueError(f"{where}: unit must be a string (\"\" for none), got {entry['unit']!r}")
    if not any(isinstance(entry.get(k), str) and entry[k].strip() for k in ("anchor", "reason")):
        raise ValueError(f"{where}: give the threshold's `anchor` (where the number comes from) "
                         f"or `reason` (why this margin)")
    return {**entry, "threshold": float(threshold)}


class ClaimFailed(AssertionError):
    """A claim made in the lesson's text did not hold in a full run."""


class MissingClaims(ClaimFailed):
    """A full run ended without measuring every claim registered for the notebook."""


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
    """Measured numbers and claims of one lesson run, saved as JSON.

    `registry`: the claims registry (a path or a dict, see `load_registry`; default
    notebooks/claims.toml); the report uses its section for `name`.
    """

    def __init__(self, name: str, *, smoke: bool, seed: int, device: torch.device | str | None = None,
                 registry: dict | str | os.PathLike | None = None):
        self.name, self.smoke, self.seed = name, bool(smoke), int(seed)
        self.device = str(device) if device is not None else "cpu"
        self.numbers: dict[str, object] = {}
        self.claims: dict[str, dict] = {}
        self._registry = load_registry(registry).get(name, {})
        self._t0 = time.perf_counter()

    @property
    def mode(self) -> str:
        return "smoke" if self.smoke else "full"

    def registered(self, name: str) -> dict:
        """The registry entry of claim `name` (op, threshold, unit, anchor/reason)."""
        if name not in self._registry:
            known = ", ".join(self._registry) or "none"
            raise ValueError(f"claim {name!r} is not registered for {self.name} (registered: {known}); "
                             f"add it to notebooks/claims.toml with its reason")
        return dict(self._registry[name])

    def threshold(self, name: str) -> float:
        """The registered threshold of claim `name`, for prose ("at least {report.threshold(...)}")."""
        return self.registered(name)["threshold"]

    def missing_claims(self) -> list[str]:
        """Registered claims not recorded (yet), in registry order."""
        return [name for name in self._registry if name not in self.claims]

    def record(self, name: str, value, unit: str | None = None) -> None:
        """Record a measured number (or a list/dict of numbers)."""
        self.numbers[name] = {"value": _plain(value), "unit": unit} if unit else _plain(value)

    def claim(self, name: str, value, threshold=None, *, op: str | None = None, unit: str | None = None,
              note: str = "") -> bool:
        """Check `value op threshold` against the registered bar, record it, and in full mode raise
        ClaimFailed if it fails. `threshold`, `op` and `unit` may be omitted (taken from the registry);
        given, they must equal the registry's."""
        entry = self.registered(name)
        given = {"op": op, "threshold": None if threshold is None else float(_plain(threshold)), "unit": unit}
        if op is not None and op not in OPS:
            raise ValueError(f"op must be one of {list(OPS)}, got {op!r}")
        differ = [f"{key} {given[key]!r} (notebooks/claims.toml: {entry[key]!r})" for key in given
                  if given[key] is not None and given[key] != entry[key]]
        if differ:
            raise ValueError(f"claim {name!r} of {self.name}: the notebook gives {'; '.join(differ)}. "
                             f"Thresholds live in notebooks/claims.toml: change the entry there, with its "
                             f"reason, or drop the argument")
        op, threshold, unit = entry["op"], entry["threshold"], entry["unit"] or None
        value = float(_plain(value))
        holds = (not math.isnan(value)) and OPS[op](value, threshold)
        self.claims[name] = {"value": value, "threshold": threshold, "op": op, "holds": bool(holds),
                             "unit": unit, "note": note, "enforced": not self.smoke}
        status = "holds" if holds else ("does NOT hold" if not self.smoke else "does not hold (smoke: not enforced)")
        print(f"claim {name}: {value:.4g} {op} {threshold:.4g}{' ' + unit if unit else ''} -> {status}")
        if not holds and not self.smoke:
            path = self._write()
            raise ClaimFailed(f"claim {name!r} failed: measured {value:.4g}, needed {op} {threshold:.4g}"
                              f"{' ' + unit if unit else ''} (seed={self.seed}). {note} Results saved to {path}.")
        return holds

    def as_dict(self) -> dict:
        missing = self.missing_claims()
        return {
            "notebook": self.name, "mode": self.mode, "seed": self.seed, "device": self.device,
            "torch": torch.__version__, "wall_s": round(time.perf_counter() - self._t0, 3),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "numbers": self.numbers, "claims": self.claims, "missing_claims": missing,
            "all_claims_hold": all(c["holds"] for c in self.claims.values()) and not missing,
        }

    def _repr_markdown_(self) -> str:
        """A table of the recorded numbers and claims (how a Report shows in a notebook)."""
        lines = [f"**{self.name}** ({self.mode} mode, seed {self.seed}, {self.device})", "",
                 "| claim | measured | needed | holds |", "|---|---|---|---|"]
        for name, c in self.claims.items():
            unit = f" {c['unit']}" if c["unit"] else ""
            lines.append(f"| `{name}` | {c['value']:.4g}{unit} | {c['op']} {c['threshold']:.4g}{unit} | "
                         f"{'yes' if c['holds'] else 'NO'} |")
        for name in self.missing_claims():
            e = self._registry[name]
            unit = f" {e['unit']}" if e["unit"] else ""
            lines.append(f"| `{name}` | not measured | {e['op']} {e['threshold']:.4g}{unit} | NO |")
        lines += ["", "| number | value |", "|---|---|"]
        for name, v in self.numbers.items():
            text = f"{v['value']} {v['unit']}" if isinstance(v, dict) and "unit" in v else str(v)
            lines.append(f"| `{name}` | {text[:80]} |")
        return "\n".join(lines)

    def _write(self) -> Path:
        """Write build/results/<name>.json atomically, enforcing nothing; return its path."""
        folder = results_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def save(self) -> Path:
        """Write build/results/<name>.json and return its path: the notebook's final call.

        In full mode, after writing, raise MissingClaims if a registered claim was never recorded,
        and ClaimFailed if a recorded claim does not hold (an earlier ClaimFailed was swallowed).
        """
        path = self._write()
        if self.smoke:
            return path
        missing = self.missing_claims()
        if missing:
            raise MissingClaims(f"{self.name}: registered claim(s) never measured: {', '.join(missing)}. "
                                f"notebooks/claims.toml lists them; a full run must measure each "
                                f"(run the notebook top to bottom). Results saved to {path}.")
        failed = [name for name, c in self.claims.items() if not c["holds"]]
        if failed:
            raise ClaimFailed(f"{self.name}: claim(s) that do not hold: {', '.join(failed)} "
                              f"(seed={self.seed}). Results saved to {path}.")
        return path
