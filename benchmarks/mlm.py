"""Masked-LM training-step throughput: ptm_lib's TransformerLM against transformers' BERTs.

Every model is built with the same configuration (vocabulary, length, width, depth, heads, MLP width,
no dropout) and BERT's LM head (dense, GELU, LayerNorm, tied decoder: ``mlm_head="bert"``), and
trained with the same optimizer (the AdamW ``ptm_lib.train.fit`` builds). A step is forward, loss,
backward and the optimizer step on a batch of full-length sequences, 15 % of the tokens masked. Four
ways to train (VARIANTS):

* ``ptm_lib``: the course's default, ``masked_lm_loss`` (LM head at the masked positions only);
* ``ptm_lib_all``: logits at every position, then the loss (equal work with the BERTs);
* ``bert``: ``BertForMaskedLM`` with SDPA attention (post-LN; the same FLOPs), logits everywhere;
* ``megatron``: ``MegatronBertForMaskedLM``, the exact same function as ``ptm_lib`` (pre-LN,
  ``ptm_lib.nets.hf_export``), eager attention, logits everywhere.

The variants are timed interleaved (A B C D A B C D ...) and each figure is a median, so a slow spell
of a shared machine hits them alike; the CPU time of the process is recorded too (less inflated by
other jobs than the wall time). Before timing, ``equal_loss`` checks that ``ptm_lib`` and
``MegatronBertForMaskedLM`` compute the same loss on the same weights, also after one optimizer step.
FLOPs are counted by ``torch.utils.flop_counter`` for one step of each variant (matmuls and attention,
forward and backward) and divided by the measured matmul peak: the model FLOP utilisation (MFU).
"""
from __future__ import annotations

import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ptm_lib.nets.hf_export import to_transformers
from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.paths import data_dir
from ptm_lib.text.objectives import mask_tokens, masked_lm_loss, mlm_loss

N_SPECIAL = 5          # ids 0-4 play [PAD] [UNK] [CLS] [SEP] [MASK]; 4 is [MASK]
VARIANTS = ("ptm_lib", "ptm_lib_all", "bert", "megatron")


def mini_bert_size() -> dict:
    """The shipped mini-BERT's configuration and pretraining batch (data/mini_bert.json)."""
    meta = json.loads((data_dir() / "mini_bert.json").read_text())
    c = meta["config"]
    return {"vocab_size": c["vocab_size"], "max_len": c["max_len"], "d_model": c["d_model"],
            "n_layers": c["n_layers"], "n_heads": c["n_heads"], "batch": meta["meta"]["batch_size"]}


def sizes(quick: bool = False) -> dict[str, dict]:
    """The three benchmarked sizes (or one tiny one with quick=True)."""
    if quick:
        return {"tiny": {"vocab_size": 40, "max_len": 8, "d_model": 16, "n_layers": 1, "n_heads": 2, "batch": 4}}
    return {"mini_bert": mini_bert_size(),
            "d128": {"vocab_size": 8000, "max_len": 128, "d_model": 128, "n_layers": 4, "n_heads": 4, "batch": 32},
            "d256": {"vocab_size": 8000, "max_len": 128, "d_model": 256, "n_layers": 4, "n_heads": 4, "batch": 32}}


def ptm_model(size: dict, seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=size["vocab_size"], max_len=size["max_len"], d_model=size["d_model"],
                            n_layers=size["n_layers"], n_heads=size["n_heads"], mlm_head="bert")
    return TransformerLM(cfg).train()


def bert_model(size: dict, seed: int = 0):
    """transformers' BertForMaskedLM with the same configuration, SDPA attention."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    d = size["d_model"]
    cfg = BertConfig(vocab_size=size["vocab_size"], hidden_size=d, num_hidden_layers=size["n_layers"],
                     num_attention_heads=size["n_heads"], intermediate_size=4 * d, hidden_act="gelu",
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     max_position_embeddings=size["max_len"], type_vocab_size=1, pad_token_id=0,
                     attn_implementation="sdpa")
    return BertForMaskedLM(cfg).train()


def masked_batch(size: dict, seed: int = 0, p: float = 0.15):
    """(inputs, labels, attention_mask), each (B, T): random full-length sentences, BERT-masked."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(N_SPECIAL, size["vocab_size"], (size["batch"], size["max_len"]), generator=g)
    inputs, labels = mask_tokens(ids, size["vocab_size"], p, mask_id=4, special_ids=range(N_SPECIAL), generator=g)
    return inputs, labels, torch.ones_like(ids, dtype=torch.bool)


def optimizer_for(model):
    """The optimizer ``ptm_lib.train.fit`` builds by default."""
    from ptm_lib import train

    params = [p for p in model.parameters() if p.requires_grad]
    make = getattr(train, "default_optimizer", None)
    return make(params, lr=1e-4) if make else torch.optim.AdamW(params, lr=1e-4)


def loss_fn(variant: str):
    """(model, inputs, labels, mask) -> loss, as each variant computes it."""
    if variant == "ptm_lib":
        return lambda m, x, y, mask: masked_lm_loss(m, x, y, mask)
    if variant == "ptm_lib_all":
        return lambda m, x, y, mask: mlm_loss(m(x, mask), y)
    return lambda m, x, y, mask: m(input_ids=x, attention_mask=mask.long(), labels=y).loss


def build(variant: str, size: dict):
    """The model of `variant` (ptm_lib's and MegatronBERT share weights, seed 0)."""
    if variant in ("ptm_lib", "ptm_lib_all"):
        return ptm_model(size)
    if variant == "megatron":
        return to_transformers(ptm_model(size)).train()
    return bert_model(size)


def train_step(variant: str, model, batch):
    """A function of no arguments doing one training step; it returns the loss tensor."""
    compute, opt = loss_fn(variant), optimizer_for(model)

    def step():
        loss = compute(model, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return step


def equal_loss(size: dict, tol: float = 1e-4, device="cpu") -> dict:
    """ptm_lib and MegatronBertForMaskedLM (its exact export) on the same weights and batch: the
    loss before and after one AdamW step, each way of computing ptm_lib's loss. (MegatronBERT's
    token-type embedding, all zeros, is frozen: ptm_lib has none, and AdamW would move it.)"""
    batch = tuple(t.to(device) for t in masked_batch(size, seed=1))
    ours = ptm_model(size).to(device)
    theirs = to_transformers(ours).train().to(device)
    theirs.bert.embeddings.token_type_embeddings.weight.requires_grad_(False)   # ptm_lib has none: keep it 0
    out = {}
    for when in ("before_step", "after_step"):
        with torch.no_grad():
            out[when] = {"ptm_lib": float(loss_fn("ptm_lib")(ours, *batch)),
                         "ptm_lib_all": float(loss_fn("ptm_lib_all")(ours, *batch)),
                         "megatron": float(loss_fn("megatron")(theirs, *batch))}
        if when == "before_step":
            train_step("ptm_lib", ours, batch)()
            train_step("megatron", theirs, batch)()
    worst = max(abs(v[k] - v["megatron"]) for v in out.values() for k in ("ptm_lib", "ptm_lib_all"))
    return {**out, "max_abs_diff": worst, "tolerance": tol, "equal": worst <= tol}


def counted_flops(step) -> int:
    """FLOPs of one call of step() (forward + backward matmuls and attention), by torch's counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def synchronize(device) -> None:
    """Wait for the device's queued work (a GPU runs asynchronously; a CPU needs nothing)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_seconds(steps: dict, rounds: int, repeats: int, warmup: int = 1,
                        device="cpu") -> dict[str, dict[str, float]]:
    """{name: {"wall": median seconds per call, "cpu": median CPU seconds of this process per call}},
    timed in rounds A B C ... A B C ... after `warmup` calls each. On a shared machine the wall time
    grows with the other jobs' load; the CPU time (all threads of this process) much less."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: {"wall": [], "cpu": []} for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(repeats):
                synchronize(device)
                t0, c0 = time.perf_counter(), time.process_time()
                step()
                synchronize(device)
                times[name]["wall"].append(time.perf_counter() - t0)
                times[name]["cpu"].append(time.process_time() - c0)
    return {name: {clock: statistics.median(t) for clock, t in clocks.items()} for name, clocks in times.items()}


def bench_size(size: dict, peak_gflops: float, rounds: int = 5, repeats: int = 2, variants=VARIANTS,
               device="cpu") -> dict:
    """Equal-loss check, FLOP counts and interleaved throughput of every variant at one size."""
    batch = tuple(t.to(device) for t in masked_batch(size))
    tokens = size["batch"] * size["max_len"]
    steps = {v: train_step(v, build(v, size).to(device), batch) for v in variants}
    flops = {v: counted_flops(steps[v]) for v in variants}
    timed = interleaved_seconds(steps, rounds, repeats, device=device)
    rows = {}
    for v in variants:
        wall, cpu = timed[v]["wall"], timed[v]["cpu"]
        rows[v] = {"step_ms": round(1000 * wall, 2), "tokens_per_s": round(tokens / wall, 1),
                   "cpu_ms_per_step": round(1000 * cpu, 2), "gflop_per_step": round(flops[v] / 1e9, 3),
                   "mfu": round(flops[v] / wall / 1e9 / peak_gflops, 3)}
    formula = ptm_model(size).flops_per_token(size["max_len"], training=True)
    result = {"size": size, "device": str(device), "tokens_per_step": tokens,
              "equal_loss": equal_loss(size, device=device), "variants": rows,
              "flops_per_token_check": {"formula": formula, "counted_logits_everywhere": flops["ptm_lib_all"] / tokens,
                                        "formula_over_counted": round(formula * tokens / flops["ptm_lib_all"], 3)}}
    if "bert" in rows:
        result["speedup_vs_bert"] = {
            "equal_work": round(rows["ptm_lib_all"]["tokens_per_s"] / rows["bert"]["tokens_per_s"], 2),
            "default": round(rows["ptm_lib"]["tokens_per_s"] / rows["bert"]["tokens_per_s"], 2),
            "equal_work_cpu_time": round(rows["bert"]["cpu_ms_per_step"] / rows["ptm_lib_all"]["cpu_ms_per_step"], 2),
            "default_cpu_time": round(rows["bert"]["cpu_ms_per_step"] / rows["ptm_lib"]["cpu_ms_per_step"], 2)}
    return result
