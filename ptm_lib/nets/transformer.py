"""A small, readable transformer (nanoGPT-style) -- encoder, decoder, encoder-decoder.

One code path serves the three families of pre-trained models:

* **encoder** (BERT-like): ``TransformerConfig(causal=False)`` + masked LM,
* **decoder** (GPT-like):  ``TransformerConfig(causal=True)`` + causal LM,
* **encoder-decoder** (T5/BART-like): :class:`EncoderDecoder` + denoising.

Shapes used in docstrings: B = batch, T = sequence length, D = ``d_model``,
H = ``n_heads``, V = ``vocab_size``, C = ``n_classes``.

``attention_mask`` is a bool tensor (B, T), True on real tokens and False on
padding (a 0/1 integer or float mask is converted; an additive -inf bias is
refused).  Padding is assumed to be on the right (as produced by
``WordTokenizer.encode_batch``) -- then outputs at real tokens do not depend on
how much padding follows.  A row with no real token at all gives finite outputs
(it attends to every position) instead of NaN.

Every model class has the class attributes ``arch`` and ``config_class`` and an
instance attribute ``config`` (a dataclass), and is registered with
``ptm_lib.models.register``: ``ptm_lib.models.build(arch, config_dict)`` rebuilds
it, which is how checkpoints are loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .common import as_bool_mask, check_ids, count_params, masked_mean, trim_padding
from .registry import check_sizes, register

__all__ = [
    "TransformerConfig",
    "plain_attention",
    "SelfAttention",
    "CrossAttention",
    "Block",
    "TransformerLM",
    "TransformerClassifier",
    "EncoderDecoder",
    "TransformerBody",
    "BertLMHead",
    "init_weights",
    "set_sdpa",
]


@dataclass
class TransformerConfig:
    """Hyper-parameters of every model in this file.

    vocab_size: V.  max_len: longest sequence (position embeddings).
    d_model, n_layers, n_heads, d_ff (None -> 4 * d_model), dropout.
    causal: True -> decoder (each token sees only the past); False -> encoder.
    tie_weights: LM head shares the token-embedding matrix.
    pad_id: id of [PAD].
    n_classes / pooling ("mean" over real tokens, or "cls" = position 0):
        used by :class:`TransformerClassifier` only.
    n_dec_layers: decoder depth of :class:`EncoderDecoder` (None -> n_layers).
    mlm_head: "linear" (the LM head is one linear layer, tied to the token embeddings) or "bert"
        (BERT's head: dense, GELU and LayerNorm before that layer; :class:`TransformerLM` only).
    """

    vocab_size: int
    max_len: int = 64
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None
    dropout: float = 0.0
    causal: bool = False
    tie_weights: bool = True
    pad_id: int = 0
    n_classes: int = 0
    pooling: str = "mean"
    n_dec_layers: int | None = None
    mlm_head: str = "linear"

    def __post_init__(self):
        check_sizes(self, {"vocab_size": 1, "max_len": 1, "d_model": 1, "n_layers": 0, "n_heads": 1,
                           "n_classes": 0}, ("dropout",))
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        check_sizes(self, {"d_ff": 1, **({"n_dec_layers": 0} if self.n_dec_layers is not None else {})})
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if self.n_layers < 0 or self.max_len < 1:
            raise ValueError("n_layers must be >= 0 and max_len >= 1")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.mlm_head not in ("linear", "bert"):
            raise ValueError(f"mlm_head must be 'linear' or 'bert', got {self.mlm_head!r}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} outside vocabulary")


# ----------------------------------------------------------------- attention
_USE_SDPA = True


def set_sdpa(enabled: bool) -> None:
    """Globally switch between ``F.scaled_dot_product_attention`` and
    :func:`plain_attention` (the readable reference; used by the tests)."""
    global _USE_SDPA
    _USE_SDPA = bool(enabled)


def plain_attention(q, k, v, mask=None, causal=False, dropout_p: float = 0.0):
    """Reference attention, written out: softmax(q k^T / sqrt(Dh)) v.

    q: (B, H, Tq, Dh), k/v: (B, H, Tk, Dh).
    mask: bool, broadcastable to (B, H, Tq, Tk), True = may attend.
    dropout_p: dropout on the attention *weights* (as ``F.scaled_dot_product_attention`` does).
    Returns (B, H, Tq, Dh).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))       # (B, H, Tq, Tk)
    if causal:
        Tq, Tk = q.size(-2), k.size(-2)
        tri = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~tri, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


def _attend(q, k, v, key_mask, causal, dropout_p):
    """q,k,v (B,H,T,Dh); key_mask (B,Tk) bool or None."""
    mask = None
    if key_mask is not None:
        key_mask = key_mask | ~key_mask.any(-1, keepdim=True)       # a row with no real token: attend to all, no NaN
        mask = key_mask[:, None, None, :]                            # (B, 1, 1, Tk)
        if causal:
            Tq, Tk = q.size(-2), k.size(-2)
            tri = torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril()
            mask = mask & tri                                        # (B, 1, Tq, Tk)
            causal = False
    if _USE_SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                              dropout_p=dropout_p)
    return plain_attention(q, k, v, mask=mask, causal=causal, dropout_p=dropout_p)


class SelfAttention(nn.Module):
    """Multi-head self-attention.  x (B, T, D) -> (B, T, D)."""

    def __init__(self, cfg: TransformerConfig, causal: bool):
        super().__init__()
        self.n_heads, self.causal, self.dropout = cfg.n_heads, causal, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, key_mask=None):
        B, T, D = x.shape
        # split, then (B, H, T, Dh) views: their backward is one cheap concatenation (a (3, B, H, T, Dh)
        # permute of the whole projection costs a slow strided copy in the backward pass)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in self.qkv(x).split(D, dim=-1))
        y = _attend(q, k, v, key_mask, self.causal, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class CrossAttention(nn.Module):
    """Decoder-to-encoder attention.  x (B, Tq, D), memory (B, Tk, D) -> (B, Tq, D)."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x, memory, memory_mask=None):
        B, Tq, D = x.shape
        Tk, H = memory.size(1), self.n_heads
        q = self.q(x).view(B, Tq, H, D // H).transpose(1, 2)
        k, v = self.kv(memory).view(B, Tk, 2, H, D // H).permute(2, 0, 3, 1, 4)
        y = _attend(q, k, v, memory_mask, False, self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, Tq, D))


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)) [+ cross(LN(x))] + mlp(LN(x))."""

    def __init__(self, cfg: TransformerConfig, causal: bool, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg, causal)
        self.cross = None
        if cross:
            self.ln_c = nn.LayerNorm(cfg.d_model)
            self.cross = CrossAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(),
                                 nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, key_mask=None, memory=None, memory_mask=None):
        x = x + self.drop(self.attn(self.ln1(x), key_mask))
        if self.cross is not None:
            x = x + self.drop(self.cross(self.ln_c(x), memory, memory_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


def init_weights(module: nn.Module) -> None:
    """GPT-2 style: normal(0, 0.02) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)


class TransformerBody(nn.Module):
    """Embeddings + blocks + final LN.  ids (B, T) -> hidden (B, T, D)."""

    def __init__(self, cfg: TransformerConfig, causal: bool, n_layers: int, cross: bool = False,
                 tok_emb: nn.Embedding | None = None):
        super().__init__()
        self.tok_emb = tok_emb if tok_emb is not None else nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg, causal, cross) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.max_len, self.vocab_size = cfg.max_len, cfg.vocab_size

    def check_inputs(self, ids: torch.Tensor, attention_mask=None):
        """Clear errors for bad input (before any compute); returns the mask as bool or None."""
        return check_ids(ids, self.vocab_size, attention_mask, self.max_len)

    def stages(self, ids, attention_mask=None, memory=None, memory_mask=None):
        """Yield (name, tensor) for every stage: token and position embeddings, each block's
        output, the final LayerNorm (the contextual vectors H, (B, T, D))."""
        mask = self.check_inputs(ids, attention_mask)
        if mask is not None and not torch.compiler.is_compiling() and bool(mask.all()):
            mask = None          # no padding: attend without a mask (SDPA's fast kernels), the same outputs
        tok = self.tok_emb(ids)
        yield "token embeddings W_E[x]", tok
        pos = self.pos_emb(torch.arange(ids.shape[1], device=ids.device))
        yield "position embeddings W_P[0:T]", pos
        x = self.drop(tok + pos)
        for i, blk in enumerate(self.blocks):
            x = blk(x, mask, memory, memory_mask)
            yield f"block {i + 1}", x
        yield "final LayerNorm: H", self.ln_f(x)

    def forward(self, ids, attention_mask=None, memory=None, memory_mask=None):
        *_, (_, hidden) = self.stages(ids, attention_mask, memory, memory_mask)
        return hidden


def _blocks_flops(c: TransformerConfig, n_params_blocks: int, n_layers: int, T: int) -> float:
    """Forward FLOPs per token of a stack (Kaplan et al. 2020): 2 * weights + 2 * n_layers * T * D
    for the attention scores and weighted sums."""
    return 2 * n_params_blocks + 2 * n_layers * T * c.d_model


class BertLMHead(nn.Module):
    """BERT's masked-LM head (Devlin et al. 2019): h (..., D) -> dense -> GELU -> LayerNorm ->
    logits (..., V) with `weight` (V, D) (tied to the token embeddings) and `bias` (V,)."""

    def __init__(self, d_model: int, vocab_size: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.weight = nn.Parameter(torch.randn(vocab_size, d_model) * 0.02)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h):
        return F.linear(self.norm(F.gelu(self.dense(h))), self.weight, self.bias)


# --------------------------------------------------------------------- models
@register
class TransformerLM(nn.Module):
    """Language model: encoder (``causal=False``, for MLM) or decoder (``causal=True``, CLM).

    forward(ids (B,T), attention_mask (B,T) bool) -> logits (B, T, V).
    encode(ids, attention_mask) -> hidden states (B, T, D).
    trace(ids, attention_mask) -> {stage name: tensor}, every intermediate shape (chapter 4).
    """

    arch = "transformer_lm"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.body = TransformerBody(config, config.causal, config.n_layers)
        self.lm_head = (nn.Linear(config.d_model, config.vocab_size, bias=True) if config.mlm_head == "linear"
                        else BertLMHead(config.d_model, config.vocab_size))
        init_weights(self)
        if config.tie_weights:
            self.lm_head.weight = self.body.tok_emb.weight

    def encode(self, ids, attention_mask=None):
        """(B, T) -> (B, T, D)"""
        return self.body(ids, attention_mask)

    def forward(self, ids, attention_mask=None):
        """(B, T) -> logits (B, T, V)"""
        return self.lm_head(self.encode(ids, attention_mask))

    @torch.no_grad()
    def trace(self, ids, attention_mask=None) -> dict[str, torch.Tensor]:
        """Every stage of the forward pass, in order: embeddings (B, T, D) and (T, D), each block
        (B, T, D), H (B, T, D), then "LM head: logits Z" (B, T, V). Last entry == forward()."""
        out = dict(self.body.stages(ids, attention_mask))
        out["LM head: logits Z"] = self.lm_head(out["final LayerNorm: H"])
        return out

    @property
    def token_embeddings(self) -> torch.Tensor:
        """(V, D) input embedding matrix."""
        return self.body.tok_emb.weight

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters (tied weights once); non_embedding: without token/position embeddings and LM head."""
        if not non_embedding:
            return count_params(self)
        return count_params(self.body.blocks) + count_params(self.body.ln_f)

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> float:
        """Approximate FLOPs per token (Kaplan et al. 2020): forward = 2 * N_blocks +
        2 * n_layers * T * D + 2 * D * V (the LM head, counted once, tied or not);
        training (forward + backward) = 3x forward."""
        c = self.config
        f = _blocks_flops(c, self.num_params(non_embedding=True), c.n_layers, seq_len or c.max_len)
        f += 2 * c.d_model * c.vocab_size + (2 * c.d_model ** 2 if c.mlm_head == "bert" else 0)
        return float(3 * f if training else f)

    @torch.no_grad()
    def generate(self, ids, max_new_tokens: int, temperature: float = 1.0,
                 generator: torch.Generator | None = None, greedy: bool = False):
        """Causal models only: extend ids (B, T) by ``max_new_tokens`` sampled tokens (in eval mode;
        the model's mode is restored afterwards)."""
        if not self.config.causal:
            raise RuntimeError("generate() needs a causal (decoder) model")
        if max_new_tokens < 0 or temperature <= 0:
            raise ValueError("max_new_tokens must be >= 0 and temperature > 0")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self(ids[:, -self.config.max_len:])[:, -1] / temperature
                if greedy:
                    nxt = logits.argmax(-1, keepdim=True)
                else:
                    nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator)
                ids = torch.cat([ids, nxt], dim=1)
        finally:
            self.train(was_training)
        return ids


@register
class TransformerClassifier(nn.Module):
    """Transformer body + pooling + linear head.

    forward(ids (B,T), attention_mask (B,T)) -> logits (B, C).
    features(ids, attention_mask) -> pooled features (B, D); trailing all-padding columns are
    dropped first (they change nothing but the cost).
    The body has the same parameter names as :class:`TransformerLM`'s body, so
    ``load_body_from(lm)`` transfers pre-trained weights.
    """

    arch = "transformer_classifier"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if config.n_classes < 1:
            raise ValueError("TransformerClassifier needs config.n_classes >= 1")
        self.config = config
        self.body = TransformerBody(config, config.causal, config.n_layers)
        self.head = nn.Linear(config.d_model, config.n_classes)
        init_weights(self)

    @classmethod
    def from_lm(cls, lm: TransformerLM, n_classes: int, pooling: str = "mean",
                dropout: float | None = None) -> "TransformerClassifier":
        """New classifier whose body is a copy of ``lm``'s (pre-trained) body; a new random head."""
        cfg = replace(lm.config, n_classes=n_classes, pooling=pooling)
        if dropout is not None:
            cfg = replace(cfg, dropout=dropout)
        model = cls(cfg)
        model.load_body_from(lm)
        return model

    def load_body_from(self, lm: nn.Module) -> None:
        self.body.load_state_dict(lm.body.state_dict())

    def pool(self, h, attention_mask=None):
        """h (B, T, D) -> (B, D): CLS (position 0) or mean over real tokens."""
        if self.config.pooling == "cls":
            return h[:, 0]
        return masked_mean(h, attention_mask)

    def features(self, ids, attention_mask=None):
        """(B, T) -> pooled sentence vectors (B, D)."""
        if attention_mask is not None:
            attention_mask = self.body.check_inputs(ids, attention_mask)
            if not torch.compiler.is_compiling():   # a data-dependent shape: skipped by torch.export (same outputs)
                ids, attention_mask = trim_padding(ids, attention_mask)
        return self.pool(self.body(ids, attention_mask), attention_mask)

    def forward(self, ids, attention_mask=None):
        return self.head(self.features(ids, attention_mask))

    def freeze_body(self, frozen: bool = True) -> None:
        """Linear probe: only the head trains."""
        for p in self.body.parameters():
            p.requires_grad_(not frozen)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters; non_embedding: without token/position embeddings (blocks, final LN, head)."""
        if not non_embedding:
            return count_params(self)
        return count_params(self.body.blocks) + count_params(self.body.ln_f) + count_params(self.head)

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> float:
        c = self.config
        f = _blocks_flops(c, self.num_params(non_embedding=True), c.n_layers, seq_len or c.max_len)
        return float(3 * f if training else f)


@register
class EncoderDecoder(nn.Module):
    """Small T5/BART-style encoder-decoder with shared, tied embeddings.

    forward(src (B,S), tgt_in (B,T), src_mask (B,S), tgt_mask (B,T)) -> logits (B, T, V).
    The encoder is bidirectional; the decoder is causal and cross-attends to
    the encoder output.
    """

    arch = "encoder_decoder"
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.encoder = TransformerBody(config, causal=False, n_layers=config.n_layers)
        n_dec = config.n_dec_layers if config.n_dec_layers is not None else config.n_layers
        self.decoder = TransformerBody(config, causal=True, n_layers=n_dec, cross=True,
                             tok_emb=self.encoder.tok_emb)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size)
        init_weights(self)
        if config.tie_weights:
            self.lm_head.weight = self.encoder.tok_emb.weight

    @property
    def body(self):
        """The encoder (so ``TransformerClassifier.load_body_from(encdec)`` transfers it)."""
        return self.encoder

    def encode(self, src, src_mask=None):
        """(B, S) -> memory (B, S, D)"""
        return self.encoder(src, src_mask)

    def decoder_states(self, tgt_in, memory, src_mask=None, tgt_mask=None):
        """(B, T), memory (B, S, D) -> decoder states (B, T, D)"""
        if not isinstance(memory, torch.Tensor) or memory.dim() != 3 or len(memory) != len(tgt_in):
            raise ValueError(f"memory must be the encoder's output (B={len(tgt_in)}, S, D), got shape "
                             f"{tuple(getattr(memory, 'shape', ()))}")
        return self.decoder(tgt_in, tgt_mask, memory, as_bool_mask(src_mask, memory.shape[:2]))

    def decode(self, tgt_in, memory, src_mask=None, tgt_mask=None):
        """(B, T), memory (B, S, D) -> logits (B, T, V)"""
        return self.lm_head(self.decoder_states(tgt_in, memory, src_mask, tgt_mask))

    def forward(self, src, tgt_in, src_mask=None, tgt_mask=None):
        return self.decode(tgt_in, self.encode(src, src_mask), src_mask, tgt_mask)

    @torch.no_grad()
    def generate(self, src, bos_id: int, max_new_tokens: int, src_mask=None,
                 eos_id: int | None = None):
        """Greedy decoding in eval mode.  src (B, S) -> (B, 1 + n) starting with ``bos_id``."""
        was_training = self.training
        self.eval()
        try:
            memory = self.encode(src, src_mask)
            out = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
            for _ in range(max_new_tokens):
                nxt = self.decode(out, memory, src_mask)[:, -1].argmax(-1, keepdim=True)
                out = torch.cat([out, nxt], 1)
                if eos_id is not None and bool((out == eos_id).any(1).all()):
                    break
        finally:
            self.train(was_training)
        return out

    def num_params(self, non_embedding: bool = False) -> int:
        if not non_embedding:
            return count_params(self)
        return sum(count_params(m) for m in (self.encoder.blocks, self.encoder.ln_f,
                                             self.decoder.blocks, self.decoder.ln_f))

    def flops_per_token(self, seq_len: int | None = None, training: bool = False) -> float:
        """Encoder + decoder (its cross-attention reads S = T memory positions) + LM head, per token."""
        c = self.config
        n_dec = c.n_dec_layers if c.n_dec_layers is not None else c.n_layers
        f = _blocks_flops(c, self.num_params(non_embedding=True), c.n_layers + 2 * n_dec, seq_len or c.max_len)
        f += 2 * c.d_model * c.vocab_size
        return float(3 * f if training else f)
