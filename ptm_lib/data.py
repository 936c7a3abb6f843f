"""Data, offline by default.

* `load_digits()` — scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes),
  checked against a pinned sha256 and split once, the same way for everybody:
  stratified 60 % train / 20 % validation / 20 % test with ``random_state=0``
  (1,077 / 360 / 360 images). The split does not depend on the lesson's SEED;
  only training randomness does.
* `per_class_subset()` — a labelled budget of n examples per class (label-efficiency experiments).
* `make_loader()` — a seeded torch DataLoader.
* `fetch()` — the one place that may download: streaming, with a timeout, and the sha256 is
  checked on every call (cache hit or not). No lesson calls it by default.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
"""sha256 of scikit-learn's bundled ``sklearn/datasets/data/digits.csv.gz`` (see data/README.md)."""


@dataclass
class Split:
    """A train/validation/test split. X: (N, D) float32, y: (N,) int64 in [0, n_classes)."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int

    def __repr__(self) -> str:
        parts = [f"{k}={tuple(getattr(self, k).shape)}" for k in ("X_train", "X_val", "X_test")]
        return f"Split({', '.join(parts)}, n_classes={self.n_classes})"


def digits_path() -> Path:
    """Path of the digits file that ships inside scikit-learn."""
    import sklearn

    return Path(sklearn.__file__).parent / "datasets" / "data" / "digits.csv.gz"


def load_digits(*, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Split:
    """The 8x8 digits as tensors: X (N, 64) with pixels scaled to [0, 1], y (N,) int64.

    The file's sha256 is checked first, so a changed copy of scikit-learn cannot silently
    change the course's numbers.
    """
    from sklearn.model_selection import train_test_split

    path = digits_path()
    verify_sha256(path, DIGITS_SHA256)
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    X, y = table[:, :-1] / 16.0, table[:, -1].astype(np.int64)
    X_trval, X_test, y_trval, y_test = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(
        X_trval, y_trval, test_size=val_fraction / (1 - test_fraction), stratify=y_trval, random_state=0)
    t = torch.from_numpy
    return Split(t(X_train), t(y_train), t(X_val), t(y_val), t(X_test), t(y_test), n_classes=10)


def check_labels(y: torch.Tensor, n_classes: int) -> None:
    """Raise a clear ValueError unless y is a 1-D integer tensor with values in [0, n_classes)."""
    if y.dim() != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {tuple(y.shape)}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}; use y.long()")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels out of range: found values in [{int(y.min())}, {int(y.max())}] "
                         f"but the model has {n_classes} classes (valid: 0..{n_classes - 1})")


def per_class_subset(X: torch.Tensor, y: torch.Tensor, n_per_class: int, seed: int = 0):
    """Pick `n_per_class` random examples of every class (a labelled budget). Returns (X_sub, y_sub).

    Raises ValueError if some class has fewer than `n_per_class` examples.
    """
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
    """A DataLoader over (X, y) whose shuffling is reproducible from `seed`."""
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
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
