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
with the JSON and the pinned hash, then the tensor names and shapes in the safetensors header are
compared with those the config implies (the model is built on the ``meta`` device for that: shapes
only, no memory), and only then is the model built and the tensors read, with safetensors, which
cannot run code (unlike ``torch.load`` of a pickle). Nothing in ptm_lib unpickles a file.

Training state (`save_state` / `load_state`, what ``fit(checkpoint=...)`` writes to resume an
interrupted run) is ONE file, ``<path>.safetensors``: the tensors (weights, optimizer moments,
random-generator states) in safetensors, everything else (steps, history, learning rates, Python's
and NumPy's random states) as JSON in its header. One file, so a save is one atomic rename.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model
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
    if model is not None:
        _check_compatible(model, record, path)
    _check_shapes(record, _stored_shapes(weights), path)   # before any memory is allocated
    if model is None:
        model = build(record["arch"], record["config"])
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


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from the safetensors header only (no tensor is read)."""
    try:
        with safe_open(weights, framework="pt") as f:
            return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except SafetensorError as e:
        raise ValueError(f"{weights} is not a readable safetensors file ({e}): it is truncated or corrupt. "
                         "Delete the checkpoint and re-create it.") from None


def _check_shapes(record: dict, stored: dict[str, tuple[int, ...]], path) -> None:
    """Do the stored tensors have the names and shapes the JSON config implies? The model is built
    on the `meta` device (shapes, no memory), so an edited config cannot make us allocate."""
    try:
        with torch.device("meta"):
            skeleton = build(record["arch"], record["config"])
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:   # a config value of the wrong type or range
        raise CheckpointMismatchError(f"checkpoint {path}: its JSON config cannot build a {record['arch']!r} "
                                      f"model ({type(e).__name__}: {e}). Re-create the checkpoint.") from None
    tensors = skeleton.state_dict(keep_vars=True)
    expected = {name: tuple(t.shape) for name, t in tensors.items()}
    wrong = [f"{name}: stored {shape}, config implies {expected.get(name, 'no such tensor')}"
             for name, shape in stored.items() if expected.get(name) != shape]
    n_expected = sum(t.numel() for t in {id(t): t for t in tensors.values()}.values())  # tied weights once
    n_stored = sum(math.prod(shape) for shape in stored.values())
    if wrong or n_stored != n_expected:
        details = "; ".join(wrong[:5]) or f"{n_stored:,} numbers stored, the config implies {n_expected:,}"
        raise CheckpointMismatchError(f"checkpoint {path}: the weights do not fit its JSON config ({details}). "
                                      "The JSON was edited or belongs to other weights; re-create the checkpoint.")


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


# --- training state: resume an interrupted `fit` ------------------------------------------------

STATE_FORMAT = "ptm-course/train-state/1"


def state_path(path: str | os.PathLike) -> Path:
    """The file of a training state: "runs/a" -> runs/a.safetensors ("runs/a.safetensors" stays)."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def save_state(state: dict, path: str | os.PathLike) -> Path:
    """Save a nested dict of tensors, numbers, strings, lists, tuples and dicts (a training state)
    atomically to ONE safetensors file: tensors as tensors, the rest as JSON in its header.

    Raises TypeError for anything else (no object is ever pickled). Returns the file's path.
    """
    tensors: dict[str, torch.Tensor] = {}
    tree = _to_json(state, tensors, "state")
    dest = state_path(path)
    metadata = {"format": STATE_FORMAT, "state": json.dumps(tree)}
    tmp = _write_temp(dest, lambda t: save_file(tensors, t, metadata=metadata))
    try:
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _fsync_folder(dest.parent)
    return dest


def load_state(path: str | os.PathLike) -> dict:
    """The state `save_state` wrote; a clear error for a missing, truncated or foreign file."""
    src = state_path(path)
    if not src.exists():
        raise FileNotFoundError(f"no training state at {src}")
    try:
        with safe_open(src, framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != STATE_FORMAT:
                raise CheckpointMismatchError(f"{src} is not a training state ({STATE_FORMAT}), "
                                              f"format={metadata.get('format')!r}")
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except SafetensorError as e:
        raise ValueError(f"{src} is not a readable safetensors file ({e}): it is truncated or corrupt. "
                         "Delete it (training restarts from the beginning) or resume from a copy.") from None
    return _from_json(json.loads(metadata["state"]), tensors)


def _to_json(obj, tensors: dict, key: str):
    """`obj` as JSON; tensors move into `tensors` under their path (`key`), leaving {"$tensor": key}.
    Tuples become {"$tuple": [...]}, dicts with non-string keys {"$items": [[k, v], ...]}."""
    if isinstance(obj, torch.Tensor):
        tensors[key] = obj.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared memory
        return {"$tensor": key}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [_to_json(v, tensors, f"{key}/{i}") for i, v in enumerate(obj)]
        return {"$tuple": items} if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _to_json(v, tensors, f"{key}/{k}") for k, v in obj.items()}
        if all(isinstance(k, (int, str)) for k in obj):
            return {"$items": [[k, _to_json(v, tensors, f"{key}/{k}")] for k, v in obj.items()]}
    raise TypeError(f"cannot save {type(obj).__name__} at {key!r} in a training state: only tensors, numbers, "
                    "strings, None, lists, tuples and dicts are saved (never a pickled object)")


def _from_json(obj, tensors: dict):
    if isinstance(obj, list):
        return [_from_json(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"$tensor"}:
            return tensors[obj["$tensor"]]
        if set(obj) == {"$tuple"}:
            return tuple(_from_json(v, tensors) for v in obj["$tuple"])
        if set(obj) == {"$items"}:
            return {k: _from_json(v, tensors) for k, v in obj["$items"]}
        return {k: _from_json(v, tensors) for k, v in obj.items()}
    return obj
