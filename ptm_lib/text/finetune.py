"""Fine-tuning strategies for text classification, compared in chapter 3.

Given a pretrained `TransformerLM` encoder and a labelled task (`ptm_lib.text.tasks.LabelledTask`):

    scratch       same architecture, random initialisation, every weight trained on the labels only
    probe         pretrained encoder frozen; mean-pooled features -> logistic regression
    random_probe  the control for `probe`: the same probe on a frozen *randomly initialised* encoder
                  (separates "pretraining helps" from "freezing helps")
    partial       pretrained; embeddings and all blocks but the last frozen; last block + head trained
    full          pretrained; every weight fine-tuned (the new head with a 10x larger learning rate)

Every strategy gets the same treatment: its learning rate (for the probes, the inverse
regularisation C) is chosen from the same-sized grid by accuracy on the task's *validation*
split, with the same number of steps for every trained strategy; the test split is scored once,
with the chosen setting. Shapes: ids/mask (N, T), labels (N,).
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..data import LengthGroupedSampler
from ..evaluate import accuracy
from ..nets.common import check_ids, masked_mean, trim_padding
from ..nets.transformer import TransformerClassifier, TransformerLM
from ..train import check_positive, classification_loss, fit, warmup_schedule
from .tasks import LabelledTask, budget_indices
from .tokenizer import WordTokenizer

__all__ = ["STRATEGIES", "RECIPES", "EncodedTask", "encode_task", "mean_features", "probe_features",
           "random_encoder", "make_classifier", "train_classifier", "run_strategy",
           "run_many"]

STRATEGIES = ("scratch", "probe", "random_probe", "partial", "full")
SPLITS = ("train", "val", "test", "unseen")

# Calibrated on this course's topic task (2 CPU cores); see notebooks/03_pipeline.ipynb.
# grid: learning rates of the body (head: head_lr_factor x) or, for probes, values of C.
RECIPES = {
    "scratch": dict(grid=(1e-3, 3e-3), head_lr_factor=1.0, epochs=3, min_steps=60),
    "partial": dict(grid=(1e-3, 3e-3), head_lr_factor=10.0, epochs=3, min_steps=60),
    "full": dict(grid=(1e-3, 3e-3), head_lr_factor=10.0, epochs=3, min_steps=60),
    "probe": dict(grid=(1.0, 10.0)),
    "random_probe": dict(grid=(1.0, 10.0)),
}


@dataclass
class EncodedTask:
    """A labelled task as tensors: each split is (ids (N, T), mask (N, T), labels (N,))."""

    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    unseen: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    task: LabelledTask

    @property
    def n_classes(self) -> int:
        return self.task.n_classes


def encode_task(task: LabelledTask, tokenizer: WordTokenizer, max_len: int) -> EncodedTask:
    """Tokenise every split of `task` (sentences longer than `max_len` tokens are truncated)."""
    def encode(texts, labels):
        ids, mask = tokenizer.encode_batch(texts, max_len=max_len)
        return ids, mask, torch.as_tensor(labels, dtype=torch.long)

    return EncodedTask(*(encode(*task.split(name)) for name in SPLITS), task)


@torch.no_grad()
def mean_features(lm: TransformerLM, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Frozen encoder features: hidden states averaged over real tokens, (N, T) -> (N, D) array.
    Runs in eval mode and restores the encoder's previous mode."""
    if isinstance(ids, torch.Tensor) and ids.dim() == 2 and len(ids) == 0:
        return np.zeros((0, lm.config.d_model), np.float32)            # an empty split (no unseen words)
    mask = check_ids(ids, lm.config.vocab_size, mask)
    mask = mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)
    was_training = lm.training
    lm.eval()
    device = next(lm.parameters()).device
    out = []
    try:
        for s in range(0, len(ids), batch_size):
            x, m = trim_padding(ids[s:s + batch_size], mask[s:s + batch_size])
            x, m = x.to(device), m.to(device)
            out.append(masked_mean(lm.encode(x, m), m).float().cpu())
    finally:
        lm.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, lm.config.d_model), np.float32)


def probe_features(lm: TransformerLM, data: EncodedTask) -> dict[str, np.ndarray]:
    """`mean_features` of every split: {"train", "val", "test", "unseen"} -> (N, D) arrays (a cache
    for many probe runs)."""
    return {name: mean_features(lm, *getattr(data, name)[:2]) for name in SPLITS}


def random_encoder(lm: TransformerLM, seed: int) -> TransformerLM:
    """A randomly initialised encoder of the same architecture as `lm` (the probe's control)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return type(lm)(lm.config)


def make_classifier(strategy: str, lm: TransformerLM, n_classes: int) -> TransformerClassifier:
    """A classifier for `strategy` ("scratch", "partial" or "full"), built on `lm`'s architecture.
    Another family of encoder (e.g. `ptm_lib.bio.ConvLM`) builds its own with `lm.make_classifier`."""
    if not isinstance(lm, TransformerLM) and hasattr(lm, "make_classifier"):
        return lm.make_classifier(strategy, n_classes)
    if strategy == "scratch":
        return TransformerClassifier(replace(lm.config, n_classes=n_classes, pooling="mean"))
    if strategy not in ("partial", "full"):
        raise ValueError(f"make_classifier builds 'scratch', 'partial' or 'full' models, got {strategy!r}")
    model = TransformerClassifier.from_lm(lm, n_classes)
    if strategy == "partial":
        for module in (model.body.tok_emb, model.body.pos_emb, *model.body.blocks[:-1]):
            module.requires_grad_(False)
    return model


def train_classifier(model: TransformerClassifier, split, *, steps: int, lr: float, head_lr: float | None = None,
                     batch_size: int = 32, warmup: int = 10, seed: int = 0, label_smoothing: float = 0.0,
                     group_by_length: bool = False, **fit_kwargs):
    """Fine-tune `model` on split = (ids, mask, labels) with AdamW: `lr` for the trainable body,
    `head_lr` (default `lr`) for the head, linear warm-up over `warmup` steps, optional label
    smoothing. `group_by_length`: batches of sentences of similar length
    (`ptm_lib.data.LengthGroupedSampler`), so a model that trims padding computes on fewer
    columns. Returns the History (`fit` leaves the model in eval mode)."""
    ids, mask, y = split
    if len(y) == 0:
        raise ValueError("no labelled examples to train on")
    check_positive(steps=steps, lr=lr, head_lr=head_lr, batch_size=batch_size)
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0 steps, got {warmup}")
    if not len(ids) == len(mask) == len(y):
        raise ValueError(f"ids, mask and labels differ in length: {len(ids)}, {len(mask)}, {len(y)}")
    generator = torch.Generator().manual_seed(seed)
    if group_by_length:
        sampler = LengthGroupedSampler(mask.sum(1), min(batch_size, len(y)), generator=generator)
        loader = DataLoader(TensorDataset(ids, mask, y), batch_sampler=sampler)
    else:
        loader = DataLoader(TensorDataset(ids, mask, y), batch_size=min(batch_size, len(y)), shuffle=True,
                            generator=generator)
    body = [p for p in model.body.parameters() if p.requires_grad]
    groups = ([{"params": body, "lr": lr}] if body else []) + [{"params": model.head.parameters(),
                                                                 "lr": head_lr or lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    loss_fn = functools.partial(classification_loss, label_smoothing=label_smoothing)
    return fit(model, loss_fn, loader, steps=steps, optimizer=optimizer,
               scheduler=warmup_schedule(optimizer, warmup=min(warmup, steps)), **fit_kwargs)


def _probe(features: dict, data: EncodedTask, idx: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=3000).fit(features["train"][idx], data.train[2].numpy()[idx])
    return {name: (clf.score(features[name], getattr(data, name)[2].numpy()) if len(getattr(data, name)[2])
                   else float("nan")) for name in ("val", "test", "unseen")}


def _steps_for(strategy: str, n_examples: int, batch_size: int = 32) -> int:
    recipe = RECIPES[strategy]
    return max(recipe["min_steps"], recipe["epochs"] * -(-n_examples // batch_size))


def run_strategy(strategy: str, lm: TransformerLM, data: EncodedTask, per_class: int, seed: int, *,
                 features: dict | None = None, grid=None, steps: int | None = None,
                 device: str | torch.device = "cpu", **fit_kwargs) -> dict:
    """Train `strategy` with `per_class` labels per class (the nested budget of `seed`) once per grid
    value, keep the one with the best *validation* accuracy, and score it on test (and unseen).

    Returns {"strategy", "per_class", "seed", "setting" (chosen lr or C), "val", "test", "unseen"
    (accuracies in 0..1; unseen is NaN without held-out words), "seconds", "history"
    (of the chosen run; None for probes)}.
    `features`: cached `probe_features` of the encoder the probe reads (`lm` for "probe", a
    `random_encoder(lm, seed)` for "random_probe"); computed when not given.
    `grid` overrides the recipe's grid; `steps` its number of steps (smoke runs use a handful).
    Other keyword arguments go to `fit` (live=True, out=widget, title=...).
    """
    _check_strategy(strategy)
    idx = budget_indices(data.train[2].numpy(), per_class, seed)
    grid = tuple(grid or RECIPES[strategy]["grid"])
    check_positive(**{f"grid[{i}] ({'C' if 'probe' in strategy else 'lr'})": v for i, v in enumerate(grid)}, steps=steps)
    t0 = time.perf_counter()
    best = None
    if strategy in ("probe", "random_probe"):
        if features is None:
            encoder = lm if strategy == "probe" else random_encoder(lm, seed)
            features = probe_features(encoder, data)
        for C in grid:
            scores = _probe(features, data, idx, C)
            if best is None or scores["val"] > best["val"]:
                best = {**scores, "setting": C, "history": None}
    else:
        split = tuple(t[torch.as_tensor(idx)] for t in data.train)
        n_steps = steps or _steps_for(strategy, len(idx))
        for lr in grid:
            torch.manual_seed(1000 + seed)            # the same initial head (and scratch body) for every lr
            model = make_classifier(strategy, lm, data.n_classes)
            history = train_classifier(model, split, steps=n_steps, lr=lr,
                                       head_lr=lr * RECIPES[strategy]["head_lr_factor"], seed=seed,
                                       device=device, **fit_kwargs)
            val = accuracy(model, data.val[:2], data.val[2])
            if best is None or val > best["val"]:
                best = {"val": val, "setting": lr, "history": history, "model": model}
        model = best.pop("model")
        best["test"] = accuracy(model, data.test[:2], data.test[2])
        best["unseen"] = accuracy(model, data.unseen[:2], data.unseen[2]) if len(data.unseen[2]) else float("nan")
    return {"strategy": strategy, "per_class": per_class, "seed": seed, **best,
            "seconds": time.perf_counter() - t0}


def _check_strategy(strategy) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def _run_quietly(args, kwargs):
    torch.set_num_threads(1)           # many small models: one thread per worker process is fastest
    return run_strategy(*args, **kwargs)


def run_many(jobs, lm: TransformerLM, data: EncodedTask, *, features: dict | None = None, n_jobs: int | None = None,
             progress: bool = True, **kwargs) -> list[dict]:
    """`run_strategy` for every (strategy, per_class, seed) in `jobs`, in parallel worker processes
    (one torch thread each) on a CPU; results in the order of `jobs`.

    features: {(strategy, seed): probe_features} for the probes (see `run_strategy`).
    n_jobs: worker processes (default: the CPU count; 1 runs here, in this process, and always on a GPU).
    Every run seeds itself, so results do not depend on the number of workers.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = list(jobs)
    for job in jobs:     # bad jobs fail here, with a clear message, not inside a worker process
        if not (isinstance(job, (tuple, list)) and len(job) == 3):
            raise ValueError(f"each job is (strategy, per_class, seed), got {job!r}")
        _check_strategy(job[0])
        budget_indices(data.train[2].numpy(), job[1], job[2])
    features = features or {}
    device = torch.device(kwargs.get("device", "cpu"))
    n_jobs = n_jobs or os.cpu_count() or 1
    calls = [((s, lm, data, n, seed), {"features": features.get((s, seed)), **kwargs}) for s, n, seed in jobs]
    bar = tqdm(total=len(calls), desc="fine-tuning runs", disable=not progress)
    if n_jobs == 1 or device.type != "cpu" or len(calls) < 2:
        results = []
        for args, kw in calls:
            results.append(run_strategy(*args, **kw))
            bar.update()
    else:
        results = []
        for result in Parallel(n_jobs=min(n_jobs, len(calls)), return_as="generator")(
                delayed(_run_quietly)(args, kw) for args, kw in calls):
            results.append(result)
            bar.update()
    bar.close()
    return results
