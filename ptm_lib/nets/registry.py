"""The architecture registry: how a checkpoint's JSON rebuilds its model.

Every model class in the course has two class attributes and one instance attribute:
* ``arch``         — a short name written into checkpoints ("mlp", "transformer_lm", ...);
* ``config_class`` — a dataclass of hyper-parameters;
* ``config``       — the instance of ``config_class`` the model was built from.

`register` adds a class to `ARCHITECTURES`; `build(arch, config_dict)` rebuilds one.
`config_to_dict` / `config_from_dict` are the one way configs become JSON and back.
"""
from __future__ import annotations

import dataclasses
import importlib
import numbers

from torch import nn

ARCHITECTURES: dict[str, type[nn.Module]] = {}
MODEL_MODULES = ("ptm_lib.nets.mlp", "ptm_lib.nets.transformer", "ptm_lib.nets.lstm", "ptm_lib.vision.resnet",
                 "ptm_lib.speech.wav2vec", "ptm_lib.bio.convlm")
"""The modules whose import registers every architecture of the course."""


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make `cls` loadable from a checkpoint by its `arch` name."""
    if not hasattr(cls, "arch") or not dataclasses.is_dataclass(getattr(cls, "config_class", None)):
        raise TypeError(f"{cls.__name__} needs class attributes `arch` (str) and `config_class` (a dataclass)")
    if cls.arch in ARCHITECTURES and ARCHITECTURES[cls.arch] is not cls:
        raise ValueError(f"architecture name {cls.arch!r} is already registered")
    ARCHITECTURES[cls.arch] = cls
    return cls


def model_class(arch: str) -> type[nn.Module]:
    """The registered class of `arch`; a ValueError listing the known names otherwise."""
    _import_all_models()
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def build(arch: str, config: dict) -> nn.Module:
    """Instantiate the registered model `arch` from a plain config dict (as stored in JSON)."""
    cls = model_class(arch)
    return cls(config_from_dict(cls.config_class, config))


def config_to_dict(config) -> dict:
    """A config dataclass as a JSON-ready dict: MLPConfig(hidden=16) -> {"in_dim": 64, "hidden": 16, ...}."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a config dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, d: dict):
    """Rebuild a `config_class` instance from a dict, the inverse of `config_to_dict`.

    Raises ValueError naming the unknown fields and the missing required ones (fields without a
    default), rather than the TypeError a bare ``config_class(**d)`` would give.
    """
    name = config_class.__name__
    if not isinstance(d, dict):
        raise ValueError(f"a {name} must be given as a dict of fields, got {type(d).__name__}")
    known = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    unknown = sorted(set(d) - set(known))
    missing = [k for k, f in known.items() if k not in d
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    problems = ([f"unknown fields {unknown}"] if unknown else []) + ([f"missing required fields {missing}"] if missing else [])
    if problems:
        raise ValueError(f"{name}: {'; '.join(problems)} (its fields are {list(known)})")
    return config_class(**d)


def check_sizes(config, minimum: dict[str, int], probabilities: tuple[str, ...] = ()) -> None:
    """A clear ValueError unless each `minimum` field of `config` is an int >= its minimum and each
    of `probabilities` is in [0, 1) (a dropout rate): what model configs call in __post_init__."""
    name = type(config).__name__
    for field, low in minimum.items():
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"{name}.{field} must be an integer >= {low}, got {value!r}")
    for field in probabilities:
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise ValueError(f"{name}.{field} must be a probability in [0, 1), got {value!r}")


def config_dict(model: nn.Module) -> dict:
    """The model's config as a JSON-ready dict: ``config_to_dict(model.config)``."""
    return config_to_dict(model.config)


def _import_all_models() -> None:
    """Import every module that registers models (so `build` knows them all)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
