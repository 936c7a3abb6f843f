"""The training loop every chapter uses.

    history = fit(model, classification_loss, loader, steps=300, lr=1e-2,
                  eval_fn=lambda m: {"val_acc": accuracy(m, X_val, y_val)}, eval_every=50)

`loss_fn(model, batch) -> scalar loss` keeps the loop objective-agnostic: classification,
masked LM, causal LM and autoencoders all plug in. The loop shows a tqdm progress bar, a live
loss plot in JupyterLab, keeps a `History`, and stops with NonFiniteLossError on NaN/inf.

One learning-rate schedule serves the whole course: `lr_factor` (linear warm-up, then constant
or cosine decay), wrapped for an optimizer by `warmup_schedule`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .device import autocast, pick_device


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
        """Record {"metric": value} as measured at `step`."""
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


def lr_factor(step: int, *, warmup: int, total: int | None = None, final: float = 0.1) -> float:
    """The learning-rate multiplier at optimizer step `step` (0, 1, 2, ...).

    Linear warm-up over the first `warmup` steps ((step + 1) / warmup; warmup=0: none), then
    1.0 for ever (`total=None`) or a cosine decay that reaches `final` at step `total` and stays there.
    """
    if step < 0 or warmup < 0:
        raise ValueError(f"step and warmup must be >= 0, got step={step}, warmup={warmup}")
    if total is not None and total < max(warmup, 1):
        raise ValueError(f"total must be >= warmup and >= 1, got total={total}, warmup={warmup}")
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"final must be in [0, 1] (a fraction of the peak learning rate), got {final}")
    if step < warmup:
        return (step + 1) / warmup
    if total is None:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup)) if total > warmup else 1.0
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_schedule(optimizer: torch.optim.Optimizer, *, warmup: int, total: int | None = None,
                    final: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that multiplies every parameter group's lr by `lr_factor` (pass it to `fit`)."""
    lr_factor(0, warmup=warmup, total=total, final=final)  # bad arguments fail here, not mid-training
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup=warmup, total=total, final=final))


def _batches(loader, total_steps: int):
    """Yield (epoch, batch), epochs counted from 1, until `total_steps` batches were produced, cycling the loader."""
    step, epoch = 0, 1
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
    """Train `model` in place on `device` and return its History; the model is left in eval mode.

    loss_fn:   callable (model, batch) -> scalar loss tensor.
    loader:    an iterable of batches (a DataLoader), cycled until `steps` are done
               (or `epochs` passes; default 1 epoch). A batch with 0 examples is a ValueError.
    optimizer: defaults to AdamW(lr, weight_decay) over the trainable parameters.
    scheduler: stepped after every optimizer step, e.g. `warmup_schedule(optimizer, warmup=10)`.
    grad_clip: clip the gradients' global norm to this value (None: no clipping).
    eval_fn:   callable (model) -> {"metric": value}; run every `eval_every` steps and at the end,
               in eval mode without gradients.
    live:      draw a live loss plot (default: when running in a notebook); `out` draws it
               into an ipywidgets.Output instead of the cell.
    history:   continue an existing History (steps keep counting).
    """
    if steps is None:
        steps = _steps_in(loader, epochs)
    _check_positive(steps=steps, lr=lr, grad_clip=grad_clip, eval_every=eval_every)
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    optimizer = optimizer or torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    history = history or History()
    start_step = history.step[-1] if history.step else 0
    plot = _live_plot(title, out) if live is not False else None
    t0 = time.perf_counter()

    def evaluate(at_step):
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            history.add_eval(at_step, eval_fn(model))
        model.train()

    model.train()
    bar = _progress_bar(steps, title or "training", enabled=progress)
    try:
        for i, (epoch, batch) in enumerate(_batches(loader, steps), start=1):
            step = start_step + i
            if _n_examples(batch) == 0:
                raise ValueError(f"the batch of step {step} (epoch {epoch}) is empty: 0 examples. "
                                 "Check the data (an empty split or subset?) and the loader's batch_size.")
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


def _steps_in(loader, epochs: int | None) -> int:
    """Number of steps in `epochs` passes over `loader` (default 1)."""
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if len(loader) == 0:
        raise ValueError("the data loader is empty: no batches to train on")
    return (epochs or 1) * len(loader)


def _check_positive(**values) -> None:
    """A clear ValueError for the first argument that is given (not None) but not > 0."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def _n_examples(batch) -> int | None:
    """Number of examples in a batch: the first dimension of its first tensor (None: no tensor)."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.dim() else None
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for item in items:
        n = _n_examples(item)
        if n is not None:
            return n
    return None


def _live_plot(title: str, out):
    from .viz import LivePlot  # imported here: matplotlib is only needed when a plot is drawn

    return LivePlot(title, out=out)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm  # imported here: tqdm.auto imports IPython when it is installed

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _current_lr(optimizer) -> float:
    return optimizer.param_groups[0]["lr"]
