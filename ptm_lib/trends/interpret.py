"""Interpretability of the course's transformer: attention maps, attributions, sanity checks, probes.

    maps = attention_maps(model, ids, mask)                  # (L, B, H, T, T) softmax weights
    roll = attention_rollout(maps, mask)                     # (B, T, T)  Abnar & Zuidema (2020)
    attr = integrated_gradients(clf, ids, mask, target, baseline_ids(ids, mask, tok.mask_id))
    attr, delta = captum_integrated_gradients(clf, ids, mask, target, base)   # the same, with Captum
    noisy = randomize(clf, n_stages=2, seed=0)              # cascading randomisation (Adebayo et al. 2018)
    acc = probe_by_layer(encoder, ids, mask, labels, train_rows, test_rows)   # linear probes per layer

Works on `ptm_lib.nets.transformer.TransformerLM` / `TransformerClassifier` (anything with
``.body.blocks``). Shapes: B sentences, T tokens, D = d_model, H heads, L layers, C classes.
Attributions are taken with respect to the *token embeddings* (B, T, D) -- the ids are integers,
there is no gradient with respect to them -- and summed over D to give one number per token.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn

from ..nets.transformer import init_weights

__all__ = ["attention_maps", "attention_rollout", "attention_importance", "forward_from_embeddings",
           "baseline_ids", "integrated_gradients", "captum_integrated_gradients", "saliency",
           "token_scores", "decisive_mass", "rank_correlation", "randomize", "layer_states",
           "probe_by_layer"]


def _check_batch(model, ids, mask):
    if not hasattr(model, "body") or not hasattr(model.body, "blocks"):
        raise TypeError(f"model must be a course transformer (with .body.blocks), got {type(model).__name__}")
    mask = model.body.check_inputs(ids, mask)
    return mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)


# ------------------------------------------------------------------------------------ attention
@torch.no_grad()
def attention_maps(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention weights of every layer and head: (B, T) -> (L, B, H, T, T), rows sum to 1 over the
    real keys. The model computes attention with a fused kernel that returns no weights, so a hook
    reads each block's attention input and recomputes softmax(q k^T / sqrt(Dh)) with the key mask."""
    mask = _check_batch(model, ids, mask)
    maps = []

    def hook(attn, args):
        x = args[0]                                              # LN1(x): (B, T, D)
        B, T, D = x.shape
        q, k, _ = attn.qkv(x).view(B, T, 3, attn.n_heads, D // attn.n_heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))          # (B, H, T, T)
        maps.append(scores.masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1))

    handles = [blk.attn.register_forward_pre_hook(hook) for blk in model.body.blocks]
    was_training = model.training
    model.eval()
    try:
        model.body(ids, mask)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return torch.stack(maps)


def attention_rollout(maps: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): average the heads, add the residual path as an
    identity (A' = (A + I) / 2, rows renormalised) and multiply the layers: (L, B, H, T, T) -> (B, T, T);
    row i says how much of token i's top-layer vector came from each input token."""
    if not isinstance(maps, torch.Tensor) or maps.dim() != 5:
        raise ValueError(f"maps must be (L, B, H, T, T), got shape {tuple(getattr(maps, 'shape', ()))}")
    A = maps.mean(2)                                              # (L, B, T, T)
    eye = torch.eye(A.size(-1), dtype=A.dtype)
    A = 0.5 * A + 0.5 * eye
    A = A / A.sum(-1, keepdim=True)
    out = A[0]
    for layer in A[1:]:
        out = layer @ out
    if mask is not None:
        out = out * mask[:, None, :]
    return out


def attention_importance(A: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A token's importance according to attention: the attention it receives, averaged over the real
    query positions (the classifier mean-pools every position): (B, T, T) -> (B, T)."""
    if A.dim() != 3 or A.shape[:2] != mask.shape:
        raise ValueError(f"A must be (B, T, T) with mask (B, T), got {tuple(A.shape)} and {tuple(mask.shape)}")
    m = mask.to(A.dtype)
    return (A * m[:, :, None]).sum(1) / m.sum(1, keepdim=True) * m


# ---------------------------------------------------------------------------------- attributions
def forward_from_embeddings(model: nn.Module, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A TransformerClassifier's forward pass from its token embeddings: emb (B, T, D) -> logits (B, C).
    The same computation as model(ids, mask) with emb = model.body.tok_emb(ids) (tested)."""
    body = model.body
    x = body.drop(emb + body.pos_emb(torch.arange(emb.shape[1], device=emb.device)))
    for blk in body.blocks:
        x = blk(x, mask)
    return model.head(model.pool(body.ln_f(x), mask))


def baseline_ids(ids: torch.Tensor, mask: torch.Tensor, token_id: int) -> torch.Tensor:
    """The reference input of integrated gradients: every real token but the first ([CLS]) replaced by
    `token_id` (e.g. [MASK]: "no word here", what masked-LM pretraining taught the model); padding kept."""
    base = ids.clone()
    replace = mask.clone()
    replace[:, 0] = False
    base[replace] = int(token_id)
    return base


def _check_target(target, B: int) -> torch.Tensor:
    target = torch.as_tensor(target, dtype=torch.long)
    if target.dim() == 0:
        target = target.expand(B)
    if target.shape != (B,):
        raise ValueError(f"target must be one class per sentence, shape ({B},), got {tuple(target.shape)}")
    return target


def integrated_gradients(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, target, base_ids: torch.Tensor,
                         steps: int = 32) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017), written out, with respect to the token embeddings:

        IG(x) = (x - x') * sum_k w_k * grad f_target(x' + a_k (x - x')),   a_k = (k + 1/2) / m, w_k = 1/m

    the midpoint Riemann sum of the path integral from the baseline x' (embeddings of `base_ids`) to x.
    ids, base_ids (B, T); target (B,) class ids -> attributions (B, T, D). Completeness: their sum is
    about f(x) - f(x')."""
    mask = _check_batch(model, ids, mask)
    if base_ids.shape != ids.shape:
        raise ValueError(f"base_ids must be shaped like ids {tuple(ids.shape)}, got {tuple(base_ids.shape)}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}")
    target = _check_target(target, len(ids))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x, x0 = model.body.tok_emb(ids), model.body.tok_emb(base_ids)
        total = torch.zeros_like(x)
        for k in range(steps):
            a = (k + 0.5) / steps
            point = (x0 + a * (x - x0)).requires_grad_(True)
            out = forward_from_embeddings(model, point, mask).gather(1, target[:, None]).sum()
            total += torch.autograd.grad(out, point)[0] / steps
    finally:
        model.train(was_training)
    return (x - x0) * total


def captum_integrated_gradients(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, target,
                                base_ids: torch.Tensor, steps: int = 32, method: str = "riemann_middle"):
    """Captum's `LayerIntegratedGradients` on the token-embedding layer: returns (attributions (B, T, D),
    convergence delta (B,) = sum of attributions - (f(x) - f(x'))). method: "riemann_middle" (what
    `integrated_gradients` computes) or Captum's default "gausslegendre"."""
    from captum.attr import LayerIntegratedGradients

    mask = _check_batch(model, ids, mask)
    target = _check_target(target, len(ids))
    was_training = model.training
    model.eval()
    try:
        lig = LayerIntegratedGradients(lambda i, m: model(i, m), model.body.tok_emb)
        attr, delta = lig.attribute(ids, baselines=base_ids, target=target, additional_forward_args=(mask,),
                                    n_steps=steps, method=method, return_convergence_delta=True)
    finally:
        model.train(was_training)
    return attr.detach(), delta.detach()


def saliency(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, target) -> torch.Tensor:
    """Saliency (Simonyan et al. 2014) with Captum: the norm of the gradient of the target logit with
    respect to each token's embedding, (B, T) -> (B, T)."""
    from captum.attr import Saliency

    mask = _check_batch(model, ids, mask)
    target = _check_target(target, len(ids))
    was_training = model.training
    model.eval()
    try:
        emb = model.body.tok_emb(ids).detach().requires_grad_(True)
        grads = Saliency(lambda e, m: forward_from_embeddings(model, e, m)).attribute(
            emb, target=target, additional_forward_args=(mask,), abs=False)
    finally:
        model.train(was_training)
    return grads.norm(dim=-1) * mask


def token_scores(attributions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One number per token: attributions (B, T, D) summed over D; padding 0. (B, T, D) -> (B, T)."""
    if attributions.dim() != 3 or attributions.shape[:2] != mask.shape:
        raise ValueError(f"attributions must be (B, T, D) with mask (B, T), got {tuple(attributions.shape)}")
    return attributions.sum(-1) * mask


def decisive_mass(scores: torch.Tensor, decisive: torch.Tensor, valid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Share of |score| on the decisive tokens, and what a uniform spread would give (chance), per sentence.

    scores, decisive, valid: (B, T); only `valid` tokens count (e.g. the words, not [CLS] or padding).
    Returns (mass (B,), chance (B,)) as arrays; sentences without a decisive token are dropped."""
    if not scores.shape == decisive.shape == valid.shape:
        raise ValueError(f"scores, decisive and valid must have one shape, got {tuple(scores.shape)}, "
                         f"{tuple(decisive.shape)}, {tuple(valid.shape)}")
    s = scores.detach().abs() * valid
    d = decisive & valid
    keep = d.any(1) & (s.sum(1) > 0)
    mass = (s * d).sum(1) / s.sum(1).clamp_min(1e-12)
    chance = d.sum(1) / valid.sum(1).clamp_min(1)
    return mass[keep].numpy(), chance[keep].float().numpy()


def rank_correlation(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """Spearman rank correlation between the rows of a and b (B, T) over their `valid` tokens: (B,).
    Rows with fewer than 3 valid tokens or a constant row give NaN."""
    from scipy.stats import spearmanr

    if not a.shape == b.shape == valid.shape:
        raise ValueError(f"a, b and valid must have one shape, got {tuple(a.shape)}, {tuple(b.shape)}, {tuple(valid.shape)}")
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        v = valid[i].numpy()
        x, y = a[i].detach().numpy()[v], b[i].detach().numpy()[v]
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


# ------------------------------------------------------------------------------ sanity check
def _stage_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """[(name, module)] from the top of the network down: head, last block, ..., first block, embeddings."""
    top = [("head", model.head)] if hasattr(model, "head") else [("LM head", model.lm_head)]
    blocks = [(f"block {i + 1}", blk) for i, blk in reversed(list(enumerate(model.body.blocks)))]
    return top + blocks + [("embeddings", nn.ModuleList([model.body.tok_emb, model.body.pos_emb, model.body.ln_f]))]


def randomize(model: nn.Module, n_stages: int, seed: int = 0) -> tuple[nn.Module, list[str]]:
    """Cascading randomisation (Adebayo et al. 2018): a copy of `model` whose top `n_stages` stages
    (head, then blocks from the last down, then the embeddings and final LayerNorm) are re-initialised
    as at the start of training. Returns (copy, names of the randomised stages); `model` is unchanged."""
    stages = _stage_modules(model)
    if not isinstance(n_stages, int) or not 0 <= n_stages <= len(stages):
        raise ValueError(f"n_stages must be an integer in [0, {len(stages)}], got {n_stages!r}")
    out = copy.deepcopy(model)
    names = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for name, module in _stage_modules(out)[:n_stages]:
            init_weights(module)
            for m in module.modules():
                if isinstance(m, nn.LayerNorm):
                    m.reset_parameters()
            names.append(name)
    return out, names


# ----------------------------------------------------------------------------------- probes
@torch.no_grad()
def layer_states(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every layer's token vectors: {"embeddings": token + position, "layer 1": ..., "layer L": ...},
    each (B, T, D) (the last one before the final LayerNorm)."""
    mask = _check_batch(model, ids, mask)
    was_training = model.training
    model.eval()
    try:
        stages = dict(model.body.stages(ids, mask))
    finally:
        model.train(was_training)
    out = {"embeddings": stages["token embeddings W_E[x]"] + stages["position embeddings W_P[0:T]"]}
    for i in range(len(model.body.blocks)):
        out[f"layer {i + 1}"] = stages[f"block {i + 1}"]
    return out


def probe_by_layer(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                   train: torch.Tensor, test: torch.Tensor, C: float = 1.0, max_train: int = 4000,
                   seed: int = 0) -> dict[str, float]:
    """Linear probes (Tenney et al. 2019): a logistic regression per layer on the token vectors,
    predicting a token property. labels (B, T) int, -1 where the property is undefined; train/test
    (B, T) bool choose the tokens to fit on (at most `max_train`, drawn with `seed`) and to score.
    Returns {layer name: test accuracy}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if not labels.shape == train.shape == test.shape == ids.shape:
        raise ValueError("labels, train and test must be shaped like ids (B, T)")
    if bool((train & test).any()):
        raise ValueError("a token is both in train and test")
    have = labels >= 0
    tr, te = (train & have).flatten().numpy(), (test & have).flatten().numpy()
    if tr.sum() < 2 or te.sum() < 1:
        raise ValueError(f"too few tokens to probe: {tr.sum()} train, {te.sum()} test")
    rows = np.flatnonzero(tr)
    if len(rows) > max_train:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_train, replace=False))
    y = labels.flatten().numpy()
    out = {}
    for name, h in layer_states(model, ids, mask).items():
        X = h.reshape(-1, h.shape[-1]).numpy()
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
        clf.fit(X[rows], y[rows])
        out[name] = float(clf.score(X[te], y[te]))
    return out
