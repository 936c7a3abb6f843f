"""Self-supervised pretraining on a table: reconstruct rows whose cells were masked (VIME-style).

Yoon et al. (NeurIPS 2020, "VIME") corrupt a row by replacing a random subset of its cells with the
same columns of other rows, and train an encoder to reconstruct the original. Here the encoder is
the course's `MLP` (30 features -> hidden -> code) and the decoder one linear layer; features for a
probe are the encoder's outputs.

The data: the Wisconsin diagnostic breast-cancer table that ships with scikit-learn (569 tumours,
30 features measured on images of a fine-needle aspirate, labelled malignant or benign; Street,
Wolberg & Mangasarian 1993), split by `breast_cancer_splits` into a pool (labels hidden from
pretraining), validation and test, standardised on the pool.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import verify_sha256
from ..nets.mlp import MLP, MLPConfig
from ..train import check_positive

BREAST_CANCER_SHA256 = "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed"
"""sha256 of scikit-learn's bundled ``sklearn/datasets/data/breast_cancer.csv`` (see data/README.md)."""


def breast_cancer_splits(seed: int = 0, n_val: int = 60, test_share: float = 0.35) -> dict[str, tuple]:
    """{"pool", "val", "test"} -> (X (N, 30) float32 standardised on the pool, y (N,) int64; 1 = benign),
    stratified, the split drawn from `seed`. The bundled file's sha256 is checked first."""
    from importlib.resources import files

    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    verify_sha256(files("sklearn.datasets") / "data" / "breast_cancer.csv", BREAST_CANCER_SHA256)
    X, y = load_breast_cancer(return_X_y=True)
    X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=test_share, stratify=y, random_state=seed)
    X_pool, X_val, y_pool, y_val = train_test_split(X_pool, y_pool, test_size=n_val, stratify=y_pool,
                                                    random_state=seed)
    mean, std = X_pool.mean(0), X_pool.std(0) + 1e-8

    def prep(X_, y_):
        return ((X_ - mean) / std).astype(np.float32), y_.astype(np.int64)

    return {"pool": prep(X_pool, y_pool), "val": prep(X_val, y_val), "test": prep(X_test, y_test)}


def masked_feature_pretrain(X: np.ndarray, *, code: int = 32, hidden: int = 64, steps: int = 1500,
                            mask_p: float = 0.3, lr: float = 3e-3, batch_size: int = 64, seed: int = 0) -> MLP:
    """An MLP encoder (d -> hidden -> code) trained with a linear decoder to reconstruct rows of X
    (N, d) whose cells were swapped, with probability `mask_p` each, for the same column of a random
    other row. Labels are never used. Returns the encoder in eval mode."""
    check_positive(steps=steps, lr=lr, batch_size=batch_size, code=code, hidden=hidden)
    if not 0 < mask_p < 1:
        raise ValueError(f"mask_p must be in (0, 1), got {mask_p}")
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if X.dim() != 2 or len(X) < 2 or not bool(torch.isfinite(X).all()):
        raise ValueError(f"X must be a finite (N >= 2, d) table, got shape {tuple(X.shape)}")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    encoder = MLP(MLPConfig(in_dim=X.shape[1], hidden=hidden, depth=1, n_classes=code))
    decoder = nn.Linear(code, X.shape[1])
    optimizer = torch.optim.AdamW([*encoder.parameters(), *decoder.parameters()], lr=lr)
    for _ in range(steps):
        rows = X[torch.randint(len(X), (batch_size,), generator=g)]
        donors = X[torch.randint(len(X), (batch_size,), generator=g)]
        swapped = torch.rand(rows.shape, generator=g) < mask_p
        loss = ((decoder(torch.relu(encoder(torch.where(swapped, donors, rows)))) - rows) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval()


@torch.no_grad()
def encode(encoder: MLP, X: np.ndarray) -> np.ndarray:
    """(N, d) -> (N, code) features: ReLU of the encoder's output, as the decoder saw them."""
    return torch.relu(encoder(torch.as_tensor(np.asarray(X, dtype=np.float32)))).numpy()
