"""Helpers every sequence model shares: padding, pooling, parameter counts.

Conventions: ``ids`` (B, T) int64 and ``attention_mask`` (B, T) bool, True on real tokens,
right-padded (what `ptm_lib.text.WordTokenizer.encode_batch` makes).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["check_ids", "trim_padding", "masked_mean", "as_bool_mask", "count_params"]


def check_ids(ids, vocab_size: int, attention_mask=None, max_len: int | None = None) -> torch.Tensor | None:
    """Clear errors for bad model input, before any compute: ids must be a non-empty (batch, time)
    int64 tensor of ids in [0, vocab_size) (T <= max_len), the mask None or like ids (see
    `as_bool_mask`). Returns the mask as bool (or None)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
        raise ValueError(f"ids must be a (batch, time) int64 tensor, got "
                         f"{getattr(ids, 'dtype', type(ids).__name__)} of shape {tuple(getattr(ids, 'shape', ()))}")
    B, T = ids.shape
    if B == 0 or T == 0:
        raise ValueError(f"empty batch: ids has shape {(B, T)}; give at least one token of one sentence")
    if max_len is not None and T > max_len:
        raise ValueError(f"sequence length {T} > max_len {max_len}; truncate (encode_batch(max_len=...)) "
                         "or build the model with a larger max_len")
    tracing = torch.compiler.is_compiling()   # torch.export / torch.compile: no data-dependent checks
    if ids.device.type == "cpu" and not tracing and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"token ids must be in [0, {vocab_size}), found [{int(ids.min())}, {int(ids.max())}]: "
                         "was the text encoded with this model's tokenizer?")
    return as_bool_mask(attention_mask, (B, T))


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
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a tensor (or None), got {type(mask).__name__}")
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
