"""The course's own small BERT, pretrained by masked-LM on the docstrings of the installed packages.

Chapter 6a compares it with all-MiniLM-L6-v2 on the same real-text task: the same idea
(pretrain on unlabelled text, then probe) at a scale a laptop affords (about 15,000 sentences and
a few CPU-minutes) against one trained by others on about a billion sentence pairs.

    sentences = pretraining_sentences()          # prose of the docstrings, minus every labelled line
    python -m ptm_lib.text.docstring_bert --out data     # re-creates data/docstring_bert.*
    lm, tokenizer, meta = load_docstring_bert()           # sha256-checked

Pretraining text: every sentence of at least `MIN_SENTENCE_WORDS` words in the prose part of the
docstrings (up to the first section such as "Parameters") of the public callables of
`PRETRAIN_NAMESPACES` and of their methods, read with `inspect` from the installed packages. Every
sentence that is also a line of the labelled docstring task (`docstrings.docstring_corpus`), in any
split, is removed, so no test line is ever seen in pretraining. Words: lower-cased runs of letters
and digits (`words`); the vocabulary is every word seen `MIN_COUNT` times, the rest is [UNK].
"""
from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import re
import sys
import time
import warnings
from pathlib import Path

import torch

from .docstrings import HARVEST, ROLE, SENTENCE_END, SIGNATURE, docstring_corpus, own_members
from .pretrain import build_model, pretrain
from .tokenizer import WordTokenizer

PRETRAIN_NAMESPACES = (*HARVEST, "numpy", "scipy.ndimage", "scipy.interpolate", "scipy.sparse", "scipy.spatial",
                       "scipy.cluster", "torch", "torch.nn.functional", "torch.distributions", "torch.utils.data",
                       "sklearn.linear_model", "sklearn.ensemble", "sklearn.preprocessing", "sklearn.decomposition",
                       "sklearn.cluster", "sklearn.svm", "sklearn.neighbors", "sklearn.tree", "matplotlib.axes",
                       "matplotlib.figure", "matplotlib.colors", "matplotlib.patches", "matplotlib.text",
                       "matplotlib.lines")
MIN_SENTENCE_WORDS = 4
MIN_COUNT = 3
MAX_LEN = 40           # tokens, [CLS] included (longer sentences are cut)
RECIPE = dict(steps=2000, batch_size=128, lr=2e-3, warmup=100, mask_p=0.15, seed=0,
              model=dict(d_model=128, n_layers=2, n_heads=4, max_len=MAX_LEN))
NAME = "docstring_bert"
SHIPPED_SHA256 = "0c01e3cf998d27224391482a326825d13d82d97a257298f4a45f32ba305980a0"   # sha256 of data/docstring_bert.safetensors (see data/README.md)

_SECTION = re.compile(r"\n\s*[A-Z][A-Za-z ]+\n\s*[-=~]{3,}\s*\n")     # "Parameters\n----------"


def words(text: str) -> str:
    """The text as the course's word tokenizer reads it: lower-cased runs of letters and digits."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def prose_sentences(doc: str | None) -> list[str]:
    """The sentences of a docstring's prose: before its first section, without signatures, examples
    (``>>>``) and directives, markup reduced to text; sentences of fewer than MIN_SENTENCE_WORDS words dropped."""
    if not isinstance(doc, str) or not doc.strip():
        return []
    doc = "\n" + inspect.cleandoc(doc)
    section = _SECTION.search(doc)
    out = []
    for paragraph in re.split(r"\n\s*\n", doc[:section.start()] if section else doc):
        p = paragraph.strip()
        if not p or p.startswith((".. ", ">>>", "::")) or SIGNATURE.match(p):
            continue
        text = ROLE.sub(lambda m: m.group(1).split(".")[-1], " ".join(p.split()))
        text = text.replace("`", "").replace("*", "")
        out += [s for s in SENTENCE_END.split(text) if len(s.split()) >= MIN_SENTENCE_WORDS]
    return out


@functools.lru_cache(maxsize=1)
def _sentences() -> tuple[str, ...]:
    seen, found = set(), set()

    def visit(obj, methods: bool):
        if id(obj) in seen:
            return
        seen.add(id(obj))
        found.update(prose_sentences(getattr(obj, "__doc__", None)))
        if methods and inspect.isclass(obj):
            for _, fn in own_members(obj):
                visit(fn, False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for namespace in PRETRAIN_NAMESPACES:
            module = importlib.import_module(namespace)
            for name in sorted(dir(module)):
                if name.startswith("_") or name == "test":
                    continue
                try:
                    obj = getattr(module, name)
                except Exception:      # noqa: BLE001  (a lazy attribute that fails to import: not ours)
                    continue
                if callable(obj) and not inspect.ismodule(obj):
                    visit(obj, True)
    labelled = {" ".join(t.casefold().split()) for t in docstring_corpus()[0]}
    return tuple(sorted(s for s in found if " ".join(s.casefold().split()) not in labelled))


def pretraining_sentences() -> list[str]:
    """The unlabelled pretraining text (sorted; the same on every machine with the pinned packages);
    no line of the labelled task is among them."""
    return list(_sentences())


def docstring_tokenizer(sentences: list[str] | None = None) -> WordTokenizer:
    """The word tokenizer of `sentences` (default: the pretraining text): words seen MIN_COUNT times."""
    return WordTokenizer.from_corpus([words(s) for s in (sentences or pretraining_sentences())], min_count=MIN_COUNT)


def encode(texts: list[str], tokenizer: WordTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> (ids (N, T), mask (N, T)), T <= MAX_LEN: `words`, then the tokenizer."""
    return tokenizer.encode_batch([words(t) for t in texts], max_len=MAX_LEN)


def save_recipe(out_dir: str | Path, progress: bool = True) -> dict:
    """Pretrain with RECIPE on `pretraining_sentences()` and save data/docstring_bert.*; return the meta."""
    from ..checkpoint import save_checkpoint
    from ..seeding import seed_everything

    seed_everything(RECIPE["seed"])
    sentences = pretraining_sentences()
    tokenizer = docstring_tokenizer(sentences)
    ids, mask = encode(sentences, tokenizer)
    model = build_model("mlm", len(tokenizer), **RECIPE["model"])
    t0 = time.perf_counter()
    history = pretrain(model, ids, mask, tokenizer, device="cpu", live=False, progress=progress, title=NAME,
                       **{k: RECIPE[k] for k in ("steps", "batch_size", "lr", "warmup", "mask_p", "seed")})
    meta = {"recipe": RECIPE, "sentences": len(sentences), "vocabulary": tokenizer.vocab[tokenizer.n_special:],
            "command": f"python -m ptm_lib.text.docstring_bert --out {out_dir}",
            "pretrain_seconds": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "curve": {"step": history.step[::10], "loss": [round(v, 4) for v in history.loss[::10]]}}
    save_checkpoint(model.cpu(), Path(out_dir) / NAME, meta=meta)
    return meta


def load_docstring_bert(folder: str | Path | None = None):
    """(model, tokenizer, meta) of the shipped checkpoint; the sha256 is checked, and the tokenizer is
    rebuilt from the vocabulary stored with it (so it does not depend on this machine's packages)."""
    from ..checkpoint import load_checkpoint, read_config
    from ..paths import data_dir

    path = Path(folder or data_dir()) / NAME
    if not Path(f"{path}.json").exists():
        raise FileNotFoundError(f"no shipped checkpoint {path}.json; re-create it with "
                                "`python -m ptm_lib.text.docstring_bert`")
    meta = read_config(path)["meta"]
    return load_checkpoint(path, expected_sha256=SHIPPED_SHA256), WordTokenizer(meta["vocabulary"]), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.text.docstring_bert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data", help="folder for the checkpoint (default: data)")
    meta = save_recipe(parser.parse_args(argv).out)
    print(f"{NAME}: {meta['sentences']} sentences, vocabulary {len(meta['vocabulary'])}, {RECIPE['steps']} steps in "
          f"{meta['pretrain_seconds']} s; final loss {meta['curve']['loss'][-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
