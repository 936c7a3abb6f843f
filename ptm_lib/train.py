"""The training loop every chapter uses.

    history = fit(model, classification_loss, loader, steps=300, lr=1e-2,
                  eval_fn=lambda m: {"val_acc": accuracy(m, X_val, y_val)}, eval_every=50)

`loss_fn(model, batch) -> scalar loss` keeps the loop objective-agnostic: classification,
masked LM, causal LM and autoencoders all plug in. The loop shows a tqdm progress bar, a live
loss plot in JupyterLab, keeps a `History`, and stops with NonFiniteLossError on NaN/inf.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .device import autocast, pick_device
from .viz import LivePlot


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite: training cannot recover from that."""


@dataclass
class History:
    """What happened during `fit`: per-step training loss and periodic evaluations."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    evals: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    wall_s: float = 0.0

    def last(self, name: str = "loss") -> float:
        """Latest value of the training loss or of an evaluated metric."""
        if name == "loss":
            return self.loss[-1]
        return self.evals[name][-1][1]

    def add_eval(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.evals.setdefault(name, []).append((step, float(value)))


def to_device(batch, device: torch.device):
    """Move a tensor, or a tuple/list/dict of tensors, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of `model(x)` (B, C) against labels y (B,), with a clear error for bad labels."""
    x, y = batch
    logits = model(x)
    n_classes = logits.shape[-1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes - 1}] for a {n_classes}-class model, "
                         f"found [{int(y.min())}, {int(y.max())}]")
    return F.cross_entropy(logits, y)


def _batches(loader, total_steps: int):
    """Yield (epoch, batch) until `total_steps` batches were produced, cycling the loader."""
    step, epoch = 0, 0
    while step < total_steps:
        empty = True
        for batch in loader:
            empty = False
            yield epoch, batch
            step += 1
            if step >= total_steps:
                return
        if empty:
            raise ValueError("the data loader is empty: no batches to train on")
        epoch += 1


def fit(model: nn.Module, loss_fn, loader, *, steps: int | None = None, epochs: int | None = None,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None, weight_decay: float = 0.0,
        scheduler=None, grad_clip: float | None = None, eval_fn=None, eval_every: int | None = None,
        device: torch.device | str | None = None, progress: bool = True, live: bool | None = None,
        out=None, title: str = "", history: History | None = None) -> History:
    """Train `model` in place and return its History.

    loss_fn:   callable (model, batch) -> scalar loss tensor.
    loader:    an iterable of batches (a DataLoader), cycled until `steps` are done
               (or `epochs` passes; default 1 epoch).
    optimizer: defaults to AdamW(lr, weight_decay) over the trainable parameters.
    eval_fn:   callable (model) -> {"metric": value}; run every `eval_every` steps and at the end,
               in eval mode without gradients.
    live:      draw a live loss plot (default: when running in a notebook); `out` draws it
               into an ipywidgets.Output instead of the cell.
    history:   continue an existing History (steps keep counting).
    """
    if steps is None:
        steps = (epochs or 1) * len(loader)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    optimizer = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    history = history or History()
    start_step = history.step[-1] if history.step else 0
    plot = LivePlot(title, out=out) if (live if live is not None else True) else None
    t0 = time.perf_counter()

    def evaluate(at_step):
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            history.add_eval(at_step, eval_fn(model))
        model.train()

    model.train()
    bar = tqdm(total=steps, desc=title or "training", disable=not progress, leave=False)
    try:
        for i, (epoch, batch) in enumerate(_batches(loader, steps), start=1):
            step = start_step + i
            with autocast(device):
                loss = loss_fn(model, to_device(batch, device))
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"loss became {value} at step {step} (epoch {epoch}). Training cannot recover from this. "
                    f"Try a smaller learning rate (lr={_current_lr(optimizer):g}), gradient clipping "
                    f"(grad_clip=1.0), or check the inputs for NaN/inf values.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.step.append(step)
            history.loss.append(value)
            if eval_every and i % eval_every == 0 and i != steps:
                evaluate(step)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if plot:
                plot.update(history)
        evaluate(start_step + steps)
    finally:
        bar.close()
        history.wall_s += time.perf_counter() - t0
        model.eval()
    if plot:
        plot.finish(history)
    return history


def _current_lr(optimizer) -> float:
    return optimizer.param_groups[0]["lr"]
