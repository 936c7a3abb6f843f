"""Fine-tuning strategies for text classification, compared in chapter 3.

Given a pretrained `TransformerLM` encoder and a labelled task (`ptm_lib.text.LabelledTask`):

    scratch   same architecture, random initialisation, every weight trained on the labels only
    probe     pretrained encoder frozen; mean-pooled features -> logistic regression
    partial   pretrained; embeddings and all blocks but the last frozen; last block + head trained
    full      pretrained; every weight fine-tuned (small lr for the body, larger for the new head)

All training goes through `ptm_lib.train.fit`. Shapes: ids/mask (N, T), labels (N,).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from .text import LabelledTask, WordTokenizer, budget_indices, trim_padding
from .train import fit
from .transformer import TransformerClassifier, TransformerLM

STRATEGIES = ("scratch", "probe", "partial", "full")


@dataclass
class EncodedTask:
    """A labelled task as tensors: train pool, natural test mix, unseen-word test."""

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    unseen: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    task: LabelledTask

    @property
    def n_classes(self) -> int:
        return self.task.n_classes


def encode_task(task: LabelledTask, tokenizer: WordTokenizer, max_len: int) -> EncodedTask:
    """Tokenise every split of `task`: each split becomes (ids (N, T), mask (N, T), labels (N,))."""
    def enc(texts, labels):
        ids, mask = tokenizer.encode_batch(texts, max_len=max_len)
        return ids, mask, torch.as_tensor(labels, dtype=torch.long)

    return EncodedTask(enc(task.train_texts, task.train_labels), enc(task.test_texts, task.test_labels),
                       enc(task.unseen_texts, task.unseen_labels), task)


def text_classification_loss(model, batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of model(ids, mask) (B, C) against labels (B,); a clear error for bad labels.
    `label_smoothing` = epsilon spreads that much target mass uniformly over the C classes."""
    ids, mask, y = batch
    logits = model(*trim_padding(ids, mask))
    if int(y.min()) < 0 or int(y.max()) >= logits.shape[-1]:
        raise ValueError(f"labels must be in [0, {logits.shape[-1] - 1}], found [{int(y.min())}, {int(y.max())}]")
    return F.cross_entropy(logits, y, label_smoothing=label_smoothing)


@torch.no_grad()
def predict(model, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, C) of a text classifier for (ids (N, T), mask (N, T)), in eval mode, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for s in range(0, len(ids), batch_size):
        i, m = trim_padding(ids[s:s + batch_size], mask[s:s + batch_size])
        chunks.append(model(i.to(device), m.to(device)).float().cpu())
    return torch.cat(chunks)


def accuracy(model, split) -> float:
    """Accuracy (0..1) of a classifier on a split (ids, mask, labels); NaN for an empty split
    (e.g. the unseen-word test of a language without held-out words)."""
    ids, mask, y = split
    if len(y) == 0:
        return float("nan")
    return (predict(model, ids, mask).argmax(-1) == y).float().mean().item()


@torch.no_grad()
def mean_features(lm: TransformerLM, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Frozen encoder features: hidden states averaged over real tokens. (N, T) -> (N, D) array."""
    lm.eval()
    device = next(lm.parameters()).device
    out = []
    for s in range(0, len(ids), batch_size):
        x, m = ids[s:s + batch_size].to(device), mask[s:s + batch_size].to(device)
        h, w = lm.encode(x, m), m.unsqueeze(-1).float()
        out.append(((h * w).sum(1) / w.sum(1).clamp_min(1)).cpu())
    return torch.cat(out).numpy()


def make_classifier(strategy: str, lm: TransformerLM, n_classes: int) -> TransformerClassifier:
    """A classifier for `strategy` ("scratch", "partial" or "full"), built on `lm`'s architecture."""
    if strategy == "scratch":
        return TransformerClassifier(replace(lm.config, n_classes=n_classes, pooling="mean"))
    model = TransformerClassifier.from_lm(lm, n_classes)
    if strategy == "partial":
        frozen = [model.body.tok_emb, model.body.pos_emb, *model.body.blocks[:-1]]
        for module in frozen:
            module.requires_grad_(False)
    elif strategy != "full":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return model


def train_classifier(model: TransformerClassifier, split, *, steps: int, lr: float, head_lr: float,
                     batch_size: int = 32, warmup: int = 10, seed: int = 0, label_smoothing: float = 0.0,
                     **fit_kwargs):
    """Fine-tune `model` on (ids, mask, labels) with AdamW: `lr` for the body, `head_lr` for the
    head, linear warm-up over `warmup` steps, optional label smoothing. Returns the History."""
    ids, mask, y = split
    loader = DataLoader(TensorDataset(ids, mask, y), batch_size=min(batch_size, len(y)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    body = [p for p in model.body.parameters() if p.requires_grad]
    groups = ([{"params": body, "lr": lr}] if body else []) + [{"params": model.head.parameters(), "lr": head_lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    loss_fn = functools.partial(text_classification_loss, label_smoothing=label_smoothing)
    return fit(model, loss_fn, loader, steps=steps, optimizer=optimizer, scheduler=scheduler, **fit_kwargs)


# Calibrated on this course's topic task (2 CPU cores): see notebooks/03_pipeline.ipynb.
RECIPES = {
    "scratch": dict(lr=2e-3, head_lr=2e-3, min_steps=100, epochs=3),
    "partial": dict(lr=1e-3, head_lr=1e-2, min_steps=60, epochs=0),
    "full": dict(lr=1e-3, head_lr=1e-2, min_steps=60, epochs=0),
}


def run_strategy(strategy: str, lm: TransformerLM, data: EncodedTask, per_class: int, seed: int,
                 features: dict | None = None, device: str | torch.device = "cpu", steps: int | None = None,
                 **fit_kwargs) -> dict:
    """Train `strategy` with `per_class` labels per class (the nested budget of `seed`) and return
    {"strategy", "per_class", "seed", "test", "unseen", "seconds", "history"} (accuracies in 0..1;
    history is None for the probe).

    `features` (optional) caches the probe's frozen features: {"train", "test", "unseen"} arrays.
    `steps` overrides the recipe's number of training steps (smoke runs use a handful).
    Other keyword arguments go to `fit` (e.g. live=True, out=widget, title=...).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    from sklearn.linear_model import LogisticRegression

    idx = torch.as_tensor(budget_indices(data.train[2].numpy(), per_class, seed))
    t0, history = time.perf_counter(), None
    if strategy == "probe":
        feats = features or {k: mean_features(lm, *getattr(data, k)[:2]) for k in ("train", "test", "unseen")}
        clf = LogisticRegression(C=10, max_iter=2000).fit(feats["train"][idx.numpy()], data.train[2][idx].numpy())
        test = clf.score(feats["test"], data.test[2].numpy())
        unseen = clf.score(feats["unseen"], data.unseen[2].numpy())
    else:
        torch.manual_seed(1000 + seed)
        model = make_classifier(strategy, lm, data.n_classes)
        recipe = RECIPES[strategy]
        n = len(idx)
        steps = steps or max(recipe["min_steps"], recipe["epochs"] * -(-n // 32))
        split = tuple(t[idx] for t in data.train)
        history = train_classifier(model, split, steps=steps, lr=recipe["lr"], head_lr=recipe["head_lr"],
                                   seed=seed, device=device, **fit_kwargs)
        test, unseen = accuracy(model, data.test), accuracy(model, data.unseen)
    return {"strategy": strategy, "per_class": per_class, "seed": seed, "test": test, "unseen": unseen,
            "seconds": time.perf_counter() - t0, "history": history}
