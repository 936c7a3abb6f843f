"""A dilated convolutional masked language model for DNA, GPN-style, and its classifier.

Genomic language models are often convolutional: GPN (Benegas, Batra & Song 2023, PNAS
120:e2311219120) pretrains a stack of dilated convolutions with the masked-LM objective on one
token per base. Convolutions suit DNA: a motif is a local pattern at any position, and dilations
widen the receptive field exponentially, so a few layers see both boxes of a promoter.

    ids (B, T) -> embedding (B, T, D) -> n_layers x [dilated Conv1d (kernel k, dilation 2**i) -> GELU
    -> LayerNorm, residual] -> h (B, T, D) -> lm_head -> logits (B, T, V)

`ConvLMClassifier` pools h over the sequence (max: "is the motif anywhere?", concatenated with
the mean) and adds a linear head. Masking is `ptm_lib.text.objectives.mask_tokens` (BERT's
80/10/10), the same objective the course's transformer is pretrained with.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.common import check_ids
from ..nets.registry import check_sizes, register


@dataclass
class ConvLMConfig:
    """vocab_size: V.  d_model: channels D.  n_layers: dilated blocks (dilation 1, 2, 4, ...).
    kernel: odd kernel size.  pad_id: id of [PAD].  n_classes: used by `ConvLMClassifier` only."""

    vocab_size: int
    d_model: int = 64
    n_layers: int = 4
    kernel: int = 5
    pad_id: int = 0
    n_classes: int = 0

    def __post_init__(self):
        check_sizes(self, {"vocab_size": 1, "d_model": 1, "n_layers": 1, "kernel": 1, "n_classes": 0})
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same-length output), got {self.kernel}")

    @property
    def receptive_field(self) -> int:
        """Bases one output position sees: 1 + (kernel - 1) * (1 + 2 + ... + 2**(n_layers - 1))."""
        return 1 + (self.kernel - 1) * (2 ** self.n_layers - 1)


class DilatedBlock(nn.Module):
    """x + LayerNorm(GELU(Conv1d(x))) with padding that keeps the length: (B, T, D) -> (B, T, D)."""

    def __init__(self, d: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(d, d, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.norm = nn.LayerNorm(d)

    def forward(self, x, keep):
        y = self.conv((x * keep).transpose(1, 2)).transpose(1, 2)   # padding contributes zeros
        return x + self.norm(F.gelu(y))


@register
class ConvLM(nn.Module):
    """Dilated-CNN masked language model: `encode` (B, T) -> (B, T, D); `forward` -> logits (B, T, V)."""

    arch, config_class = "conv_lm", ConvLMConfig

    def __init__(self, config: ConvLMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model, padding_idx=c.pad_id)
        self.blocks = nn.ModuleList(DilatedBlock(c.d_model, c.kernel, 2 ** i) for i in range(c.n_layers))
        self.lm_head = nn.Linear(c.d_model, c.vocab_size)

    def encode(self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        attention_mask = check_ids(ids, self.config.vocab_size, attention_mask)
        keep = (attention_mask if attention_mask is not None else ids != self.config.pad_id).unsqueeze(-1).float()
        h = self.embed(ids)
        for block in self.blocks:
            h = block(h, keep)
        return h * keep

    def forward(self, ids, attention_mask=None):
        return self.lm_head(self.encode(ids, attention_mask))

    def make_classifier(self, strategy: str, n_classes: int) -> "ConvLMClassifier":
        """A classifier on this architecture, for `ptm_lib.text.finetune`'s strategies: "scratch" (random
        weights), "full" (a copy of these weights, all trained) or "partial" (only the last block and head)."""
        if strategy == "scratch":
            return ConvLMClassifier(replace(self.config, n_classes=n_classes))
        if strategy not in ("partial", "full"):
            raise ValueError(f"make_classifier builds 'scratch', 'partial' or 'full' models, got {strategy!r}")
        model = ConvLMClassifier.from_lm(self, n_classes)
        if strategy == "partial":
            for module in (model.body.embed, *model.body.blocks[:-1]):
                module.requires_grad_(False)
        return model


@register
class ConvLMClassifier(nn.Module):
    """A `ConvLM` body, [max ; mean] pooling over real positions, a linear head: (B, T) -> (B, n_classes)."""

    arch, config_class = "conv_lm_classifier", ConvLMConfig

    def __init__(self, config: ConvLMConfig):
        super().__init__()
        if config.n_classes < 2:
            raise ValueError(f"a classifier needs config.n_classes >= 2, got {config.n_classes}")
        self.config = config
        self.body = ConvLM(config)
        self.head = nn.Linear(2 * config.d_model, config.n_classes)

    @classmethod
    def from_lm(cls, lm: ConvLM, n_classes: int) -> "ConvLMClassifier":
        """A classifier whose body is a copy of the pretrained `lm` (its LM head is kept but unused)."""
        model = cls(replace(lm.config, n_classes=n_classes))
        model.body.load_state_dict(lm.state_dict())
        return model

    def features(self, ids, attention_mask=None) -> torch.Tensor:
        """(B, 2D): max and mean of the encoder's outputs over the real positions."""
        attention_mask = check_ids(ids, self.config.vocab_size, attention_mask)   # bool (B, T) or None
        h = self.body.encode(ids, attention_mask)
        keep = (attention_mask if attention_mask is not None else ids != self.config.pad_id).unsqueeze(-1)
        hmax = h.masked_fill(~keep, float("-inf")).amax(1)
        hmax = torch.where(keep.any(1), hmax, torch.zeros_like(hmax))   # a row with no real position: 0, not -inf
        hmean = h.sum(1) / keep.sum(1).clamp(min=1)
        return torch.cat([hmax, hmean], dim=-1)

    def forward(self, ids, attention_mask=None):
        return self.head(self.features(ids, attention_mask))
