"""Adaptive optimisation and parameter-efficient fine-tuning, measured on one fine-tuning task.

    opt = make_optimizer("adamw", param_groups(model, lr=1e-3, llrd=0.5), lr=1e-3)
    model = add_lora(model, r=4, alpha=8)           # frozen W + B A (alpha / r), A random, B = 0
    run = finetune(model, data, optimizer="adamw", lr=3e-3, steps=100, schedule="warmup_cosine")
    model = merge_lora(model)                        # W + (alpha / r) B A folded in: plain nn.Linear again

`LoRALinear` is LoRA (Hu et al. 2021) written out; `peft_lora` builds the same thing with Hugging
Face `peft` (`LoraConfig` + `get_peft_model`), and `copy_lora_from_peft` makes the two hold the same
A and B so that they can be compared number for number. Models are the course's
`TransformerClassifier` (forward(ids (B, T), mask (B, T)) -> logits (B, C)); data is an
`ptm_lib.text.finetune.EncodedTask`.
"""
from __future__ import annotations

import copy
import math
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import recipe
from ..evaluate import accuracy
from ..train import check_positive, classification_loss, fit, warmup_schedule

__all__ = ["OPTIMIZERS", "SCHEDULES", "TARGETS", "LoRALinear", "add_lora", "merge_lora", "peft_lora", "bitfit",
           "copy_lora_from_peft", "count_trainable", "param_groups", "make_optimizer", "make_schedule",
           "finetune", "choose_lr"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "warmup_cosine")
TARGETS = ("qkv", "proj", "mlp.0", "mlp.2")   # every nn.Linear of the course's transformer blocks


# ------------------------------------------------------------------------------------------ LoRA
class LoRALinear(nn.Module):
    """y = x W^T + b + (alpha / r) x A^T B^T, with W, b frozen and only A (r, in), B (out, r) trained.

    A starts random (as nn.Linear's weight, the init of the LoRA paper's code and of peft), B at
    zero, so the wrapped layer starts as exactly the pretrained one. x (..., in) -> (..., out).
    """

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"rank r must be an integer >= 1, got {r!r}")
        check_positive(alpha=alpha)
        self.base, self.r, self.alpha, self.scaling = base, r, float(alpha), alpha / r
        base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The low-rank update (alpha / r) B A, shape (out, in), of rank <= r."""
        return self.scaling * self.lora_B @ self.lora_A

    def merge(self) -> nn.Linear:
        """A plain nn.Linear with W + (alpha / r) B A: the same function, no extra cost at inference."""
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged


def _targets(model: nn.Module, targets) -> list[str]:
    """Names of the nn.Linear modules whose name ends with one of `targets` (as peft matches them)."""
    if isinstance(targets, str) or not all(isinstance(t, str) for t in targets):
        raise TypeError(f"targets must be a list of module-name suffixes, got {targets!r}")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
             and any(n == t or n.endswith("." + t) for t in targets)]
    if not names:
        raise ValueError(f"no nn.Linear in the model matches targets {list(targets)}")
    return names


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def add_lora(model: nn.Module, r: int = 4, alpha: float = 8.0, targets=TARGETS, train=("head",)) -> nn.Module:
    """Freeze `model` and wrap each target nn.Linear in a LoRALinear (in place; returns the model).

    `train`: names of sub-modules trained in full as well (the new classification head)."""
    model.requires_grad_(False)
    for name in _targets(model, targets):
        _set_module(model, name, LoRALinear(model.get_submodule(name), r, alpha))
    for name in train:
        model.get_submodule(name).requires_grad_(True)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged nn.Linear (in place; returns the model)."""
    for name in [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]:
        _set_module(model, name, model.get_submodule(name).merge())
    return model


def peft_lora(model: nn.Module, r: int = 4, alpha: float = 8.0, targets=TARGETS, train=("head",)):
    """The same adaptation with Hugging Face peft: `get_peft_model(model, LoraConfig(...))`.
    Works on any torch module with named nn.Linear layers. Returns the PeftModel."""
    from peft import LoraConfig, get_peft_model

    _targets(model, targets)                                   # the same clear error as add_lora
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets),
                        modules_to_save=list(train) or None)
    return get_peft_model(model, config)


@torch.no_grad()
def copy_lora_from_peft(ours: nn.Module, peft_model) -> int:
    """Copy peft's A and B (adapter "default") and its trained head into `ours` (built by `add_lora`
    on the same pretrained model). Returns the number of LoRA layers copied."""
    theirs = dict(peft_model.base_model.model.named_modules())
    n = 0
    for name, m in ours.named_modules():
        if isinstance(m, LoRALinear):
            layer = theirs[name]
            m.lora_A.copy_(layer.lora_A["default"].weight)
            m.lora_B.copy_(layer.lora_B["default"].weight)
            n += 1
    if n == 0:
        raise ValueError("`ours` has no LoRALinear layer: build it with add_lora first")
    head = theirs.get("head")
    if head is not None and hasattr(head, "modules_to_save"):
        ours.head.load_state_dict(head.modules_to_save["default"].state_dict())
    return n


def bitfit(model: nn.Module, train=("head",)) -> nn.Module:
    """BitFit (Ben Zaken et al. 2022): freeze every weight but the biases (of the linear layers and
    LayerNorms) and the sub-modules named in `train`. In place; returns the model."""
    model.requires_grad_(False)
    n = 0
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.requires_grad_(True)
            n += 1
    if n == 0:
        raise ValueError("the model has no bias parameters to train")
    for name in train:
        model.get_submodule(name).requires_grad_(True)
    return model


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# ------------------------------------------------------------------------- optimisers, schedules
def param_groups(model: nn.Module, lr: float, llrd: float = 1.0, head_lr_factor: float = 1.0) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay (LLRD).

    The head gets lr * head_lr_factor; the last block lr, the one below lr * llrd, ..., the
    embeddings lr * llrd ** n_layers (the final LayerNorm goes with the last block). llrd = 1: one
    rate for the whole body. Only trainable parameters are included; empty groups are dropped.
    (Chapter 9's fine-tuning recipe uses the same function: `ptm_lib.recipe.param_groups`.)
    """
    check_positive(lr=lr, head_lr_factor=head_lr_factor)
    if not 0.0 < llrd <= 1.0:
        raise ValueError(f"llrd must be in (0, 1], got {llrd!r}")
    return recipe.param_groups(model, lr, layer_decay=llrd, head_lr=lr * head_lr_factor)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    """"sgd" (plain), "momentum" (SGD, momentum 0.9), "adam" (L2 penalty added to the gradient, as
    torch.optim.Adam does) or "adamw" (decoupled weight decay). `params`: parameters or groups."""
    check_positive(lr=lr)
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def make_schedule(name: str, optimizer: torch.optim.Optimizer, steps: int, warmup_frac: float = 0.1):
    """"constant" (the peak rate from step 0), "cosine" (from the peak at step 0, cosine decay to
    0.1 x at the last step) or "warmup_cosine" (linear warm-up over warmup_frac * steps, then the
    same decay): `ptm_lib.train.warmup_schedule`. "cosine" is the control that isolates warm-up."""
    check_positive(steps=steps)
    if name == "constant":
        return warmup_schedule(optimizer, warmup=0)
    if name == "cosine":
        return warmup_schedule(optimizer, warmup=0, total=steps)
    if name == "warmup_cosine":
        if not 0.0 < warmup_frac < 1.0:
            raise ValueError(f"warmup_frac must be in (0, 1), got {warmup_frac}")
        return warmup_schedule(optimizer, warmup=max(1, round(warmup_frac * steps)), total=steps)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


# ------------------------------------------------------------------------------- fine-tuning
def finetune(model: nn.Module, data, *, lr: float, steps: int, optimizer: str = "adamw",
             schedule: str = "warmup_cosine", llrd: float = 1.0, head_lr_factor: float = 1.0,
             weight_decay: float = 0.01, batch_size: int = 32, train_idx=None, seed: int = 0,
             eval_test: bool = True, **fit_kwargs) -> dict:
    """Fine-tune `model` (in place) on `data.train` (rows `train_idx`, default all) and score it.

    Returns {"val", "test" (accuracies; test NaN when eval_test=False), "loss" (training loss per step;
    inf from the step a loss became NaN/inf: the run diverged), "diverged", "seconds",
    "trainable", "total"}.
    """
    ids, mask, y = data.train
    if train_idx is not None:
        idx = torch.as_tensor(train_idx)
        ids, mask, y = ids[idx], mask[idx], y[idx]
    if len(y) == 0:
        raise ValueError("no labelled examples to train on")
    check_positive(steps=steps, batch_size=batch_size)
    loader = DataLoader(TensorDataset(ids, mask, y), batch_size=min(batch_size, len(y)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    opt = make_optimizer(optimizer, param_groups(model, lr, llrd, head_lr_factor), lr, weight_decay)
    sched = make_schedule(schedule, opt, steps)
    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    trainable, total = count_trainable(model)
    t0 = time.perf_counter()
    try:
        history = fit(model, classification_loss, loader, steps=steps, optimizer=opt, scheduler=sched,
                      device="cpu", **fit_kwargs)
        loss, diverged = list(history.loss), False
    except FloatingPointError:                       # NonFiniteLossError: the run diverged
        loss, diverged = [], True
    seconds = time.perf_counter() - t0
    if diverged:
        model.eval()
        loss = [math.inf] * steps
    val = accuracy(model, data.val[:2], data.val[2])
    test = accuracy(model, data.test[:2], data.test[2]) if eval_test else math.nan
    return {"val": float(val), "test": float(test), "loss": loss, "diverged": diverged, "seconds": seconds,
            "trainable": trainable, "total": total}


def choose_lr(make_model, data, grid, **kwargs) -> dict:
    """Run `finetune(make_model(), data, lr=lr, **kwargs)` for every lr in `grid`; keep the run with
    the best validation accuracy (ties: the first) and score only that one on test. `make_model()`
    must build the same starting model each call. Returns that run's dict plus "lr", "val_by_lr"
    ({lr: val accuracy}) and "model" (the chosen fine-tuned model)."""
    grid = list(grid)
    if not grid:
        raise ValueError("the learning-rate grid is empty")
    best, val_by_lr = None, {}
    for lr in grid:
        model = make_model()
        run = finetune(model, data, lr=lr, eval_test=False, **kwargs)
        val_by_lr[lr] = run["val"]
        if best is None or run["val"] > best["val"]:
            best = {**run, "lr": lr, "model": model}
    best["test"] = float(accuracy(best["model"], data.test[:2], data.test[2]))
    return {**best, "val_by_lr": val_by_lr}


# ------------------------------------------------------------------- hand-written LoRA vs peft
def compare_with_peft(model: nn.Module, batch, r: int = 4, alpha: float = 8.0, lr: float = 1e-2,
                      seed: int = 0) -> dict:
    """Check `LoRALinear` against peft on copies of `model` (a classifier; batch = (ids, mask, labels)).

    Both get the same A and B (peft's random A; B set to random values so the low-rank path is
    not zero), then the same AdamW step. Returns the largest absolute differences:
    "output" (logits), "output_at_init" (B = 0: both must equal the pretrained model),
    "step" (A and B after one optimisation step), "merged_weights" (`merge_lora` against peft's
    `merge_and_unload`), "merged_output" (merged model against the unmerged one).
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise TypeError("batch must be (ids, mask, labels)")
    ids, mask, y = batch
    torch.manual_seed(seed)
    theirs = peft_lora(copy.deepcopy(model), r, alpha)
    ours = add_lora(copy.deepcopy(model), r, alpha)
    ours.eval(), theirs.eval(), model.eval()
    out = {}
    with torch.no_grad():
        copy_lora_from_peft(ours, theirs)
        out["output_at_init"] = max((ours(ids, mask) - model(ids, mask)).abs().max().item(),
                                    (theirs(ids, mask) - model(ids, mask)).abs().max().item())
        for name, p in theirs.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.1)
        copy_lora_from_peft(ours, theirs)
        out["output"] = (ours(ids, mask) - theirs(ids, mask)).abs().max().item()
    for m in (ours, theirs):                          # one identical AdamW step on each
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=lr)
        F.cross_entropy(m(ids, mask), y).backward()
        opt.step()
    layers = {n: l for n, l in theirs.base_model.model.named_modules() if hasattr(l, "lora_A")}
    out["step"] = max(max((m.lora_A - layers[n].lora_A["default"].weight).abs().max().item(),
                          (m.lora_B - layers[n].lora_B["default"].weight).abs().max().item())
                      for n, m in ours.named_modules() if isinstance(m, LoRALinear))
    with torch.no_grad():
        before = ours(ids, mask)
        merged_ours, merged_theirs = merge_lora(ours), theirs.merge_and_unload()
        out["merged_weights"] = max((a - b).abs().max().item() for a, b in
                                    zip(merged_ours.state_dict().values(), merged_theirs.state_dict().values()))
        out["merged_output"] = (merged_ours(ids, mask) - before).abs().max().item()
    return out
