"""ptm_lib.nets.registry (+ nets.mlp): register, build, and the one config <-> dict conversion."""
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
import torch

import ptm_lib as ptm
from ptm_lib.nets import common, mlp, registry
from ptm_lib.nets.registry import ARCHITECTURES, build, config_dict, config_from_dict, config_to_dict, register


@dataclass
class NeedsWidth:
    width: int                     # required: no default
    name: str = "x"
    tags: list = field(default_factory=list)


def test_config_round_trips_through_a_plain_dict():
    config = mlp.MLPConfig(hidden=16, depth=2)
    d = config_to_dict(config)
    assert d == {"in_dim": 64, "hidden": 16, "depth": 2, "n_classes": 10, "dropout": 0.0}
    assert config_from_dict(mlp.MLPConfig, d) == config
    assert config_from_dict(NeedsWidth, {"width": 3}) == NeedsWidth(3)   # defaults fill the rest
    assert config_dict(mlp.MLP(config)) == d


def test_config_from_dict_names_unknown_and_missing_fields():
    with pytest.raises(ValueError, match=r"MLPConfig: unknown fields \['colour', 'size'\]"):
        config_from_dict(mlp.MLPConfig, {"hidden": 8, "colour": "red", "size": 3})
    with pytest.raises(ValueError, match=r"NeedsWidth: missing required fields \['width'\]"):
        config_from_dict(NeedsWidth, {"name": "y"})
    with pytest.raises(ValueError, match=r"unknown fields \['depth'\]; missing required fields \['width'\]"):
        config_from_dict(NeedsWidth, {"depth": 2})
    with pytest.raises(ValueError, match="must be given as a dict of fields, got list"):
        config_from_dict(NeedsWidth, [3])
    with pytest.raises(TypeError, match="expected a config dataclass instance, got dict"):
        config_to_dict({"width": 3})


def test_build_rebuilds_a_registered_model_with_clear_errors():
    model = build("mlp", {"hidden": 8, "depth": 0})
    assert type(model) is mlp.MLP and model.config == mlp.MLPConfig(hidden=8, depth=0)
    assert model(torch.zeros(3, 64)).shape == (3, 10)
    with pytest.raises(ValueError, match=r"unknown architecture 'nope'; known: \[.*'mlp'"):
        build("nope", {})
    with pytest.raises(ValueError, match=r"unknown fields \['hiden'\]"):
        build("mlp", {"hiden": 8})


def test_every_course_architecture_is_known_to_build():
    registry.model_class("mlp")
    assert all(name in sys.modules for name in registry.MODEL_MODULES)
    # every registered architecture lives in one of MODEL_MODULES, so a checkpoint of it loads in a fresh process
    assert {cls.__module__ for cls in ARCHITECTURES.values()} <= set(registry.MODEL_MODULES) | {"tests.test_registry"}
    assert {"mlp", "transformer_lm", "conv_lm"} <= set(ARCHITECTURES)
    assert ARCHITECTURES["mlp"] is mlp.MLP is ptm.MLP and ptm.MLPConfig is mlp.MLPConfig


def test_register_refuses_incomplete_classes_and_name_clashes(monkeypatch):
    monkeypatch.setattr(registry, "ARCHITECTURES", dict(ARCHITECTURES))

    class NoConfig(torch.nn.Module):
        arch = "no-config"

    with pytest.raises(TypeError, match="NoConfig needs class attributes `arch`"):
        register(NoConfig)

    class Impostor(torch.nn.Module):
        arch, config_class = "mlp", mlp.MLPConfig

    with pytest.raises(ValueError, match="'mlp' is already registered"):
        register(Impostor)
    assert register(mlp.MLP) is mlp.MLP  # registering the same class again is harmless


def test_mlp_shapes_and_parameter_count():
    model = ptm.MLP()
    assert ptm.count_params is common.count_params
    assert ptm.count_params(model) == (64 * 64 + 64) + (64 * 10 + 10)
    assert ptm.MLP(ptm.MLPConfig(depth=0))(torch.zeros(5, 64)).shape == (5, 10)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 64\), got \(2, 8, 8\); flatten"):
        model(torch.zeros(2, 8, 8))


def test_importing_ptm_lib_stays_light():
    code = ("import sys, ptm_lib; heavy = [m for m in ('matplotlib', 'ipywidgets', 'sklearn', 'ptm_lib.text', "
            "'ptm_lib.viz') if m in sys.modules]; print(heavy); ptm_lib.viz; print('ptm_lib.viz' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]  # nothing heavy on import; ptm_lib.viz imported on first use
