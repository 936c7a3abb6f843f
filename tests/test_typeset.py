"""Typeset digits: deterministic, digits-shaped, and what the fonts say they are."""
import numpy as np
import torch

from ptm_lib.vision.digits import load_digits
from ptm_lib.vision.typeset import FONT_FILES, ROTATIONS, SCALES, WIDTHS, load_typeset, to_optdigits, typeset_digits


def test_typeset_digits_are_deterministic_and_shaped_like_the_digits():
    X, y, info = typeset_digits()
    n = len(FONT_FILES) * len(ROTATIONS) * len(SCALES) * len(WIDTHS) * 10
    assert X.shape == (n, 8, 8) and X.dtype == np.float32 and y.shape == (n,) and len(info) == n
    assert X.min() == 0 and X.max() == 16 and np.array_equal(X, np.round(X))   # counts 0..16, like optdigits
    assert np.bincount(y).tolist() == [n // 10] * 10
    X2, y2, _ = typeset_digits()
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert {i["font"] for i in info} >= {"DejaVu Sans", "DejaVu Serif", "STIX", "Computer Modern"}
    assert (X.reshape(n, -1).sum(1) > 0).all()   # every image has ink


def test_load_typeset_is_a_digits_like_split():
    split, digits = load_typeset(), load_digits()
    assert split.X_train.shape[1] == digits.X_train.shape[1] == 64
    assert 0 <= split.X_train.min() and split.X_train.max() <= 1
    assert len(split.X_train) + len(split.X_val) + len(split.X_test) == len(typeset_digits()[0])
    # a nearest-class-mean classifier on the pixels reads printed digits well: the labels are right
    means = torch.stack([split.X_train[split.y_train == c].mean(0) for c in range(10)])
    pred = torch.cdist(split.X_test, means).argmin(1)
    assert (pred == split.y_test).float().mean() > 0.7


def test_to_optdigits_counts_ink_per_4x4_block():
    full = torch.ones(1, 64, 64)
    assert torch.equal(to_optdigits(full, 0, 1.0, 1.0), torch.full((1, 8, 8), 16.0))
    assert torch.equal(to_optdigits(torch.zeros(1, 64, 64), 12, 0.8, 0.8), torch.zeros(1, 8, 8))
