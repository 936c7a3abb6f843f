"""Small models, and the registry that lets a checkpoint rebuild its model from JSON.

Every model class in the course has two class attributes:
* ``arch``         — a short name written into checkpoints ("mlp", "transformer-encoder", ...);
* ``config_class`` — the dataclass its ``config`` attribute is an instance of.
`register` adds a class to `ARCHITECTURES`; `build(arch, config_dict)` rebuilds one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ARCHITECTURES: dict[str, type[nn.Module]] = {}


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make `cls` loadable from a checkpoint by its `arch` name."""
    if cls.arch in ARCHITECTURES and ARCHITECTURES[cls.arch] is not cls:
        raise ValueError(f"architecture name {cls.arch!r} is already registered")
    ARCHITECTURES[cls.arch] = cls
    return cls


def build(arch: str, config: dict) -> nn.Module:
    """Instantiate the registered model `arch` from a plain config dict (as stored in JSON)."""
    _import_all_models()
    if arch not in ARCHITECTURES:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    cls = ARCHITECTURES[arch]
    return cls(cls.config_class(**config))


def config_dict(model: nn.Module) -> dict:
    """The model's config as a JSON-ready dict."""
    return asdict(model.config)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _import_all_models() -> None:
    """Import every module that registers models (so `build` knows them all)."""
    import importlib

    for name in ("ptm_lib.transformer", "ptm_lib.lstm"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real import error inside an existing module
                raise


@dataclass
class MLPConfig:
    in_dim: int = 64
    hidden: int = 64
    depth: int = 1
    n_classes: int = 10
    dropout: float = 0.0


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
        if x.dim() != 2 or x.shape[1] != self.config.in_dim:
            raise ValueError(f"MLP expects input of shape (batch, {self.config.in_dim}), got {tuple(x.shape)}; "
                             "flatten images first, e.g. x.reshape(len(x), -1)")
        return self.net(x)
