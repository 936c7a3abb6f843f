"""Pre-training objectives: masked LM (BERT), causal LM (GPT), denoising (BART/T5).

Conventions: ``ids`` is a LongTensor (B, T); ``attention_mask`` a BoolTensor
(B, T), True on real tokens; ``labels`` use -100 for "no loss here" (the
``ignore_index`` of ``F.cross_entropy``).  Randomness comes only from the
``generator`` argument, so a seeded ``torch.Generator`` makes everything
reproducible.

Calibrated recipe (2 CPU cores, ``SyntheticLanguage()`` defaults, d_model=64,
2 layers, 4 heads, ~139k parameters):

* shipped checkpoint: MLM, p=0.15, 100k sentences, 2000 steps, batch 128,
  lr 3e-3, warm-up 100, cosine -- about 2 CPU-minutes; embedding topic purity
  goes 0.17 -> 1.00 (by step ~750), topic cloze 0.16 -> 0.95.
* live demo (~20 s): p=0.45, batch 128, lr 3e-3, warm-up 30 -> purity ~0.45-0.7.
* MLM has a plateau where it only uses part of speech.  Getting off it needs
  enough masked predictions per step: batch 64 or lr 1e-2 stayed stuck at
  chance in 20 s, batch 128 with lr 3e-3 did not; a higher mask rate helps.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..nets.common import check_ids

__all__ = [
    "IGNORE_INDEX",
    "mask_tokens",
    "mlm_loss",
    "masked_lm_loss",
    "clm_loss",
    "span_corrupt",
    "denoising_loss",
]

IGNORE_INDEX = -100


def _vocab_info(vocab, mask_id, special_ids):
    """Accept a tokenizer (``len``, ``mask_id``, ``special_ids``) or an int vocab size."""
    if isinstance(vocab, int):
        V = vocab
        if mask_id is None:
            raise ValueError("mask_id is required when vocab is an int")
        special_ids = tuple(special_ids) if special_ids is not None else (mask_id,)
    else:
        V = len(vocab)
        mask_id = vocab.mask_id if mask_id is None else mask_id
        special_ids = tuple(vocab.special_ids if special_ids is None else special_ids)
    if V < 2:
        raise ValueError(f"vocabulary too small: {V}")
    if not 0 <= mask_id < V:
        raise ValueError(f"mask_id {mask_id} outside vocabulary of size {V}")
    if any(not 0 <= i < V for i in special_ids):
        raise ValueError(f"special_ids {special_ids} must be ids in [0, {V})")
    return V, mask_id, special_ids


def mask_tokens(ids: torch.Tensor, vocab, p: float = 0.15, *,
                mask_id: int | None = None, special_ids=None,
                generator: torch.Generator | None = None,
                mask_frac: float = 0.8, random_frac: float = 0.1):
    """BERT masking.

    Each non-special token is selected with probability ``p``.  A selected token
    becomes ``[MASK]`` with prob. ``mask_frac`` (0.8), a uniformly random
    non-special token with prob. ``random_frac`` (0.1) and stays unchanged
    otherwise (0.1).  Special tokens ([PAD], [CLS], [SEP], ...) are never selected.

    ids: (B, T) long.  vocab: a ``WordTokenizer`` or an int vocab size (then
    pass ``mask_id`` and ``special_ids``).
    Returns ``(inputs, labels)``, both (B, T): labels = original id at selected
    positions and -100 elsewhere, on the device of ``ids``.  ``ids`` is not modified.  The random
    draws are made on the ``generator``'s device (a CPU generator masks ids on a GPU alike).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1:
        raise ValueError("need mask_frac, random_frac >= 0 and mask_frac + random_frac <= 1")
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"ids must be a 2-D LongTensor, got {getattr(ids, 'dtype', type(ids).__name__)} with shape "
                         f"{tuple(getattr(ids, 'shape', ()))}")
    V, mask_id, special_ids = _vocab_info(vocab, mask_id, special_ids)
    dev = ids.device
    special = torch.zeros(V, dtype=torch.bool, device=dev)
    special[list(special_ids)] = True
    if bool(((ids < 0) | (ids >= V)).any()):
        raise ValueError("ids contain values outside the vocabulary")
    can_mask = ~special[ids]
    draw_on = generator.device if generator is not None else dev   # a CPU generator may mask ids on a GPU
    u = torch.rand(ids.shape, generator=generator, device=draw_on).to(dev)
    selected = (u < p) & can_mask
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    r = torch.rand(ids.shape, generator=generator, device=draw_on).to(dev)
    to_mask = selected & (r < mask_frac)
    to_rand = selected & (r >= mask_frac) & (r < mask_frac + random_frac)
    allowed = torch.nonzero(~special).squeeze(1)
    rand_tok = allowed[torch.randint(len(allowed), ids.shape, generator=generator, device=draw_on).to(dev)]
    inputs = ids.clone()
    inputs[to_mask] = mask_id
    inputs[to_rand] = rand_tok[to_rand]
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked positions only -- the one MLM loss of the course.

    logits (..., V) and labels (...) with -100 where nothing was masked: either the whole batch,
    (B, T, V) and (B, T), or only the masked positions, (N, V) and (N,) (pretraining applies the LM
    head there only, which saves most of its cost).  Returns a scalar; when nothing is masked,
    0 with a gradient path (not NaN).
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree")
    _check_labels(labels, logits.shape[-1])
    sel = labels != IGNORE_INDEX
    if not bool(sel.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[sel], labels[sel])


def masked_lm_loss(model, inputs: torch.Tensor, labels: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`mlm_loss` of an encoder with an LM head (a `TransformerLM`) on a masked batch, applying the
    head only at the masked positions: inputs/labels/attention_mask (B, T) from `mask_tokens`."""
    if not isinstance(labels, torch.Tensor) or labels.shape != getattr(inputs, "shape", None):
        raise ValueError(f"labels {tuple(getattr(labels, 'shape', ()))} must have the shape of inputs "
                         f"{tuple(getattr(inputs, 'shape', ()))} (both from mask_tokens)")
    _check_labels(labels, model.config.vocab_size)
    selected = labels != IGNORE_INDEX
    hidden = model.encode(inputs, attention_mask)[selected]          # (N_masked, D)
    return mlm_loss(model.lm_head(hidden), labels[selected])


def clm_loss(logits: torch.Tensor, ids: torch.Tensor,
             attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token prediction: position t predicts ids[t + 1].

    logits (B, T, V) from a *causal* model, ids (B, T); pad targets are ignored.
    """
    attention_mask = check_ids(ids, logits.shape[-1], attention_mask)   # targets within the logits' vocabulary
    if logits.shape[:-1] != ids.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and ids {tuple(ids.shape)} disagree")
    target = ids[:, 1:].clone()
    if attention_mask is not None:
        target[~attention_mask[:, 1:]] = IGNORE_INDEX
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), target.reshape(-1),
                           ignore_index=IGNORE_INDEX)


def span_corrupt(ids: torch.Tensor, attention_mask: torch.Tensor, vocab, p: float = 0.3,
                 mean_span: float = 3.0, *, generator: torch.Generator | None = None,
                 bos_id: int | None = None, eos_id: int | None = None, pad_id: int | None = None,
                 mask_id: int | None = None):
    """BART-style text infilling: spans covering about ``p`` of the tokens are each
    replaced by ONE ``[MASK]``; the decoder must reconstruct the whole sentence.

    ids/attention_mask (B, T) as from ``WordTokenizer.encode_batch`` (a leading
    [CLS] is kept as is).  ``vocab`` is a tokenizer (ids default to its
    cls/sep/pad/mask ids).
    Returns a dict of tensors:
        src (B, S), src_mask (B, S)     corrupted encoder input
        tgt_in (B, L), tgt_mask (B, L)  decoder input  = [BOS] w1 .. wn
        tgt_out (B, L)                  decoder target = w1 .. wn [EOS] (-100 on pad)
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p}")
    if not 1 <= mean_span < float("inf"):
        raise ValueError(f"mean_span must be a number >= 1, got {mean_span}")
    attention_mask = check_ids(ids, len(vocab), attention_mask)
    if attention_mask is None:
        attention_mask = torch.ones_like(ids, dtype=torch.bool)
    bos_id = vocab.cls_id if bos_id is None else bos_id
    eos_id = vocab.sep_id if eos_id is None else eos_id
    pad_id = vocab.pad_id if pad_id is None else pad_id
    mask_id = vocab.mask_id if mask_id is None else mask_id
    special = set(getattr(vocab, "special_ids", (bos_id, eos_id, pad_id, mask_id)))
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                             device=generator.device if generator is not None else ids.device))
    rng = random.Random(seed)
    srcs, tgts = [], []
    for row, m in zip(ids.tolist(), attention_mask.tolist()):
        toks = [t for t, keep in zip(row, m) if keep]
        words = [t for t in toks if t not in special]
        n = len(words)
        n_corrupt = min(n - 1, max(1, round(p * n))) if n > 1 else 0
        corrupt = [False] * n
        covered = 0
        while covered < n_corrupt:
            span = min(max(1, round(rng.expovariate(1.0 / mean_span))), n_corrupt - covered)
            start = rng.randrange(0, n - span + 1)
            for i in range(start, start + span):
                if not corrupt[i]:
                    corrupt[i] = True
                    covered += 1
        src = [bos_id] if toks and toks[0] == bos_id else []
        for i, w in enumerate(words):
            if corrupt[i]:
                if not (src and src[-1] == mask_id and i > 0 and corrupt[i - 1]):
                    src.append(mask_id)
            else:
                src.append(w)
        srcs.append(src)
        tgts.append(words)

    def pad(seqs, value):
        L = max(1, max(len(s) for s in seqs))
        out = torch.full((len(seqs), L), value, dtype=torch.long, device=ids.device)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=ids.device)
        return out

    src = pad(srcs, pad_id)
    tgt_in = pad([[bos_id] + t for t in tgts], pad_id)
    tgt_out = pad([t + [eos_id] for t in tgts], IGNORE_INDEX)
    return {"src": src, "src_mask": src != pad_id, "tgt_in": tgt_in,
            "tgt_mask": tgt_in != pad_id, "tgt_out": tgt_out}


def denoising_loss(model, batch: dict) -> torch.Tensor:
    """Seq2seq cross-entropy of an :class:`EncoderDecoder` on a ``span_corrupt`` batch."""
    keys = ("src", "src_mask", "tgt_in", "tgt_mask", "tgt_out")
    if not isinstance(batch, dict) or any(k not in batch for k in keys):
        raise TypeError(f"a denoising batch is a dict with {keys} (what span_corrupt returns)")
    if batch["tgt_out"].shape != batch["tgt_in"].shape:
        raise ValueError(f"tgt_out {tuple(batch['tgt_out'].shape)} must have the shape of tgt_in "
                         f"{tuple(batch['tgt_in'].shape)}")
    _check_labels(batch["tgt_out"], model.config.vocab_size)
    logits = model(batch["src"], batch["tgt_in"], batch["src_mask"], batch["tgt_mask"])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["tgt_out"].reshape(-1),
                           ignore_index=IGNORE_INDEX)


def _check_labels(labels: torch.Tensor, vocab_size: int) -> None:
    """Targets are int64 ids in [0, vocab_size), or IGNORE_INDEX where there is no loss."""
    if labels.dtype != torch.long:
        raise ValueError(f"labels must be an int64 tensor of token ids (or {IGNORE_INDEX}), got {labels.dtype}")
    bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= vocab_size))
    if bool(bad.any()):
        raise ValueError(f"labels must be token ids in [0, {vocab_size}) or {IGNORE_INDEX} (no loss), "
                         f"found {labels[bad][0].item()}")
