"""What training costs, measured: FLOPs, activation memory, accumulation, checkpointing, precision,
and a small scaling study.

    count_flops(fn)                  FLOPs PyTorch's own counter sees while fn() runs
    saved_activation_bytes(fn)       bytes autograd keeps for the backward pass while fn() runs
    accumulated_gradients(...)       gradients of one batch computed as k micro-batches
    checkpoint_blocks(model)         activation checkpointing of every transformer block
    matmul_gflops(dtype)             measured matmul speed of this machine in a dtype
    train_mlm(...)                   one masked-LM run, held-out loss vs tokens (a scaling study)
    fit_power_law(x, loss)           L(x) = c + a * x ** -alpha, fitted in log space
    training_memory_gb(...)          memory of the model states per GPU: DDP vs ZeRO/FSDP sharding
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from ..nets.common import trim_padding
from ..text.objectives import mask_tokens, masked_lm_loss
from ..text.pretrain import build_model
from ..train import check_positive, warmup_schedule


def count_flops(fn) -> int:
    """FLOPs of the matrix products (and convolutions) that `fn()` runs, as torch's FlopCounterMode
    counts them: 2 per multiply-add, forward and backward alike."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def saved_activation_bytes(fn, model: nn.Module | None = None) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass while `fn()` runs: the
    activation memory of a training step. The weights of `model`, which the graph saves too but
    which exist anyway, are not counted."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()} if model is not None else set()
    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return int(sum(storages.values()))


def accumulated_gradients(model: nn.Module, loss_fn, batch: tuple[torch.Tensor, ...], micro_batches: int,
                          weight=None) -> list[torch.Tensor]:
    """The gradients of `loss_fn(model, batch)` computed as `micro_batches` equal slices of the batch,
    accumulated in .grad, each slice's loss scaled by weight(slice) / weight(batch). Returns copies.

    loss_fn averages over some unit: examples (the default weight, len(slice[0])) or, for a
    masked-LM loss, masked tokens (weight = number of labels != -100). With the wrong weight the
    accumulated gradient is not the big batch's gradient.
    """
    n = len(batch[0])
    if not isinstance(micro_batches, int) or micro_batches < 1 or n % micro_batches:
        raise ValueError(f"micro_batches must be a whole number >= 1 that divides the batch of {n}, got {micro_batches!r}")
    weight = weight or (lambda part: len(part[0]))
    total = float(weight(batch))
    model.zero_grad(set_to_none=True)
    size = n // micro_batches
    for start in range(0, n, size):
        part = tuple(t[start:start + size] for t in batch)
        (loss_fn(model, part) * (float(weight(part)) / total)).backward()
    return [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]


class CheckpointedBlock(nn.Module):
    """A block whose activations are not kept: the backward pass recomputes its forward."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, *args):
        if not torch.is_grad_enabled():
            return self.block(*args)
        return checkpoint(self.block, *args, use_reentrant=False)


def checkpoint_blocks(model: nn.Module) -> nn.Module:
    """Activation checkpointing: wrap every block of a course transformer in place (same weights,
    same outputs and gradients; less memory, one more forward pass per block). Returns the model."""
    blocks = getattr(getattr(model, "body", None), "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"checkpoint_blocks needs a course transformer (model.body.blocks), got {type(model).__name__}")
    for i, block in enumerate(blocks):
        if not isinstance(block, CheckpointedBlock):
            blocks[i] = CheckpointedBlock(block)
    return model


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 512, repeats: int = 5,
                  device: str | torch.device = "cpu") -> float:
    """Measured GFLOP/s (2 n^3 FLOPs per product) of an (n, n) @ (n, n) product in `dtype` on
    `device`, median of `repeats` after one warm-up; on CUDA it waits for the GPU before each clock."""
    check_positive(n=n, repeats=repeats)
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a, b = torch.randn(n, n).to(device, dtype), torch.randn(n, n).to(device, dtype)
    a @ b   # warm-up
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / float(np.median(times)) / 1e9


# --- a small scaling study -------------------------------------------------------------------

@dataclass
class MLMRun:
    """One masked-LM run: its size and its held-out loss after each evaluation."""
    d_model: int
    n_params: int            # non-embedding parameters (Kaplan et al.'s N)
    tokens: list[int]        # tokens seen at each evaluation
    val_loss: list[float]    # held-out masked-LM loss (nats) at each evaluation
    seconds: float


def heldout_loss(model: nn.Module, batches) -> float:
    """Mean masked-LM loss over fixed masked batches [(inputs, labels, mask), ...] (no gradients)."""
    model.eval()
    with torch.no_grad():
        total, count = 0.0, 0
        for inputs, labels, mask in batches:
            n = int((labels != -100).sum())
            total += float(masked_lm_loss(model, inputs, labels, mask)) * n
            count += n
    model.train()
    return total / count


def fixed_masks(ids: torch.Tensor, mask: torch.Tensor, tokenizer, *, batch_size: int = 256, seed: int = 0,
                mask_p: float = 0.15) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Held-out sentences masked once, so every model is evaluated on the same masked tokens."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(ids), batch_size):
        i, m = trim_padding(ids[start:start + batch_size], mask[start:start + batch_size])
        inputs, labels = mask_tokens(i, tokenizer, mask_p, generator=generator)
        out.append((inputs, labels, m))
    return out


def train_mlm(ids: torch.Tensor, mask: torch.Tensor, tokenizer, heldout, *, d_model: int, n_layers: int = 2,
              n_heads: int = 4, d_ff: int | None = None, steps: int = 300, batch_size: int = 64, lr: float = 3e-3,
              eval_every: int = 50, seed: int = 0, on_eval=None) -> MLMRun:
    """Pretrain a fresh encoder of width `d_model` by masked-LM on (ids, mask) (N, T); return its
    held-out loss every `eval_every` steps. AdamW with warm-up and cosine decay, as `pretrain` does.

    on_eval(step, loss) is called after each evaluation; an exception it raises (e.g. Optuna's
    TrialPruned) stops the run there."""
    check_positive(d_model=d_model, steps=steps, batch_size=batch_size, lr=lr, eval_every=eval_every)
    if d_model % n_heads:
        raise ValueError(f"d_model {d_model} must be a multiple of n_heads {n_heads}")
    torch.manual_seed(seed)
    model = build_model("mlm", len(tokenizer), d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_ff=d_ff,
                        max_len=ids.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = warmup_schedule(optimizer, warmup=min(30, steps), total=steps)
    order = torch.Generator().manual_seed(seed)
    masker = torch.Generator().manual_seed(seed + 1)
    tokens, losses, seen = [], [], 0
    t0 = time.perf_counter()
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(ids), (batch_size,), generator=order)
        i, m = trim_padding(ids[idx], mask[idx])
        inputs, labels = mask_tokens(i, tokenizer, 0.15, generator=masker)
        loss = masked_lm_loss(model, inputs, labels, m)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        seen += int(m.sum())
        if step % eval_every == 0 or step == steps:
            tokens.append(seen)
            losses.append(heldout_loss(model, heldout))
            if on_eval is not None:
                on_eval(step, losses[-1])
    return MLMRun(d_model, model.num_params(non_embedding=True), tokens, losses, time.perf_counter() - t0)


def fit_power_law(x, loss) -> dict:
    """Fit loss = c + a * x ** -alpha (c: the loss no size reaches, the data's own entropy).

    Least squares on log(loss) over a grid of c below min(loss), then a straight line in log-log for
    each c. Returns {"a", "alpha", "c", "r2"} (r2 of log loss) and `predict`, a function of x."""
    x, loss = np.asarray(x, dtype=float), np.asarray(loss, dtype=float)
    if x.shape != loss.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need at least 3 matching (x, loss) points, got shapes {x.shape} and {loss.shape}")
    if (x <= 0).any() or (loss <= 0).any():
        raise ValueError("x and loss must be > 0")
    best = None
    for c in np.linspace(0.0, 0.999 * loss.min(), 400):
        slope, intercept = np.polyfit(np.log(x), np.log(loss - c), 1)
        pred = c + np.exp(intercept) * x ** slope
        sse = float(((np.log(pred) - np.log(loss)) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, c, math.exp(intercept), -slope)
    sse, c, a, alpha = best
    sst = float(((np.log(loss) - np.log(loss).mean()) ** 2).sum())
    return {"a": a, "alpha": alpha, "c": float(c), "r2": 1.0 - sse / sst if sst > 0 else 1.0,
            "predict": lambda z: c + a * np.asarray(z, dtype=float) ** -alpha}


def training_memory_gb(n_params: float, world_size: int = 1, zero_stage: int = 0) -> float:
    """Memory per GPU for the model states of mixed-precision Adam training (Rajbhandari et al.
    2020, ZeRO): 2 bytes of fp16 weights + 2 of fp16 gradients + 12 of fp32 optimizer state
    (master weights, momentum, variance) per parameter, i.e. 16 bytes, activations not included.

    zero_stage 0: every rank holds everything (DDP); 1: the optimizer state is sharded across the
    `world_size` ranks; 2: and the gradients; 3: and the weights (PyTorch's FSDP "full shard")."""
    check_positive(n_params=n_params, world_size=world_size)
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be 0 (DDP), 1, 2 or 3 (FSDP full shard), got {zero_stage!r}")
    weights, grads, optim = 2.0, 2.0, 12.0
    if zero_stage >= 1:
        optim /= world_size
    if zero_stage >= 2:
        grads /= world_size
    if zero_stage >= 3:
        weights /= world_size
    return n_params * (weights + grads + optim) / 1e9
