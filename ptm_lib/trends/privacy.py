"""Privacy of trained models: a membership-inference attack and DP-SGD (with Opacus).

Membership inference (Yeom et al. 2018): a model that over-fits has a lower loss on its training
examples ("members") than on examples it never saw, so an attacker who can query the loss guesses
"member" when the loss is below a threshold. Its *advantage* is TPR - FPR (Yeom et al. Def. 4):
0 for a coin flip, 1 for a perfect attack.

DP-SGD (Abadi et al. 2016): clip every example's gradient to norm C, add Gaussian noise of standard
deviation sigma*C to the sum, then step. Opacus computes the per-sample gradients, clips, adds the
noise and keeps the privacy accountant; `clipped_mean_grad_by_hand` writes the clipping step out
for a linear softmax model so it can be checked against Opacus.

    member_loss = per_example_loss(model, X_members, y_members)           # (N,)
    attack = loss_threshold_attack(member_loss, nonmember_loss, seed=0)   # advantage, AUC, ROC
    model, spent = train_dp(make_model(64, 10), X, y, epsilon=2.0, delta=1e-5, ...)
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["make_model", "per_example_loss", "accuracy", "best_threshold_advantage", "loss_threshold_attack",
           "dp_advantage_bound", "train_nonprivate", "train_dp", "train_dp_choose_lr", "noise_multiplier_for", "DPResult", "clipped_mean_grad_by_hand",
           "clipped_mean_grad_opacus", "public_standardised_features"]


def _check_xy(X, y) -> None:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or X.dim() != 2:
        raise TypeError(f"X must be a floating-point tensor (N, D), got {type(X).__name__} {getattr(X, 'shape', '')}")
    if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (len(X),):
        raise TypeError(f"y must be an int64 tensor (N,) matching X, got {type(y).__name__} {getattr(y, 'shape', '')}")
    if len(X) == 0:
        raise ValueError("X is empty")


def make_model(in_dim: int, n_classes: int = 10, hidden: int = 0, seed: int = 0) -> nn.Module:
    """A linear softmax classifier (hidden=0) or a one-hidden-layer ReLU MLP: (B, in_dim) -> logits (B, n_classes).

    No batch norm: Opacus cannot give per-sample gradients through it (it mixes the examples of a batch).
    """
    if in_dim < 1 or n_classes < 2 or hidden < 0:
        raise ValueError(f"need in_dim >= 1, n_classes >= 2, hidden >= 0; got {in_dim}, {n_classes}, {hidden}")
    torch.manual_seed(seed)
    if hidden == 0:
        return nn.Linear(in_dim, n_classes)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


@torch.no_grad()
def per_example_loss(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cross-entropy of each example (N,): what the loss-threshold attacker observes."""
    _check_xy(X, y)
    model.eval()
    return F.cross_entropy(model(X), y, reduction="none").numpy()


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of (X, y) classified correctly."""
    _check_xy(X, y)
    model.eval()
    return (model(X).argmax(1) == y).float().mean().item()


# ------------------------------------------------------------------------------------------------
# The attack
# ------------------------------------------------------------------------------------------------

def best_threshold_advantage(member_loss, nonmember_loss) -> tuple[float, float]:
    """(threshold, advantage): the loss threshold t that maximises TPR - FPR of "member if loss <= t"
    on these two sets, and that maximum (an optimistic, in-sample number)."""
    m, n = np.asarray(member_loss, float), np.asarray(nonmember_loss, float)
    if m.ndim != 1 or n.ndim != 1 or not len(m) or not len(n):
        raise ValueError("member_loss and nonmember_loss must be non-empty 1-d arrays")
    candidates = np.unique(np.concatenate([m, n]))
    tpr = (m[None, :] <= candidates[:, None]).mean(1)
    fpr = (n[None, :] <= candidates[:, None]).mean(1)
    best = int(np.argmax(tpr - fpr))
    return float(candidates[best]), float(tpr[best] - fpr[best])


def loss_threshold_attack(member_loss, nonmember_loss, seed: int = 0) -> dict:
    """Yeom et al.'s loss-threshold attack on a balanced set of members and non-members.

    The threshold is chosen on one half of each set and the advantage (TPR - FPR) measured on the
    other half, then the halves swap; `advantage` is the mean of the two (honest: a threshold tuned
    on the scored examples would find a positive "advantage" even where nothing leaks).
    Also: `auc` (area under the ROC curve, 0.5 = no leak; threshold-free), `in_sample_advantage`,
    and the ROC curve `fpr`, `tpr` (lists) of the score -loss.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    m, n = np.asarray(member_loss, float), np.asarray(nonmember_loss, float)
    if len(m) < 4 or len(n) < 4:
        raise ValueError(f"need at least 4 members and 4 non-members, got {len(m)} and {len(n)}")
    if len(m) != len(n):
        raise ValueError(f"the attack is scored on a balanced set: got {len(m)} members and {len(n)} non-members")
    rng = np.random.default_rng(seed)
    pm, pn = rng.permutation(len(m)), rng.permutation(len(n))
    halves_m, halves_n = np.array_split(pm, 2), np.array_split(pn, 2)
    heldout = []
    for fit, score in ((0, 1), (1, 0)):
        t, _ = best_threshold_advantage(m[halves_m[fit]], n[halves_n[fit]])
        heldout.append((m[halves_m[score]] <= t).mean() - (n[halves_n[score]] <= t).mean())
    labels = np.r_[np.ones(len(m)), np.zeros(len(n))]
    scores = -np.concatenate([m, n])
    fpr, tpr, _ = roc_curve(labels, scores)
    return {"advantage": float(np.mean(heldout)), "auc": float(roc_auc_score(labels, scores)),
            "in_sample_advantage": best_threshold_advantage(m, n)[1], "fpr": fpr.tolist(), "tpr": tpr.tolist()}


def dp_advantage_bound(epsilon: float, delta: float = 0.0) -> float:
    """The largest TPR - FPR any membership test can reach against an (epsilon, delta)-DP training run:
    (1 - delta) * tanh(epsilon / 2) + delta (Kairouz, Oh & Viswanath 2015: TPR <= e^eps FPR + delta
    and 1 - FPR <= e^eps (1 - TPR) + delta). inf -> 1."""
    if not epsilon >= 0 or not 0 <= delta < 1:
        raise ValueError(f"need epsilon >= 0 and 0 <= delta < 1, got {epsilon}, {delta}")
    if math.isinf(epsilon):
        return 1.0
    return (1 - delta) * math.tanh(epsilon / 2) + delta


# ------------------------------------------------------------------------------------------------
# Training: non-private (to over-fit) and DP-SGD with Opacus
# ------------------------------------------------------------------------------------------------

def train_nonprivate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, steps: int = 2000, lr: float = 1e-3,
                     batch_size: int = 64, seed: int = 0) -> nn.Module:
    """Adam on minibatches drawn with replacement, no regularisation: long enough, it over-fits (in place)."""
    _check_xy(X, y)
    if steps < 1 or lr <= 0 or batch_size < 1:
        raise ValueError(f"need steps >= 1, lr > 0, batch_size >= 1; got {steps}, {lr}, {batch_size}")
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=g)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(X[idx]), y[idx]).backward()
        optimizer.step()
    return model.eval()


@functools.lru_cache(maxsize=256)
def noise_multiplier_for(epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str = "rdp") -> float:
    """The Gaussian noise multiplier sigma (noise sd = sigma * C) that spends exactly `epsilon` at `delta`
    after `epochs` epochs at `sample_rate`, by Opacus's accountant (a binary search; cached)."""
    from opacus.accountants.utils import get_noise_multiplier

    if not epsilon > 0 or not 0 < delta < 1 or not 0 < sample_rate <= 1 or epochs < 1:
        raise ValueError(f"need epsilon > 0, 0 < delta < 1, 0 < sample_rate <= 1, epochs >= 1; got "
                         f"{epsilon}, {delta}, {sample_rate}, {epochs}")
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      epochs=epochs, accountant=accountant))


@dataclass
class DPResult:
    """What `train_dp` returns: the trained plain module and the privacy spent."""

    model: nn.Module
    epsilon: float          # spent, by the accountant (inf without noise)
    delta: float
    noise_multiplier: float
    steps: int


def train_dp(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, epsilon: float, delta: float = 1e-5,
             epochs: int = 20, batch_size: int = 50, lr: float = 0.1, max_grad_norm: float = 1.0,
             accountant: str = "rdp", seed: int = 0) -> DPResult:
    """DP-SGD (SGD with momentum 0.9) with Opacus: the noise multiplier that spends `epsilon` (at `delta`)
    in `epochs` epochs of Poisson-sampled batches (rate batch_size/N) is found by the accountant (what
    `make_private_with_epsilon` does; `noise_multiplier_for` caches the search), then `make_private`.

    epsilon = inf trains the same way with clipping and noise switched off (plain SGD, the same
    schedule): the control that separates "DP" from "short training". Returns a `DPResult` whose
    `model` is the plain module (Opacus's wrapper removed).
    """
    from opacus import PrivacyEngine

    _check_xy(X, y)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0 (math.inf for no privacy), got {epsilon}")
    if not 0 < delta < 1 or epochs < 1 or not 0 < batch_size <= len(X) or lr <= 0 or max_grad_norm <= 0:
        raise ValueError(f"need 0 < delta < 1, epochs >= 1, 0 < batch_size <= N, lr > 0, max_grad_norm > 0; got "
                         f"{delta}, {epochs}, {batch_size}, {lr}, {max_grad_norm}")
    torch.manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    model.train()
    if math.isinf(epsilon):
        for _ in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
        return DPResult(model.eval(), math.inf, 0.0, 0.0, epochs * len(loader))
    with warnings.catch_warnings():          # Opacus warns about secure RNG (not needed for a lesson)
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant=accountant)
        sigma = noise_multiplier_for(epsilon, delta, 1 / len(loader), epochs, accountant)
        private, optimizer, loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
            max_grad_norm=max_grad_norm)
        steps = 0
        for _ in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad(set_to_none=True)
                if len(xb):                   # Poisson sampling can draw an empty batch: noise only
                    F.cross_entropy(private(xb), yb).backward()
                optimizer.step()
                steps += 1
        spent = engine.get_epsilon(delta)
    return DPResult(private._module.eval(), float(spent), delta, float(optimizer.noise_multiplier), steps)


# ------------------------------------------------------------------------------------------------
# Per-sample clipping, by hand and by Opacus
# ------------------------------------------------------------------------------------------------

def clipped_mean_grad_by_hand(W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor,
                              max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DP-SGD's clipping step for a linear softmax model logits = X W^T + b, without noise.

    W (K, D), b (K,), X (B, D), y (B,). Example i's gradient of its cross-entropy is
    g_i = ((p_i - onehot(y_i)) x_i^T, p_i - onehot(y_i)) with p_i = softmax(W x_i + b); it is scaled
    by min(1, C / ||g_i||) (the norm over W and b together) and the clipped gradients are averaged.
    Returns (grad_W (K, D), grad_b (K,), per-sample norms before clipping (B,)).
    """
    _check_xy(X, y)
    if W.dim() != 2 or b.shape != (W.shape[0],) or X.shape[1] != W.shape[1]:
        raise ValueError(f"shapes: W (K, D), b (K,), X (B, D); got {tuple(W.shape)}, {tuple(b.shape)}, {tuple(X.shape)}")
    if max_grad_norm <= 0:
        raise ValueError(f"max_grad_norm must be > 0, got {max_grad_norm}")
    err = torch.softmax(X @ W.T + b, dim=1) - F.one_hot(y, W.shape[0]).to(X.dtype)   # (B, K)
    g_W = err[:, :, None] * X[:, None, :]                                             # (B, K, D)
    norms = torch.sqrt((g_W ** 2).sum(dim=(1, 2)) + (err ** 2).sum(dim=1))            # (B,)
    factor = (max_grad_norm / (norms + 1e-6)).clamp(max=1.0)                          # Opacus's 1e-6
    return (factor[:, None, None] * g_W).mean(0), (factor[:, None] * err).mean(0), norms


def clipped_mean_grad_opacus(linear: nn.Linear, X: torch.Tensor, y: torch.Tensor,
                             max_grad_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The same step done by Opacus (noise multiplier 0, one batch of exactly X): (grad_W, grad_b)."""
    from opacus import PrivacyEngine

    _check_xy(X, y)
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"expected an nn.Linear, got {type(linear).__name__}")
    model = nn.Linear(linear.in_features, linear.out_features)
    model.load_state_dict(linear.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        private, optimizer, loader = PrivacyEngine().make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=0.0,
            max_grad_norm=max_grad_norm, poisson_sampling=False)
        xb, yb = next(iter(loader))
        F.cross_entropy(private(xb), yb).backward()
        optimizer.pre_step()                 # clip per sample, sum, add noise (0 here), divide by B
    return model.weight.grad.detach().clone(), model.bias.grad.detach().clone()


# ------------------------------------------------------------------------------------------------
# Features of a frozen encoder pretrained on public data
# ------------------------------------------------------------------------------------------------

def public_standardised_features(encode, public_X: torch.Tensor, *private_Xs: torch.Tensor) -> list[torch.Tensor]:
    """`encode(X) -> (N, F)` features of each private array, standardised with the mean and sd of the
    PUBLIC data's features (statistics of the private data would themselves leak it)."""
    P = torch.as_tensor(encode(public_X), dtype=torch.float32)
    if P.dim() != 2:
        raise ValueError(f"encode must return (N, F) features, got shape {tuple(P.shape)}")
    mu, sd = P.mean(0), P.std(0) + 1e-6
    return [(torch.as_tensor(encode(X), dtype=torch.float32) - mu) / sd for X in private_Xs]


def train_dp_choose_lr(X: torch.Tensor, y: torch.Tensor, X_val: torch.Tensor, y_val: torch.Tensor, *, epsilon: float,
                       lrs=(0.01, 0.03, 0.1, 0.3), hidden: int = 0, n_classes: int = 10, seed: int = 0,
                       **dp_kwargs) -> dict:
    """`train_dp` of `make_model(D, n_classes, hidden, seed)` once per learning rate in `lrs`; keeps the one with
    the best validation accuracy. Returns {"model", "lr", "val_acc", "epsilon", "noise_multiplier", "steps"}.

    (Choosing among runs on the private data spends some privacy too; a real audit would account for
    it, e.g. Papernot & Steinke 2022. Here it is the same for every arm.)"""
    if not lrs:
        raise ValueError("lrs must name at least one learning rate")
    best = None
    for lr in lrs:
        r = train_dp(make_model(X.shape[1], n_classes, hidden, seed), X, y,
                     epsilon=epsilon, lr=lr, seed=seed, **dp_kwargs)
        val = accuracy(r.model, X_val, y_val)
        if best is None or val > best["val_acc"]:
            best = {"model": r.model, "lr": lr, "val_acc": val, "epsilon": r.epsilon,
                    "noise_multiplier": r.noise_multiplier, "steps": r.steps}
    return best
