"""Architecture search for a small pretrained encoder, with Optuna.

    architecture_from(trial, budget)   sample depth, width, heads, feed-forward size and learning rate
    search(sampler, ...)               an Optuna study: each trial pretrains by masked-LM and reports
                                       its held-out loss; a pruner may stop hopeless trials early
    pareto_front(points)               the points no other point beats on both objectives

Random search is Optuna's RandomSampler with no pruner; the "real" search is TPE (Bergstra et al.
2011) with a pruner (successive halving, Li et al. 2017). Both draw from the same space and count
the same trials, so they can be compared at equal cost.
"""
from __future__ import annotations

import time

import numpy as np
import optuna

from ..nets.transformer import TransformerConfig, TransformerLM
from ..train import check_positive
from .compute import train_mlm

WIDTHS = (16, 24, 32, 48, 64, 96)
DEPTHS = (1, 2, 3, 4)
HEADS = (1, 2, 4, 8)
FF_MULTIPLIERS = (2, 4)


def non_embedding_params(d_model: int, n_layers: int, d_ff: int, vocab_size: int = 100) -> int:
    """Non-embedding parameters of a course encoder (the size the search budgets)."""
    config = TransformerConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                               n_heads=1, d_ff=d_ff, max_len=8)
    return TransformerLM(config).num_params(non_embedding=True)


def architecture_from(trial: optuna.Trial, budget: int | None = None) -> dict:
    """Sample an architecture and learning rate from `trial`; a sample over the parameter `budget`
    (non-embedding parameters) is pruned at once, before any training."""
    arch = {"d_model": trial.suggest_categorical("d_model", WIDTHS),
            "n_layers": trial.suggest_categorical("n_layers", DEPTHS),
            "n_heads": trial.suggest_categorical("n_heads", HEADS),
            "ff": trial.suggest_categorical("ff", FF_MULTIPLIERS),
            "lr": trial.suggest_float("lr", 3e-4, 1e-2, log=True)}
    if arch["d_model"] % arch["n_heads"]:
        raise optuna.TrialPruned(f"{arch['n_heads']} heads do not divide width {arch['d_model']}")
    params = non_embedding_params(arch["d_model"], arch["n_layers"], arch["ff"] * arch["d_model"])
    trial.set_user_attr("params", params)
    if budget is not None and params > budget:
        raise optuna.TrialPruned(f"{params:,} parameters > the budget of {budget:,}")
    return arch


def search(sampler: str, data, *, n_trials: int, budget: int | None, steps: int, eval_every: int,
           seed: int = 0, prune: bool = False) -> optuna.Study:
    """Run `n_trials` of masked-LM pretraining runs chosen by `sampler` ("random" or "tpe").

    data: (ids, mask, tokenizer, heldout) as for `compute.train_mlm`. Each trial's held-out loss is
    its value; `user_attrs` hold its parameters, the steps it trained and its seconds. With
    `prune`, successive halving stops trials whose loss at an evaluation is in the worse part.
    """
    check_positive(n_trials=n_trials, steps=steps, eval_every=eval_every)
    if sampler not in ("random", "tpe"):
        raise ValueError(f"sampler must be 'random' or 'tpe', got {sampler!r}")
    chosen = (optuna.samplers.RandomSampler(seed=seed) if sampler == "random"
              else optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, n_trials)))
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=eval_every, reduction_factor=2)
              if prune else optuna.pruners.NopPruner())
    study = optuna.create_study(direction="minimize", sampler=chosen, pruner=pruner)
    ids, mask, tokenizer, heldout = data

    def objective(trial):
        arch = architecture_from(trial, budget)
        trained = {"steps": 0}
        t0 = time.perf_counter()

        def report(step, loss):
            trained["steps"] = step
            trial.set_user_attr("steps", step)
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            trial.report(loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"loss {loss:.3f} at step {step}")

        run = train_mlm(ids, mask, tokenizer, heldout, d_model=arch["d_model"], n_layers=arch["n_layers"],
                        n_heads=arch["n_heads"], d_ff=arch["ff"] * arch["d_model"], lr=arch["lr"],
                        steps=steps, eval_every=eval_every, seed=seed, on_eval=report)
        return run.val_loss[-1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials)
    return study


def trained_steps(study: optuna.Study) -> int:
    """Training steps spent by all trials of a study (a trial pruned before training spent none)."""
    return int(sum(t.user_attrs.get("steps", 0) for t in study.trials))


def pareto_front(points) -> np.ndarray:
    """Indices of the points (N, 2) not dominated on both objectives (both minimised), sorted by the
    first objective. A point is dominated when another is no worse on both and better on one."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (N, 2): two objectives to minimise, got shape {points.shape}")
    keep = [i for i, p in enumerate(points)
            if not any((q <= p).all() and (q < p).any() for q in points)]
    return np.array(sorted(keep, key=lambda i: tuple(points[i])), dtype=int)
