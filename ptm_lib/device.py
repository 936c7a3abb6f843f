"""Where tensors live: device choice, mixed precision, and an environment report.

Order of preference: CUDA > MPS > CPU. Override with `pick_device("cpu")` or the
environment variable ``PTM_DEVICE=cpu`` (useful on Macs: MPS has had numerically
wrong kernels; if a loss looks odd on MPS, compare with ``PTM_DEVICE=cpu``).
"""
from __future__ import annotations

import contextlib
import os
import platform
import sys

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the device to train on.

    `prefer` (or the env var PTM_DEVICE) wins when given: "cpu", "cuda", "cuda:1", "mps".
    Asking for a device this machine lacks raises a ValueError that says what is available.
    """
    wanted = prefer or os.environ.get("PTM_DEVICE")
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"PTM_DEVICE/prefer asks for {wanted!r} but CUDA is not available here; "
                             f"available: {available_devices()}. Unset PTM_DEVICE or use 'cpu'.")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"PTM_DEVICE/prefer asks for 'mps' but MPS is not available here; "
                             f"available: {available_devices()}.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """Names of every device torch can use here; never empty ("cpu" is always there)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names + ["cpu"]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def autocast(device: torch.device | str):
    """Mixed precision (bf16) on CUDA only; a no-op context elsewhere.

    On CPU, bf16 matmuls can be ~100x slower than fp32 on machines without AMX, so we stay in fp32.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def environment_info(device: torch.device | None = None) -> dict:
    """Versions, device and threads: paste this into a bug report."""
    import matplotlib
    import numpy
    import sklearn

    device = device or pick_device()
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "device": str(device),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
