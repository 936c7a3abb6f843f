"""The 8x8 handwritten digits: the course's image data set, offline and pinned.

`load_digits()` reads scikit-learn's bundled copy (1,797 images, 10 classes), checks it against a
pinned sha256, and splits it once, the same way for everybody: stratified 60 % train / 20 %
validation / 20 % test with ``random_state=0`` (1,077 / 360 / 360 images). The split does not
depend on the lesson's SEED; only training randomness does.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import verify_sha256

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
    """The 8x8 digits as a `Split`: X (N, 64) float32 with pixels scaled to [0, 1], y (N,) int64 in 0..9.

    The file's sha256 is checked first, so a changed copy of scikit-learn cannot silently
    change the course's numbers.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, 0 < test_fraction and val_fraction + test_fraction < 1, "
                         f"got {val_fraction} and {test_fraction}")
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
