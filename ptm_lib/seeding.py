"""Reproducibility: one call seeds Python, NumPy and torch."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed `random`, NumPy and torch (all devices); return a torch.Generator seeded the same.

    Pass the returned generator to data loaders and masking so a run is repeatable
    even when other code draws random numbers in between.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
