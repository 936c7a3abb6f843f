"""Checkpoints: weights as safetensors, architecture + config as JSON. Never pickle.

``save_checkpoint(model, "data/foo")`` writes ``data/foo.safetensors`` and ``data/foo.json``
(``"data/run.1"`` writes ``data/run.1.safetensors``: only a trailing ``.safetensors``/``.json``
is replaced):

    {"format": "ptm-course/1", "arch": "mlp", "config": {...}, "weights_sha256": "...",
     "torch": "2.13.0", "meta": {...}}

Saving is atomic and durable: both files are written to temporary files in the same folder,
flushed to disk (fsync), and only then renamed into place (``os.replace``). A crash while writing
leaves the previous checkpoint as it was; a crash between the two renames leaves new weights
under the old JSON, which loading reports as a sha256 mismatch, never as a silently wrong model.

Loading trusts nothing before it is checked: the JSON is validated (format, known architecture,
config fields known and complete, ``weights_sha256`` present), then the weights' sha256 is compared
with the JSON and the pinned hash, and only then is a model built and the tensors read, with
safetensors, which cannot run code (unlike ``torch.load`` of a pickle).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from .data import sha256_file
from .nets.registry import build, config_dict, config_from_dict, model_class

FORMAT = "ptm-course/1"
RECORD_KEYS = ("format", "arch", "config", "weights_sha256")
"""The fields every checkpoint JSON must have (``torch`` and ``meta`` are informational)."""


class CheckpointMismatchError(ValueError):
    """The checkpoint was saved from a different architecture or config than the target model."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, config) paths of a checkpoint: "a/run.1" -> a/run.1.safetensors, a/run.1.json."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def save_checkpoint(model: nn.Module, path: str | os.PathLike, meta: dict | None = None) -> tuple[Path, Path]:
    """Save `model` (which must have `arch` and `config`) to `path`.safetensors + `path`.json.

    `meta` is free-form JSON (training steps, loss, command that made it, ...).
    Returns (weights_path, config_path). Raises PermissionError if the folder is not writable.
    """
    if not hasattr(model, "arch") or not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} has no `arch`/`config`; only course models "
                        "(ptm_lib.nets.registry.register) can be checkpointed this way")
    weights, config = checkpoint_paths(path)
    record = {"format": FORMAT, "arch": model.arch, "config": config_dict(model),
              "torch": torch.__version__.split("+")[0], "meta": meta or {}}
    temps = []  # everything is written before anything is renamed
    try:
        temps.append(_write_temp(weights, lambda tmp: save_model(model, tmp, metadata={"format": FORMAT,
                                                                                          "arch": model.arch})))
        record["weights_sha256"] = sha256_file(temps[0])
        temps.append(_write_temp(config, lambda tmp: _write_json(record, tmp)))
        os.replace(temps[0], weights)  # atomic on POSIX and Windows
        os.replace(temps[1], config)
        _fsync_folder(weights.parent)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return weights, config


def read_config(path: str | os.PathLike) -> dict:
    """The validated JSON record of a checkpoint; no weights are read and no model is built.

    Raises FileNotFoundError, ValueError for a corrupt file, and CheckpointMismatchError for a
    record this version of ptm_lib cannot load (other format, unknown architecture or config fields).
    """
    _, config = checkpoint_paths(path)
    if not config.exists():
        raise FileNotFoundError(f"no checkpoint config at {config}; a checkpoint is a .safetensors "
                                "file plus a .json file of the same name (save_checkpoint writes both)")
    try:
        record = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config} is not valid JSON ({e}); the file is corrupt. Re-create the "
                         "checkpoint with save_checkpoint.") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise CheckpointMismatchError(f"{config} is not a {FORMAT} checkpoint (format={found!r})")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"{config} lacks the fields {missing}; it was not written by save_checkpoint "
                         "or was edited. Re-create the checkpoint with save_checkpoint.")
    try:
        config_from_dict(model_class(record["arch"]).config_class, record["config"])
    except ValueError as e:
        raise CheckpointMismatchError(f"{config} cannot be loaded by this version of ptm_lib: {e}. "
                                      "Re-create the checkpoint, or use the ptm_lib version that saved it "
                                      f"(torch {record.get('torch')}).") from None
    return record


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *,
                    expected_sha256: str | None = None, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load a checkpoint into `model`, or build the model from the checkpoint's config.

    Returns the model, moved to `map_location` (also a `model` you pass in). Raises CheckpointMismatchError (with what
    differs and what to do) when `model` has another architecture or config, and ValueError when
    the weights' sha256 matches neither the JSON nor `expected_sha256`, or the file is corrupt.
    """
    weights, _ = checkpoint_paths(path)
    record = read_config(path)
    _verify_sha256(weights, [(record["weights_sha256"], "its JSON config"), (expected_sha256, "the pinned hash")])
    if model is None:
        model = build(record["arch"], record["config"])
    else:
        _check_compatible(model, record, path)
    try:
        missing, unexpected = load_model(model, weights, strict=False, device="cpu")
    except SafetensorError as e:
        raise ValueError(f"{weights} is not a readable safetensors file ({e}): it is truncated or corrupt. "
                         "Delete the checkpoint and re-create it.") from None
    except RuntimeError as e:  # tensor shapes differ from the JSON config
        raise CheckpointMismatchError(f"{weights} does not fit the config in its JSON: {e}") from None
    if missing or unexpected:
        raise CheckpointMismatchError(f"{weights}: missing tensors {sorted(missing)}, unexpected {sorted(unexpected)}")
    return model.to(map_location)


def _verify_sha256(weights: Path, expectations: list[tuple[str | None, str]]) -> None:
    """A clear error unless `weights` exists and its sha256 equals every expected (non-None) digest."""
    if not weights.exists():
        raise FileNotFoundError(f"the checkpoint's weights {weights} are missing (its .json is there); "
                                "copy both files, or re-create the checkpoint with save_checkpoint")
    actual = sha256_file(weights)
    for expected, what in expectations:
        if expected is not None and actual != expected:
            raise ValueError(f"{weights}: sha256 {actual} does not match {what} ({expected}); the weights are "
                             "truncated, corrupt or were replaced. Re-create them (see data/README.md).")


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


def _write_temp(dest: Path, write) -> str:
    """Call `write(tmp_path)` on a new temporary file next to `dest`, flush it to disk; return its path."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    except PermissionError as e:
        raise PermissionError(f"cannot write the checkpoint {dest}: {e.strerror} (the folder is read-only "
                              "for you). Save it into a folder you can write to.") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; checkpoints are ordinary readable files
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        os.remove(tmp)
        raise
    return tmp


def _write_json(record: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
        f.write("\n")


def _fsync_folder(folder: Path) -> None:
    """Make the renames durable too (POSIX; Windows cannot open a folder)."""
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
