"""Helpers every sequence model shares: padding, pooling, parameter counts.

Conventions: ``ids`` (B, T) int64 and ``attention_mask`` (B, T) bool, True on real tokens,
right-padded (what `ptm_lib.text.WordTokenizer.encode_batch` makes).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["trim_padding", "masked_mean", "as_bool_mask", "count_params"]


def trim_padding(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the right-hand columns that are padding in every row (a batch sliced from a corpus is
    padded to the corpus's longest sentence): (B, T), (B, T) -> (B, T'), (B, T'), T' >= 1."""
    T = max(1, int(mask.sum(1).max())) if mask.numel() else 1
    return ids[:, :T], mask[:, :T]


def as_bool_mask(mask: torch.Tensor | None, shape: tuple[int, ...] | None = None) -> torch.Tensor | None:
    """An attention mask as bool (True = real token). A 0/1 integer or float mask (as Hugging Face
    tokenizers give) is converted; anything else -- an additive -inf/0 bias, other values, the wrong
    shape -- is refused with a ValueError, because using it as is would silently change the model."""
    if mask is None:
        return None
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)}, expected {tuple(shape)} (like ids)")
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError("attention_mask must be bool or 0/1 (1 = real token); got other values -- "
                             "an additive bias (0/-inf) is not accepted, convert it with `mask == 0`")
        return mask != 0
    raise ValueError(f"attention_mask must be bool or 0/1, got dtype {mask.dtype}")


def masked_mean(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of h (B, T, D) over the real tokens of each row -> (B, D); a row with no real token gives
    zeros (never NaN)."""
    if mask is None:
        return h.mean(1)
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (a tensor shared by two modules, like a tied embedding, counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total
