"""Where the time of a `make pretrain` step goes: torch.profiler on the mini-BERT recipe.

    python -m benchmarks.profile_pretrain                  # 200 timed steps, then 50 profiled ones
    python -m benchmarks.profile_pretrain --threads 2 --steps 100

Builds the recipe's corpus and model (`ptm_lib.text.pretrain.RECIPES["mini_bert"]`), times
`pretrain` for `--steps` steps, profiles `--profile-steps` more, and prints the operators by CPU
time, grouped into the parts of a step (matrix products, attention, activations, normalisation,
optimizer, data loading), plus how many of the computed positions are padding. The results of one
run are in benchmarks/results/pretrain_profile.md.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from ptm_lib.nets.common import trim_padding
from ptm_lib.seeding import seed_everything
from ptm_lib.text import LanguageConfig, SyntheticLanguage, WordTokenizer
from ptm_lib.text.pretrain import RECIPES, build_model, corpus_tensors, pretrain

PARTS = {   # a step's parts, by the profiler's operator names (self CPU time)
    "matrix products (linear layers, LM head)": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention (SDPA forward and backward)": ("scaled_dot_product", "_flash_attention", "_efficient_attention"),
    "GELU forward and backward": ("aten::gelu",),
    "layer norm forward and backward": ("layer_norm",),
    "optimizer (AdamW)": ("Optimizer.step", "_foreach", "_fused_adamw"),
    "data loading (DataLoader)": ("DataLoader",),
}


def padding_share(mask: torch.Tensor, batch_size: int, batches: int = 200, seed: int = 0) -> float:
    """Share of the positions a random batch computes (cut to its longest sentence) that are padding."""
    g = torch.Generator().manual_seed(seed)
    real = total = 0
    for _ in range(batches):
        batch = mask[torch.randint(len(mask), (batch_size,), generator=g)]
        _, m = trim_padding(batch, batch)
        real, total = real + int(m.sum()), total + m.numel()
    return 1 - real / total


def profile_pretraining(steps: int = 200, profile_steps: int = 50, threads: int = 1, recipe: str = "mini_bert",
                        n_sentences: int | None = None) -> dict:
    """{"ms_per_step", "parts": {part: share of profiled self CPU time}, "padding_share", "table"}."""
    torch.set_num_threads(threads)
    r = RECIPES[recipe]
    seed_everything(r["seed"])
    lang = SyntheticLanguage(LanguageConfig())
    tok = WordTokenizer.from_language(lang)
    ids, mask = corpus_tensors(lang, tok, n_sentences or r["n_sentences"], r["seed"], r["model"]["max_len"])
    model = build_model(r["objective"], len(tok), **r["model"])
    kwargs = dict(batch_size=r["batch_size"], lr=r["lr"], mask_p=r["mask_p"], device="cpu", live=False, progress=False)
    pretrain(model, ids, mask, tok, steps=2, warmup=1, **kwargs)                       # warm-up
    t0 = time.perf_counter()
    pretrain(model, ids, mask, tok, steps=steps, warmup=min(r["warmup"], steps), **kwargs)
    ms = 1000 * (time.perf_counter() - t0) / steps
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pretrain(model, ids, mask, tok, steps=profile_steps, warmup=1, **kwargs)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    parts = {part: sum(e.self_cpu_time_total for e in events if any(k in e.key for k in keys)) / total
             for part, keys in PARTS.items()}
    parts["everything else"] = 1 - sum(parts.values())
    return {"ms_per_step": ms, "threads": threads, "parts": parts,
            "padding_share": padding_share(mask, r["batch_size"]),
            "table": events.table(sort_by="self_cpu_time_total", row_limit=20)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--profile-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    out = profile_pretraining(args.steps, args.profile_steps, args.threads)
    print(f"{out['ms_per_step']:.1f} ms per step ({args.threads} thread(s)); "
          f"{100 * out['padding_share']:.0f} % of the computed positions are padding\n")
    for part, share in out["parts"].items():
        print(f"{100 * share:5.1f} %  {part}")
    print("\n" + out["table"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
