"""Generic data helpers, offline by default (the digits themselves live in `ptm_lib.vision.digits`).

* `check_labels()` — a clear error unless labels are class ids (N,) in [0, n_classes).
* `per_class_subset()` — a labelled budget of n examples per class (label-efficiency experiments).
* `make_loader()` — a seeded torch DataLoader.
* `sha256_file()`, `verify_sha256()` — checksums of files.
* `fetch()` — the one place that may download: streaming, with a timeout, and the sha256 is
  checked on every call (cache hit or not). No lesson calls it by default.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset


def check_labels(y: torch.Tensor, n_classes: int) -> None:
    """Raise a clear ValueError unless y is a 1-D integer tensor with values in [0, n_classes)."""
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {tuple(y.shape)}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}; use y.long()")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels out of range: found values in [{int(y.min())}, {int(y.max())}] "
                         f"but the model has {n_classes} classes (valid: 0..{n_classes - 1})")


def per_class_subset(X: torch.Tensor, y: torch.Tensor, n_per_class: int,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick `n_per_class` random examples of every class (a labelled budget), in shuffled order.

    X (N, ...), y (N,) -> X_sub (K * n_per_class, ...), y_sub (K * n_per_class,) for the K classes in y.
    The choice depends only on `seed` (not on the global random state). Raises ValueError if some
    class has fewer than `n_per_class` examples.
    """
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, fewer than n_per_class={n_per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:n_per_class]])
    order = torch.cat(picks)
    order = order[torch.randperm(len(order), generator=g)]
    return X[order], y[order]


def make_loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 64, *, shuffle: bool = True,
                seed: int = 0) -> DataLoader:
    """A DataLoader of (x (B, ...), y (B,)) batches over (X, y), shuffled reproducibly from `seed`."""
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=g)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise a clear error if the file's sha256 is not `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"sha256 mismatch for {path}: expected {expected}, got {actual}. "
                         "The file is corrupt or a different version; delete it and fetch/rebuild it.")


def fetch(url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there.

    Streams to a temporary file in the same folder, checks the hash, then renames atomically,
    so a half-downloaded or tampered file never appears at `dest`. The hash is checked on a
    cache hit too. Works with http(s):// and file:// URLs.
    """
    dest = Path(dest)
    if dest.exists():
        verify_sha256(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch for {url}: expected {sha256}, got {h.hexdigest()}; "
                             "nothing was saved.")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
