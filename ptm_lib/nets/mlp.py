"""A multilayer perceptron: the course's first model (flattened digits -> class logits)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import check_sizes, register


@dataclass
class MLPConfig:
    in_dim: int = 64      # input features (8x8 digits flattened: 64)
    hidden: int = 64      # width of every hidden layer
    depth: int = 1        # number of hidden layers (0 = logistic regression)
    n_classes: int = 10
    dropout: float = 0.0

    def __post_init__(self):
        check_sizes(self, {"in_dim": 1, "hidden": 1, "depth": 0, "n_classes": 1}, ("dropout",))


@register
class MLP(nn.Module):
    """A multilayer perceptron classifier: x (B, in_dim) -> logits (B, n_classes)."""

    arch = "mlp"
    config_class = MLPConfig

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = config or MLPConfig()
        c = self.config
        layers, width = [], c.in_dim
        for _ in range(c.depth):
            layers += [nn.Linear(width, c.hidden), nn.ReLU(), nn.Dropout(c.dropout)]
            width = c.hidden
        layers.append(nn.Linear(width, c.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self.config.in_dim:
            raise ValueError(f"MLP expects input of shape (batch, {self.config.in_dim}), got "
                             f"{tuple(getattr(x, 'shape', ()))}; flatten images first, e.g. x.reshape(len(x), -1)")
        dtype = self.net[0].weight.dtype
        if x.dtype != dtype:
            raise TypeError(f"MLP expects floating-point input of its weights' dtype {dtype}, got {x.dtype}; "
                            f"convert it with x.to({dtype})")
        return self.net(x)
