"""The training loop every chapter uses.

    history = fit(model, classification_loss, loader, steps=300, lr=1e-2,
                  eval_fn=lambda m: {"val_acc": accuracy(m, X_val, y_val)}, eval_every=50)

`loss_fn(model, batch) -> scalar loss` keeps the loop objective-agnostic: classification,
masked LM, causal LM and autoencoders all plug in. The loop shows a tqdm progress bar, a live
loss plot in JupyterLab, keeps a `History`, and stops with NonFiniteLossError on NaN/inf.

One learning-rate schedule serves the whole course: `lr_factor` (linear warm-up, then constant
or cosine decay), wrapped for an optimizer by `warmup_schedule`.

Interrupted training resumes exactly: ``fit(..., checkpoint="build/run", checkpoint_every=100)``
saves the whole training state every 100 steps (model, optimizer, scheduler, every random state,
the step, the History, and where in the data it is: the epoch, the batches of it already used, the
random state its shuffle was drawn from). Re-run the same cell with ``resume=True`` and it ends
with the same model and History (to the bit, on a CPU) as a run that was never interrupted.
"""
from __future__ import annotations

import math
import numbers
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import CheckpointMismatchError, load_state, save_state, state_path
from .data import check_labels
from .device import autocast, pick_device


class NonFiniteLossError(FloatingPointError, ValueError):
    """The loss became NaN or infinite: training cannot recover from that (a ValueError too: usually
    the data or the learning rate)."""


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


def classification_loss(model: nn.Module, batch, weight: torch.Tensor | None = None,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of `model(*inputs)` (B, C) against labels y (B,), for batch = (*inputs, y):
    (x, y) for an image or vector model, (ids, mask, y) for a text classifier. A clear error for
    bad labels. `weight` (C,) weighs each class's loss (see `ptm_lib.recipe.class_weights`);
    `label_smoothing` = epsilon spreads that much target mass uniformly over the C classes."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"a batch must be (x, y) or (ids, mask, y): inputs then labels, got {type(batch).__name__}"
                        f"{f' of length {len(batch)}' if isinstance(batch, (tuple, list)) else ''}")
    *inputs, y = batch
    logits = model(*inputs)
    check_labels(y, logits.shape[-1], n=len(logits))
    return F.cross_entropy(logits, y.long(), weight=None if weight is None else weight.to(logits.device),
                           label_smoothing=label_smoothing)


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


def default_optimizer(params, *, lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """The optimizer `fit` builds when none is given: AdamW, fused (one kernel updates every
    parameter: 8x faster than the per-tensor loop on a CPU, the same update up to float rounding)
    where the parameters' device and dtype allow it, else the plain AdamW."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):           # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class _Batches:
    """Cycle through `loader` (a new pass = a new epoch, counted from 1), remembering where it is:
    the epoch, how many of its batches were used, and the random states the epoch's shuffle was
    drawn from. `restore` replays that position, so a resumed run sees the same batches."""

    def __init__(self, loader):
        self.loader, self.epoch, self.used, self.epoch_rng, self._it = loader, 0, 0, None, None

    def next(self):
        """(epoch, batch) of the next step."""
        while True:
            if self._it is None:
                self.epoch, self.used = self.epoch + 1, 0
                self.epoch_rng = _loader_rng(self.loader)   # the shuffle is drawn from these when the pass starts
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                if self.used == 0:
                    raise ValueError("the data loader is empty: no batches to train on") from None
                self._it = None
                continue
            self.used += 1
            return self.epoch, batch

    def state(self) -> dict:
        return {"epoch": self.epoch, "used": self.used, "epoch_rng": self.epoch_rng}

    def restore(self, state: dict) -> None:
        """Start the saved epoch from its random states again and skip the batches already used."""
        self.epoch, self.epoch_rng = state["epoch"], state["epoch_rng"]
        _set_loader_rng(self.loader, self.epoch_rng)
        self._it = iter(self.loader)
        for _ in range(state["used"]):
            next(self._it)
        self.used = state["used"]


def fit(model: nn.Module, loss_fn, loader, *, steps: int | None = None, epochs: int | None = None,
        lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None, weight_decay: float = 0.0,
        scheduler=None, grad_clip: float | None = None, eval_fn=None, eval_every: int | None = None,
        device: torch.device | str | None = None, progress: bool = True, live: bool | None = None,
        out=None, title: str = "", history: History | None = None, checkpoint=None,
        checkpoint_every: int | None = None, resume: bool = False, generators=(), should_stop=None) -> History:
    """Train `model` in place on `device` and return its History; the model is left in eval mode.

    loss_fn:   callable (model, batch) -> scalar loss tensor.
    loader:    an iterable of batches (a DataLoader), cycled until `steps` are done
               (or `epochs` passes; default 1 epoch). A batch with 0 examples is a ValueError.
    optimizer: defaults to `default_optimizer` (AdamW(lr, weight_decay), fused where it can be) over the
               trainable parameters.
    scheduler: stepped after every optimizer step, e.g. `warmup_schedule(optimizer, warmup=10)`.
    grad_clip: clip the gradients' global norm to this value (None: no clipping).
    eval_fn:   callable (model) -> {"metric": value}; run every `eval_every` steps and at the end,
               in eval mode without gradients.
    live:      draw a live loss plot (default: when running in a notebook); `out` draws it
               into an ipywidgets.Output instead of the cell.
    history:   continue an existing History (steps keep counting).
    checkpoint: a path: the whole training state is saved to `<checkpoint>.safetensors` every
               `checkpoint_every` steps (if given) and at the end (`ptm_lib.checkpoint.save_state`).
    resume:    continue from `checkpoint` if it exists. Build the model, optimizer, scheduler and
               loader as for the first run: their states are loaded, and the run ends as if it had
               never been interrupted.
    generators: other torch.Generators the loss draws from (pretraining's masking generator):
               their states are checkpointed too.
    should_stop: callable (history) -> bool, asked after every evaluation: True ends training there
               (early stopping; `ptm_lib.recipe.finetune` uses it).
    """
    if steps is None:
        steps = _steps_in(loader, epochs)
    check_positive(steps=steps, lr=lr, grad_clip=grad_clip, eval_every=eval_every, checkpoint_every=checkpoint_every)
    if (checkpoint_every or resume) and checkpoint is None:
        raise ValueError("checkpoint_every and resume need a checkpoint path (fit(..., checkpoint='build/run'))")
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    optimizer = optimizer or default_optimizer(params, lr=lr, weight_decay=weight_decay)
    history = history or History()
    start_step, done = (history.step[-1] if history.step else 0), 0
    batches, generators = _Batches(loader), list(generators)
    settings = {"steps": steps, "grad_clip": grad_clip, "eval_every": eval_every}
    if resume and state_path(checkpoint).exists():
        start_step, done = _resume(checkpoint, settings, model, optimizer, scheduler, history, batches, generators)
    plot = _live_plot(title, out) if live is not False else None
    t0 = time.perf_counter()

    def save():
        save_state({"settings": settings, "start_step": start_step, "done": i, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "history": {"step": history.step, "loss": history.loss, "evals": history.evals,
                                "wall_s": history.wall_s + time.perf_counter() - t0},
                    "data": batches.state(), "rng": _rng_state(loader, generators)}, checkpoint)

    def evaluate(at_step):
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            history.add_eval(at_step, eval_fn(model))
        model.train()

    model.train()
    bar = _progress_bar(steps, title or "training", enabled=progress, initial=done)
    i, stopped = done, False
    try:
        for i in range(done + 1, steps + 1):
            epoch, batch = batches.next()
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
                if should_stop is not None and should_stop(history):
                    stopped = True
            if checkpoint_every and i % checkpoint_every == 0 and i != steps:
                save()
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if plot:
                plot.update(history)
            if stopped:
                break
        if done < steps:
            if not stopped:
                evaluate(start_step + steps)
            if checkpoint is not None:
                save()
    finally:
        bar.close()
        history.wall_s += time.perf_counter() - t0
        model.eval()
    if plot:
        plot.finish(history)
    return history


def _resume(checkpoint, settings, model, optimizer, scheduler, history, batches, generators) -> tuple[int, int]:
    """Load a training state saved by `fit` into the given objects; return (start_step, steps done)."""
    state = load_state(checkpoint)
    if state["settings"] != settings:
        raise ValueError(f"the checkpoint {state_path(checkpoint)} was saved by a run with {state['settings']}, "
                         f"this one has {settings}: resume with the same arguments, or delete the checkpoint "
                         "to start again")
    if (state["scheduler"] is None) != (scheduler is None):
        raise ValueError("resume with the same kind of run: the checkpoint was saved "
                         f"{'without' if state['scheduler'] is None else 'with'} a scheduler")
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise CheckpointMismatchError(f"the checkpoint {state_path(checkpoint)} does not fit this model or "
                                      f"optimizer: {e}") from None
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    h = state["history"]
    history.step, history.loss, history.wall_s = h["step"], h["loss"], h["wall_s"]
    history.evals = {name: [tuple(e) for e in values] for name, values in h["evals"].items()}
    batches.restore(state["data"])                       # replays the epoch's shuffle ...
    _set_rng_state(state["rng"], batches.loader, generators)   # ... then the random states of the saved step
    return state["start_step"], state["done"]


def _loader_generators(loader) -> list[torch.Generator]:
    """The torch.Generators a DataLoader shuffles with (its own, its sampler's and its batch sampler's,
    e.g. `ptm_lib.data.LengthGroupedSampler`), each once."""
    found = [getattr(loader, "generator", None), getattr(getattr(loader, "sampler", None), "generator", None),
             getattr(getattr(loader, "batch_sampler", None), "generator", None)]
    unique = {id(g): g for g in found if isinstance(g, torch.Generator)}
    return list(unique.values())


def _loader_rng(loader) -> dict:
    """The random states a new pass over `loader` draws its shuffle from (a loader without its own
    generator draws from torch's global one)."""
    return {"torch": torch.get_rng_state(), "loader": [g.get_state() for g in _loader_generators(loader)]}


def _set_loader_rng(loader, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    for g, s in zip(_loader_generators(loader), state["loader"], strict=True):
        g.set_state(s)


def _rng_state(loader, generators) -> dict:
    """Every random state training draws from: Python's, NumPy's, torch's (CPU and CUDA), the
    loader's generators and `generators`."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {**_loader_rng(loader), "python": random.getstate(),
            "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "generators": [g.get_state() for g in generators]}


def _set_rng_state(state: dict, loader, generators) -> None:
    _set_loader_rng(loader, state)
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if len(generators) != len(state["generators"]):
        raise ValueError(f"the checkpoint saved {len(state['generators'])} extra generator(s), "
                         f"this run passes {len(generators)} (generators=...)")
    for g, s in zip(generators, state["generators"]):
        g.set_state(s)


def _steps_in(loader, epochs: int | None) -> int:
    """Number of steps in `epochs` passes over `loader` (default 1)."""
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if len(loader) == 0:
        raise ValueError("the data loader is empty: no batches to train on")
    return (epochs or 1) * len(loader)


def check_positive(**values) -> None:
    """A clear ValueError for the first argument that is given (not None) but not a number > 0
    (NaN and inf are refused too)."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number > 0, got {type(value).__name__} {value!r}")
        if not (value > 0 and math.isfinite(value)):
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


def _progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm  # imported here: tqdm.auto imports IPython when it is installed

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, initial=initial)


def _current_lr(optimizer) -> float:
    return optimizer.param_groups[0]["lr"]
