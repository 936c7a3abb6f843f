import pytest
import torch

from ptm_lib.device import autocast, available_devices, environment_info, pick_device
from ptm_lib.seeding import seed_everything


def test_cpu_path_always_works(monkeypatch):
    assert "cpu" in available_devices()
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("PTM_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_default_device_follows_cuda_mps_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("ptm_lib.device._mps_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr("ptm_lib.device._mps_available", lambda: True)
    assert pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == torch.device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        pick_device("cuda")


def test_autocast_is_noop_on_cpu():
    with autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_environment_info_and_seeding():
    info = environment_info(torch.device("cpu"))
    assert info["torch"] == torch.__version__ and info["device"] == "cpu" and info["torch_threads"] >= 1
    g = seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3)) and torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)
