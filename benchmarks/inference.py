"""Inference of the shipped mini-BERT: fp32 against int8 dynamic quantisation (chapter 8a's helpers).

The model is `ptm_lib.text.pretrain.load_pretrained("mini_bert")` (logits at every position, the
full LM head); its int8 copy is `ptm_lib.trends.compression.quantize_int8` (int8 Linear and Embedding
weights). Both are timed with `compare_latency` (interleaved rounds, medians) at batch 1 and 32 on
sentences of the course's synthetic language, and their top-1 predictions compared.
"""
from __future__ import annotations

import torch

from ptm_lib.text.pretrain import load_pretrained
from ptm_lib.trends.compression import compare_latency, quantize_int8, serialized_mb


def bench_inference(batches=(1, 32), threads: int | None = 1, rounds: int = 5, repeats: int = 5) -> dict:
    """{"batch_<n>": {"fp32_ms", "int8_ms", "fp32_seq_per_s", "int8_seq_per_s", "speedup",
    "top1_agreement"}, "size_mb": {...}} for the shipped mini-BERT."""
    model, tokenizer, language, _ = load_pretrained("mini_bert")
    model.eval()
    int8 = quantize_int8(model)
    out = {"model": "mini_bert (data/mini_bert.safetensors)", "threads": threads,
           "size_mb": {"fp32": round(serialized_mb(model), 3), "int8": round(serialized_mb(int8), 3)}}
    for n in batches:
        ids, mask = tokenizer.encode_batch(language.corpus(n, seed=0), max_len=model.config.max_len)
        ms = compare_latency({"fp32": lambda: model(ids, mask), "int8": lambda: int8(ids, mask)},
                             rounds=rounds, repeats=repeats, threads=threads)
        with torch.no_grad():
            agree = (model(ids, mask).argmax(-1) == int8(ids, mask).argmax(-1))[mask].float().mean()
        out[f"batch_{n}"] = {"seq_len": ids.shape[1], "fp32_ms": round(ms["fp32"], 3), "int8_ms": round(ms["int8"], 3),
                             "fp32_seq_per_s": round(1000 * n / ms["fp32"], 1),
                             "int8_seq_per_s": round(1000 * n / ms["int8"], 1),
                             "speedup": round(ms["fp32"] / ms["int8"], 2), "top1_agreement": round(float(agree), 4)}
    return out
