"""Compression of pre-trained models, measured: int8 quantisation, magnitude pruning, distillation.

    from ptm_lib.trends import compression as C
    q = C.quantize_int8(model)                   # dynamic int8 Linear (+ weight-only int8 Embedding)
    C.serialized_mb(model), C.serialized_mb(q)   # MB of the saved state dict (torch.save)
    C.latency_ms(lambda: model(x))               # median wall time of repeated runs, 1 thread
    C.prune_global(mlp, 0.9)                     # global unstructured L1 pruning of every Linear weight
    C.distillation_loss(s_logits, t_logits, y, T=4.0, alpha=0.9)   # Hinton et al. 2015

What is hand-written here is only what the lesson teaches (the distillation loss, a few lines);
quantisation and pruning use PyTorch's own API (``torch.ao.quantization.quantize_dynamic``,
``torch.nn.utils.prune``), as a practitioner would.

Sizes are measured by serialising: the bytes ``torch.save(model.state_dict())`` writes, which is
what a quantised model (whose int8 weights live in packed parameters that safetensors cannot hold)
occupies on disk. Latencies are medians of repeated runs after warm-up, with ``torch.set_num_threads``
fixed (restored afterwards), because a single timing on a shared machine means little.
"""
from __future__ import annotations

import copy
import io
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

__all__ = ["serialized_mb", "sparse_serialized_mb", "quantize_int8", "latency_ms", "compare_latency", "prune_global",
           "remove_pruning", "weight_sparsity", "linear_weights", "FeatureMLP", "BagOfTokens",
           "distillation_loss", "train_model"]


def _check_module(model, name: str = "model") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")


def serialized_mb(model: nn.Module) -> float:
    """MB (10^6 bytes) that ``torch.save(model.state_dict())`` writes: the model's size on disk,
    quantised packed weights included. A pruned model stored this way is as large as the dense one:
    its zeros are stored like any other number."""
    _check_module(model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1e6


def sparse_serialized_mb(model: nn.Module) -> float:
    """MB of the state dict with each 2-D weight stored in CSR when that is smaller, dense otherwise.
    CSR (what scipy.sparse does) keeps the non-zero values (float32), their column indices and the
    row pointers (int32): 4 + 4 bytes per kept value, so it wins only for layers with less than
    half of their weights left."""
    _check_module(model)
    state = {}
    for k, v in model.state_dict().items():
        if v.dim() == 2 and v.is_floating_point() and 2 * int((v != 0).sum()) < v.numel():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")         # "Sparse CSR tensor support is in beta state"
                csr = v.to_sparse_csr()
            state[k] = {"values": csr.values().clone(), "col": csr.col_indices().to(torch.int32),
                        "row_ptr": csr.crow_indices().to(torch.int32), "shape": tuple(v.shape)}
        else:
            state[k] = v
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell() / 1e6


def quantize_int8(model: nn.Module, embeddings: bool = True, per_channel: bool = True) -> nn.Module:
    """A dynamically quantised *copy* of `model` (the original is untouched), for CPU inference.

    Every ``nn.Linear`` gets int8 weights and quantises its input on the fly at each call (the
    int8 matmul runs on fbgemm/x86 kernels): with `per_channel`, one scale per output row of the
    weight (``per_channel_dynamic_qconfig``), else one scale for the whole matrix
    (``default_dynamic_qconfig``). With `embeddings`, every ``nn.Embedding`` also stores int8
    weights with one scale and offset per row (``float_qparams_weight_only_qconfig``) and returns
    float rows. Uses ``torch.ao.quantization.quantize_dynamic`` (eager mode; PyTorch deprecates it
    in favour of torchao, which this course does not install: its deprecation warning is silenced).
    """
    _check_module(model)
    if isinstance(model, (nn.Linear, nn.Embedding)):        # quantize_dynamic swaps children, never the root
        return quantize_int8(nn.Sequential(model), embeddings, per_channel)[0]
    from torch.ao.quantization import (default_dynamic_qconfig, float_qparams_weight_only_qconfig,
                                       per_channel_dynamic_qconfig, quantize_dynamic)

    spec = {nn.Linear: per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig}
    if embeddings:
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), spec, dtype=torch.qint8)


def latency_ms(fn, *, warmup: int = 3, repeats: int = 20, threads: int | None = 1,
               device: str | torch.device = "cpu") -> float:
    """Median wall time of ``fn()`` in milliseconds over `repeats` calls, after `warmup` calls, run
    without gradients with ``torch.set_num_threads(threads)`` (None: leave it), restored afterwards.
    On a CUDA `device` each clock waits for the GPU (kernels run asynchronously)."""
    if not callable(fn):
        raise TypeError(f"fn must be callable (a function of no arguments), got {type(fn).__name__}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(repeats):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 1000 * statistics.median(times)


def compare_latency(fns: dict, *, rounds: int = 5, repeats: int = 5, warmup: int = 2,
                    threads: int | None = 1) -> dict[str, float]:
    """{name: median ms} for several functions of no arguments, measured in interleaved rounds
    (A, B, A, B, ...): a slow spell of a shared machine then hits every function alike. Each
    function's value is the median over all its timed calls (`rounds` * `repeats`)."""
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("fns must be a non-empty dict {name: function of no arguments}")
    if rounds < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1, repeats >= 1, warmup >= 0, got {rounds}, {repeats}, {warmup}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    times = {name: [] for name in fns}
    try:
        with torch.inference_mode():
            for fn in fns.values():
                for _ in range(warmup):
                    fn()
            for _ in range(rounds):
                for name, fn in fns.items():
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        fn()
                        times[name].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def linear_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") for every ``nn.Linear`` of `model`: what magnitude pruning prunes."""
    _check_module(model)
    return [(m, "weight") for m in model.modules() if isinstance(m, nn.Linear)]


def prune_global(model: nn.Module, sparsity: float) -> nn.Module:
    """Global unstructured L1 pruning (Han et al. 2015), in place: the `sparsity` fraction of all
    Linear weights with the smallest |w|, pooled over layers, are set to zero by a mask
    (``torch.nn.utils.prune.global_unstructured``). The mask stays while you fine-tune (pruned
    weights stay zero); `remove_pruning` makes it permanent. Returns `model`.

    `sparsity` is the total fraction, also when `model` is already pruned (iterative pruning:
    50 %, then 80 %, ...): its zeros have the smallest magnitude and are pruned again first."""
    _check_module(model)
    if not isinstance(sparsity, (int, float)) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be a fraction in [0, 1), got {sparsity!r}")
    params = linear_weights(model)
    if not params:
        raise ValueError("model has no nn.Linear layers to prune")
    remove_pruning(model)       # pruned again (iterative pruning): the zeros are the smallest |w|, so they stay pruned
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    return model


def remove_pruning(model: nn.Module) -> nn.Module:
    """Make pruning permanent, in place: each masked weight becomes a plain (dense) tensor with zeros."""
    _check_module(model)
    for module, name in linear_weights(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)
    return model


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of the Linear weights that are exactly zero."""
    weights = [getattr(m, n) for m, n in linear_weights(model)]
    if not weights:
        raise ValueError("model has no nn.Linear layers")
    return float(sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights))


class FeatureMLP(nn.Module):
    """A classifier on fixed features: (B, d_in) -> (B, n_classes) logits, two hidden ReLU layers of
    width `hidden`. Over-parameterised on purpose: what magnitude pruning is for."""

    def __init__(self, d_in: int, n_classes: int, hidden: int = 1024):
        super().__init__()
        if min(d_in, n_classes, hidden) < 1:
            raise ValueError(f"d_in, n_classes and hidden must be >= 1, got {d_in}, {n_classes}, {hidden}")
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BagOfTokens(nn.Module):
    """A small student: the mean of learned token embeddings, then a linear layer.

    forward(ids (B, T) int64, 0 = padding) -> (B, n_classes) logits. ``nn.EmbeddingBag`` with
    ``padding_idx=0`` leaves the padding out of the mean. No attention, no word order: about
    vocab * dim parameters and one table look-up per token.
    """

    def __init__(self, vocab_size: int, n_classes: int, dim: int = 64):
        super().__init__()
        if min(vocab_size, n_classes, dim) < 1:
            raise ValueError(f"vocab_size, n_classes and dim must be >= 1, got {vocab_size}, {n_classes}, {dim}")
        self.bag = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be a (B, T) int64 tensor, got {tuple(ids.shape)} {ids.dtype}")
        return self.head(self.bag(ids))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                      *, T: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Knowledge distillation (Hinton, Vinyals & Dean 2015), mean over the batch:

        alpha * T^2 * KL(softmax(t / T) || softmax(s / T))  +  (1 - alpha) * CE(s, y)

    student_logits, teacher_logits: (B, C); labels: (B,) int64, with -1 for an example without a
    label (then only the soft term counts for it), or None (no labels: alpha is taken as 1).
    T^2 keeps the soft term's gradients the same size as T changes (they shrink as 1/T^2).
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"student and teacher logits must both be (B, C), got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    if not T > 0 or not 0 <= alpha <= 1:
        raise ValueError(f"need T > 0 and 0 <= alpha <= 1, got T={T}, alpha={alpha}")
    log_p_student = F.log_softmax(student_logits / T, dim=-1)
    p_teacher = F.softmax(teacher_logits.detach() / T, dim=-1)
    soft = F.kl_div(log_p_student, p_teacher, reduction="batchmean") * T ** 2
    if labels is None or alpha == 1:
        return soft
    labelled = labels >= 0
    hard = (F.cross_entropy(student_logits[labelled], labels[labelled], reduction="sum") / len(labels)
            if labelled.any() else student_logits.sum() * 0)
    return alpha * soft + (1 - alpha) * hard


def train_model(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, teacher_logits=None,
                T: float = 4.0, alpha: float = 0.9, steps: int = 300, lr: float = 3e-3, batch_size: int = 64,
                weight_decay: float = 0.0, seed: int = 0) -> nn.Module:
    """Train `model` in place with the course's `fit` (AdamW, shuffled mini-batches) and return it.

    inputs: (N, ...) tensor; labels: (N,) int64 (-1 = no label). Without `teacher_logits`: cross-
    entropy on the labelled rows (hard labels). With `teacher_logits` (N, C): `distillation_loss`.
    """
    from ..train import fit

    _check_module(model)
    if len(inputs) != len(labels) or (teacher_logits is not None and len(teacher_logits) != len(labels)):
        raise ValueError("inputs, labels (and teacher_logits) must have the same length")
    if teacher_logits is None and not (labels >= 0).any():
        raise ValueError("no labelled example (all labels are -1) and no teacher: nothing to learn from")
    tensors = [inputs, labels] + ([torch.as_tensor(teacher_logits, dtype=torch.float32)]
                                  if teacher_logits is not None else [])
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors), batch_size=batch_size,
                                         shuffle=True, generator=generator)

    def loss_fn(m, batch):
        if teacher_logits is None:
            x, y = batch
            keep = y >= 0
            logits = m(x)
            return F.cross_entropy(logits[keep], y[keep]) if keep.any() else logits.sum() * 0
        x, y, t = batch
        return distillation_loss(m(x), t, y, T=T, alpha=alpha)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fit(model, loss_fn, loader, steps=steps, lr=lr, weight_decay=weight_decay, progress=False, live=False)
    return model
