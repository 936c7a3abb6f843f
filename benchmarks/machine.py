"""What machine the figures come from, and its measured fp32 matmul peak (the MFU denominator)."""
from __future__ import annotations

import os
import platform

import torch

from ptm_lib.trends.compute import matmul_gflops


def machine_info(threads: int, device="cpu") -> dict:
    """CPU, core count, torch threads, library versions, device and the load average now."""
    try:
        import transformers
        hf_version = transformers.__version__
    except ImportError:
        hf_version = None
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": threads, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": hf_version,
            "device": f"cuda: {torch.cuda.get_device_name(device)}" if torch.device(device).type == "cuda" else "cpu",
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if torch.device(device).type == "cuda" else None,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def matmul_peak_gflops(sizes=(512, 1024, 2048), repeats: int = 5, device="cpu") -> dict:
    """fp32 GFLOP/s of square matmuls (`ptm_lib.trends.compute.matmul_gflops`, the function chapter 8g
    teaches with), per size; the best size is the peak that MFU figures are divided by (with the
    current torch thread count)."""
    per_size = {n: matmul_gflops(torch.float32, n=n, repeats=repeats, device=device) for n in sizes}
    return {"gflops_by_size": {str(n): round(v, 1) for n, v in per_size.items()},
            "peak_gflops": round(max(per_size.values()), 1)}
