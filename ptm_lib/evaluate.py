"""Evaluation for every model of the course: predictions, accuracy, confusion matrices, and how
many labels a learning curve needs to reach an accuracy (`labels_needed`).

`inputs` is what the model is called with, stacked over N examples: a tensor X (N, ...) for
``model(x)``, or a tuple/list of tensors with the same first dimension, e.g. ``(ids, mask)``
(N, T) each for ``model(ids, mask)``. Batches are cut along the first dimension.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .device import autocast


def predict(model: nn.Module, inputs, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model(*batch)`` over all of `inputs`: (N, C) float32, on the CPU.

    Runs in eval mode without gradients, in batches of `batch_size`, with bf16 autocast on CUDA
    only; the model's previous train/eval mode is restored afterwards.
    """
    tensors = _as_tuple(inputs)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters(), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device):
            chunks = [model(*(t[start:start + batch_size].to(device) for t in tensors)).float().cpu()
                      for start in range(0, len(tensors[0]), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def accuracy(model: nn.Module, inputs, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction (in [0, 1]) of the N examples whose arg-max logit equals the label y (N,)."""
    n = len(_as_tuple(inputs)[0])
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != n:
        raise ValueError(f"labels y must have shape ({n},), one class id per example, got {tuple(getattr(y, 'shape', ()))}")
    return (predict(model, inputs, batch_size).argmax(-1) == y.cpu()).float().mean().item()


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Confusion matrix (n_classes, n_classes): rows are true classes, columns predictions."""
    from sklearn.metrics import confusion_matrix

    y_true, y_pred = _class_ids(y_true, n_classes, "y_true"), _class_ids(y_pred, n_classes, "y_pred")
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"y_true and y_pred must hold one class id per example, the same non-zero number of "
                         f"them; got {len(y_true)} and {len(y_pred)}")
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))


def _class_ids(y, n_classes: int, name: str) -> np.ndarray:
    """`y` as a 1-D integer array of class ids in [0, n_classes); a clear ValueError otherwise."""
    if not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or len(y) == 0):
        raise ValueError(f"{name} must be a 1-D sequence of integer class ids, got shape {y.shape}, dtype {y.dtype}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name}: class ids must be in [0, {n_classes}), found [{y.min()}, {y.max()}]")
    return y


def per_class_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Accuracy of each class (n_classes,): the diagonal of the row-normalised confusion matrix
    (0 for a class with no examples)."""
    cm = confusion(y_true, y_pred, n_classes)
    return cm.diagonal() / np.maximum(cm.sum(axis=1), 1)


@dataclass(frozen=True)
class LabelsNeeded:
    """Labels a learning curve needs to reach an accuracy: `value`, and `bound` = None (measured,
    interpolated between two budgets of the grid), "lower" (never reached on the grid: the true
    value is above `value`, *censored*) or "upper" (already reached at the smallest budget)."""

    value: float
    bound: str | None = None

    @property
    def censored(self) -> bool:
        return self.bound is not None

    def __str__(self) -> str:
        if self.bound == "lower":
            return f"> {self.value:g} (censored: never reached on the grid)"
        if self.bound == "upper":
            return f"<= {self.value:g} (reached at the smallest budget)"
        return f"{self.value:.3g}"


def labels_needed(budgets, accuracies, target: float) -> LabelsNeeded:
    """How many labels the curve (budgets, accuracies) needs to reach `target`: the first crossing,
    interpolated linearly in log(budget) between the two budgets around it.

    budgets: increasing positive numbers (labels, e.g. per class); accuracies: same length.
    Never reached -> LabelsNeeded(max budget, "lower"): a lower bound, not a measurement.
    """
    b = np.asarray(budgets, dtype=float)
    a = np.asarray(accuracies, dtype=float)
    if b.ndim != 1 or b.shape != a.shape or len(b) == 0:
        raise ValueError(f"budgets and accuracies must be 1-D of the same non-zero length, got {b.shape} and {a.shape}")
    if (b <= 0).any() or (np.diff(b) <= 0).any():
        raise ValueError(f"budgets must be positive and increasing, got {b.tolist()}")
    if not math.isfinite(target):
        raise ValueError(f"target must be a finite accuracy, got {target}")
    if not np.isfinite(a).all():
        raise ValueError(f"accuracies must be finite numbers, got {a.tolist()}")
    hits = np.flatnonzero(a >= target)
    if len(hits) == 0:
        return LabelsNeeded(float(b[-1]), "lower")
    i = int(hits[0])
    if i == 0:
        return LabelsNeeded(float(b[0]), "upper")
    frac = (target - a[i - 1]) / (a[i] - a[i - 1])
    return LabelsNeeded(float(np.exp(np.log(b[i - 1]) + frac * (np.log(b[i]) - np.log(b[i - 1])))))


def _as_tuple(inputs) -> tuple[torch.Tensor, ...]:
    """`inputs` as a non-empty tuple of tensors with one shared, non-zero first dimension N."""
    tensors = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not tensors or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in tensors):
        raise ValueError("inputs must be a tensor (N, ...) or a tuple/list of tensors (N, ...), "
                         f"got {type(inputs).__name__}")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) > 1:
        raise ValueError(f"the input tensors differ in length (first dimension): {lengths}")
    if lengths[0] == 0:
        raise ValueError("inputs are empty (0 examples): nothing to predict")
    if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in tensors):
        raise ValueError("inputs hold NaN or inf values: the predictions would be meaningless; clean the data first")
    return tensors


def linear_probe(train, val, test=None, grid=(0.01, 0.1, 1.0, 10.0, 100.0)) -> dict:
    """A logistic-regression probe on fixed features, its regularisation C chosen on validation.

    train/val/test: (X (N, D) array or sparse matrix, y (N,) ints). Fits one
    `sklearn.linear_model.LogisticRegression` per C in `grid`, keeps the one with the best validation
    accuracy (the smallest C on ties) and scores it on test once. Returns {"C", "val", "test", "model"}
    ("test" only when `test` is given: a probe that only initialises a head needs none).
    """
    from sklearn.linear_model import LogisticRegression

    if len(train[1]) == 0:
        raise ValueError("the probe's training set is empty")
    if len(set(np.asarray(train[1]).tolist())) < 2:
        raise ValueError("the probe needs labelled examples of at least 2 classes")
    best = None
    for C in grid:
        if not C > 0:
            raise ValueError(f"every C in grid must be > 0, got {C}")
        clf = LogisticRegression(C=C, max_iter=3000).fit(*train)
        val_accuracy = clf.score(*val)
        if best is None or val_accuracy > best["val"]:
            best = {"C": C, "val": val_accuracy, "model": clf}
    if test is not None:
        best["test"] = best["model"].score(*test)
    return best
