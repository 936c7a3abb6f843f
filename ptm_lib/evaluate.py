"""Evaluation helpers: predictions, accuracy, confusion matrices."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .device import autocast


@torch.no_grad()
def predict(model: nn.Module, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of `model` on X, in eval mode and in batches: (N, ...) -> (N, C), on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(X), batch_size):
        with autocast(device):
            chunks.append(model(X[start:start + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(chunks)


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of examples whose arg-max prediction equals the label (0..1)."""
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
    return (predict(model, X, batch_size).argmax(-1) == y.cpu()).float().mean().item()


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Confusion matrix (n_classes, n_classes): rows are true classes, columns predictions."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=list(range(n_classes)))


def per_class_accuracy(y_true, y_pred, n_classes: int) -> np.ndarray:
    """Accuracy of each class (n_classes,): the diagonal of the row-normalised confusion matrix."""
    cm = confusion(y_true, y_pred, n_classes)
    return cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
