"""Masked-LM pretraining of the DNA `ConvLM` on unlabelled promoter-like sequences.

The objective and the loop are the course's own (`ptm_lib.text.pretrain.pretrain`: BERT masking of
15 % of the bases, AdamW, warm-up and cosine decay): the same code pretrains the text transformer.

    python -m ptm_lib.bio.pretrain --out data     # re-creates data/dna_convlm.* (about 2 CPU-minutes)

`load_dna_lm()` loads the shipped checkpoint, its sha256 checked against `SHIPPED_SHA256`.
`box_accuracy` measures what pretraining learned: how often a masked base is predicted right
inside a planted box and outside (in random DNA the best guess is right about 30 % of the time).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..text.pretrain import pretrain
from .convlm import ConvLM, ConvLMConfig
from .dna import PromoterConfig, dna_tokenizer, promoter_corpus

RECIPE = dict(n_sequences=20_000, corpus_seed=1, steps=1500, batch_size=128, lr=3e-3, warmup=100, mask_p=0.15,
              seed=0, model=dict(d_model=64, n_layers=4, kernel=5))
NAME = "dna_convlm"
SHIPPED_SHA256 = "a4825c46c63705164053db77ece6e58d9d923a8c785308c93fad9578481201be"   # sha256 of data/dna_convlm.safetensors (see data/README.md)


def corpus_tensors(n: int, seed: int, cfg: PromoterConfig | None = None):
    """`n` unlabelled sequences as (ids (n, L) int64, mask (n, L) bool, boxes (n, L) bool), one token per base."""
    texts, boxes = promoter_corpus(n, seed, cfg, with_boxes=True)
    ids, mask = dna_tokenizer().encode_batch(texts, add_cls=False)
    return ids, mask, torch.from_numpy(boxes)


def pretrain_dna_lm(steps: int = RECIPE["steps"], n_sequences: int = RECIPE["n_sequences"], mask_p: float = 0.15,
                    seed: int = 0, **fit_kwargs):
    """A fresh `ConvLM` pretrained by masked-LM on `n_sequences` unlabelled sequences; returns (model, History)."""
    tok = dna_tokenizer()
    ids, mask, _ = corpus_tensors(n_sequences, RECIPE["corpus_seed"])
    torch.manual_seed(seed)
    model = ConvLM(ConvLMConfig(vocab_size=len(tok), pad_id=tok.pad_id, **RECIPE["model"]))
    history = pretrain(model, ids, mask, tok, objective="mlm", steps=steps,
                       batch_size=min(RECIPE["batch_size"], len(ids)), lr=RECIPE["lr"],
                       warmup=min(RECIPE["warmup"], steps), mask_p=mask_p, seed=seed, **fit_kwargs)
    return model, history


@torch.no_grad()
def box_accuracy(model: ConvLM, ids: torch.Tensor, mask: torch.Tensor, boxes: torch.Tensor, seed: int = 0,
                 n_draws: int = 4) -> dict[str, float]:
    """Masked-base prediction accuracy in and out of the planted boxes.

    Masks 15 % of the real bases (`n_draws` times, with the [MASK] token only), predicts them, and
    returns {"box": accuracy on box bases, "background": accuracy elsewhere}. ids/mask/boxes (N, L).
    """
    tok = dna_tokenizer()
    g = torch.Generator().manual_seed(seed)
    right = {"box": 0, "background": 0}
    total = {"box": 0, "background": 0}
    model.eval()
    for _ in range(n_draws):
        chosen = (torch.rand(ids.shape, generator=g) < 0.15) & mask
        inputs = ids.masked_fill(chosen, tok.mask_id)
        hit = model(inputs, mask).argmax(-1) == ids
        for name, where in (("box", chosen & boxes), ("background", chosen & ~boxes)):
            right[name] += int(hit[where].sum())
            total[name] += int(where.sum())
    return {k: right[k] / max(total[k], 1) for k in right}


def save_recipe(out_dir: str | Path, progress: bool = True) -> dict:
    """Pretrain with RECIPE and save data/dna_convlm.{safetensors,json}; return the JSON meta."""
    from ..checkpoint import save_checkpoint

    t0 = time.perf_counter()
    model, history = pretrain_dna_lm(steps=RECIPE["steps"], mask_p=RECIPE["mask_p"], seed=RECIPE["seed"],
                                     device="cpu", live=False, progress=progress, title=NAME)
    held_out = corpus_tensors(2000, seed=99)
    meta = {"recipe": dict(RECIPE), "promoter_config": PromoterConfig().__dict__,
            "command": f"python -m ptm_lib.bio.pretrain --out {out_dir}",
            "pretrain_seconds": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "box_accuracy": box_accuracy(model, *held_out),
            "curve": {"step": history.step[::10], "loss": [round(v, 4) for v in history.loss[::10]]}}
    save_checkpoint(model.cpu(), Path(out_dir) / NAME, meta=meta)
    return meta


def load_dna_lm(folder: str | Path | None = None) -> tuple[ConvLM, dict]:
    """The shipped pretrained DNA language model and its meta (recipe, curve, diagnostics), sha256-checked."""
    from ..checkpoint import load_checkpoint, read_config
    from ..paths import data_dir

    path = Path(folder or data_dir()) / NAME
    if not Path(f"{path}.json").exists():
        raise FileNotFoundError(f"no shipped checkpoint {path}.json; re-create it with `python -m ptm_lib.bio.pretrain`")
    return load_checkpoint(path, expected_sha256=SHIPPED_SHA256), read_config(path)["meta"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.bio.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data", help="folder for the checkpoint (default: data)")
    args = parser.parse_args(argv)
    meta = save_recipe(args.out)
    print(f"{NAME}: {RECIPE['steps']} steps in {meta['pretrain_seconds']} s; final loss {meta['curve']['loss'][-1]:.3f}; "
          f"masked-base accuracy in boxes {meta['box_accuracy']['box']:.3f}, elsewhere {meta['box_accuracy']['background']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
