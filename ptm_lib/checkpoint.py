"""Checkpoints: weights as safetensors, architecture + config as JSON. Never pickle.

``save_checkpoint(model, "data/foo")`` writes ``data/foo.safetensors`` and ``data/foo.json``:

    {"format": "ptm-course/1", "arch": "mlp", "config": {...}, "weights_sha256": "...",
     "torch": "2.13.0", "meta": {...}}

Both files are written to a temporary name and renamed (atomic on POSIX), so an interrupted
save never leaves a half-written checkpoint. Loading checks the architecture and config against
the model you load into, checks the weights' sha256, and reads tensors with safetensors, which
cannot run code (unlike ``torch.load`` of a pickle).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from .data import sha256_file
from .models import build, config_dict

FORMAT = "ptm-course/1"


class CheckpointMismatchError(ValueError):
    """The checkpoint was saved from a different architecture or config than the target model."""


def _paths(path: str | os.PathLike) -> tuple[Path, Path]:
    stem = Path(path)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def _atomic_write(dest: Path, write) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are ordinary readable files
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, meta: dict | None = None) -> tuple[Path, Path]:
    """Save `model` (which must have `arch` and `config`) to `path`.safetensors + `path`.json.

    `meta` is free-form JSON (training steps, loss, command that made it, ...).
    Returns (weights_path, config_path).
    """
    if not hasattr(model, "arch") or not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} has no `arch`/`config`; only course models "
                        "(ptm_lib.models.register) can be checkpointed this way")
    weights, config = _paths(path)
    _atomic_write(weights, lambda tmp: save_model(model, tmp, metadata={"format": FORMAT, "arch": model.arch}))
    record = {"format": FORMAT, "arch": model.arch, "config": config_dict(model),
              "weights_sha256": sha256_file(weights), "torch": torch.__version__.split("+")[0],
              "meta": meta or {}}

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(config, write_json)
    return weights, config


def read_config(path: str | os.PathLike) -> dict:
    """The JSON record of a checkpoint (no weights are read)."""
    _, config = _paths(path)
    if not config.exists():
        raise FileNotFoundError(f"no checkpoint config at {config}; a checkpoint is a .safetensors "
                                "file plus a .json file of the same name")
    with open(config) as f:
        record = json.load(f)
    if record.get("format") != FORMAT:
        raise CheckpointMismatchError(f"{config} is not a {FORMAT} checkpoint (format={record.get('format')!r})")
    return record


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *,
                    expected_sha256: str | None = None, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint into `model`, or build the model from the checkpoint's config.

    Raises CheckpointMismatchError (with what differs and what to do) when `model` has another
    architecture or config, and ValueError when the weights' sha256 does not match.
    """
    weights, _ = _paths(path)
    record = read_config(path)
    if model is None:
        model = build(record["arch"], record["config"])
    else:
        _check_compatible(model, record, path)
    actual = sha256_file(weights)
    for expected, what in ((record["weights_sha256"], "its JSON config"), (expected_sha256, "the pinned hash")):
        if expected is not None and actual != expected:
            raise ValueError(f"{weights}: sha256 {actual} does not match {what} ({expected}); "
                             "the weights are corrupt or were replaced. Re-create them (see data/README.md).")
    missing, unexpected = load_model(model, weights, strict=False, device=str(map_location))
    if missing or unexpected:
        raise CheckpointMismatchError(f"{weights}: missing tensors {sorted(missing)}, unexpected {sorted(unexpected)}")
    return model


def _check_compatible(model: nn.Module, record: dict, path) -> None:
    arch = getattr(model, "arch", type(model).__name__)
    if arch != record["arch"]:
        raise CheckpointMismatchError(
            f"checkpoint {path} holds a {record['arch']!r} model, but you are loading it into a {arch!r} "
            f"({type(model).__name__}). Load it without a model (load_checkpoint(path)) to rebuild the "
            f"right architecture, or pick the checkpoint made for {arch!r}.")
    ours, theirs = config_dict(model), record["config"]
    diff = {k: (theirs.get(k), ours.get(k)) for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)}
    if diff:
        lines = ", ".join(f"{k}: checkpoint={a!r} model={b!r}" for k, (a, b) in diff.items())
        raise CheckpointMismatchError(
            f"checkpoint {path} was saved with another {arch!r} config ({lines}). Build the model with "
            f"the checkpoint's config (load_checkpoint(path) does that) or retrain.")
