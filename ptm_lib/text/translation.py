"""Translation between the synthetic language and a second one with another word order.

    pair = LanguagePair()                                  # a small source language + its "mirror"
    src, tgt = pair.parallel(100, seed=0)                  # 100 parallel sentences (lists of words)
    mono = pair.monolingual(20_000, seed=1)                # unlabelled text of both languages
    model = build_translator(pair)                         # an EncoderDecoder over both vocabularies
    pretrain(model, *pair.encode(mono), pair.tokenizer, objective="denoise", steps=1500)
    train_translation(model, pair.encode_pairs(src, tgt), steps=300, lr=1e-3)
    hyp = translate(model, pair, src)                      # greedy decoding -> lists of words
    corpus_bleu(hyp, tgt), exact_match_rate(hyp, tgt)

The second language ("L2") says the same thing with
* its own word forms: every word w of the source language ("L1") becomes ``mirror_word(w)``, the
  word spelt backwards with a capital letter (``brelo`` -> ``Olerb``): a deterministic dictionary,
  but the tokenizer sees unrelated tokens, so a model must learn it from parallel sentences;
* another word order: verb last (SOV, like Japanese or Turkish: "the dog a cat sees"), adjectives
  and determiners after their noun, postpositions instead of prepositions.

    L1:  the  big  brelo  sees  a  tusk  near  some  kiva  .
    L2:  Olerb  Gib  Eht  Ksut  A  Avik  Emos  Raen  Sees  .

The source language is a small `SyntheticLanguage` (``PAIR_LANGUAGE``: four topics, about 200 words),
so that a few thousand parallel sentences show most of its words.

Denoising pretraining (span corruption, BART-style) on monolingual text of *both* languages (never a
translation) teaches the encoder-decoder each language's word order and which words go together.
Whether that helps translate is what chapter 06e measures, against the same architecture from scratch.

BLEU (Papineni et al. 2002): corpus-level, n-grams 1..4, uniform weights, brevity penalty
exp(1 - r / c) when the candidates are shorter than the references (c < r); no smoothing, so a
corpus with no matching 4-gram scores 0. Same definition as sacrebleu's default on pre-tokenised text.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..nets.transformer import EncoderDecoder, TransformerConfig
from ..train import check_positive, fit, warmup_schedule
from .language import AUX, END, PREPOSITIONS, LanguageConfig, SyntheticLanguage
from .objectives import IGNORE_INDEX
from .tokenizer import WordTokenizer

__all__ = ["PAIR_LANGUAGE", "mirror_word", "Clause", "LanguagePair", "build_translator", "translation_loss",
           "train_translation", "translate", "corpus_bleu", "exact_match_rate", "run_translation",
           "RECIPE", "CHECKPOINT", "SHIPPED_SHA256", "denoising_eval", "pretrain_pair_denoiser", "load_pair_denoiser"]

PAIR_LANGUAGE = LanguageConfig(n_topics=4, subtopics=2, words_per_subtopic=16, shared_per_topic=4,
                               ambiguous_frac=0.0, pp_prob=0.4, conj_prob=0.0, seed=0)


def mirror_word(word: str) -> str:
    """The L2 form of an L1 word: spelt backwards, capitalised ("brelo" -> "Olerb", "." -> ".")."""
    return word if word == END else word[::-1].capitalize()


@dataclass
class Clause:
    """One L1 clause as a tree: subject/object noun phrases are (det, adj or None, noun)."""

    subject: tuple
    verb: str | None = None          # transitive clause: subject verb object
    obj: tuple | None = None
    aux: tuple | None = None         # or: subject aux adjective
    pp: tuple | None = None          # (preposition, noun phrase)


def _np_l1(np_):
    det, adj, noun = np_
    return [det] + ([adj] if adj else []) + [noun]


def _np_l2(np_):
    det, adj, noun = np_
    return [noun] + ([adj] if adj else []) + [det]


class LanguagePair:
    """The source language (a `SyntheticLanguage`), its mirror, and one tokenizer for both.

    tokenizer: the words of L1 and of L2 (and the special tokens; [CLS] = begin, [SEP] = end).
    """

    def __init__(self, config: LanguageConfig = PAIR_LANGUAGE):
        self.lang = SyntheticLanguage(config)
        self.tokenizer = WordTokenizer(list(self.lang.words) + [mirror_word(w) for w in self.lang.words])

    # ---------------------------------------------------------------- sentences
    def _np(self, rng, sub):
        out: list[str] = []
        self.lang.noun_phrase(rng, sub, "all", out)
        return (out[0], out[1] if len(out) == 3 else None, out[-1])

    def clause(self, rng: random.Random, topic: int | None = None) -> Clause:
        """A random L1 clause about `topic` (uniform if None)."""
        L, c = self.lang, self.lang.config
        t = rng.randrange(L.n_topics) if topic is None else topic
        sub = t * c.subtopics + rng.randrange(c.subtopics)
        cl = Clause(self._np(rng, sub))
        if rng.random() < 0.2:
            cl.aux = (rng.choice(AUX), L.content_word(rng, "adj", sub, "all"))
        else:
            cl.verb, cl.obj = L.content_word(rng, "verb", sub, "all"), self._np(rng, sub)
        if rng.random() < c.pp_prob:
            cl.pp = (rng.choice(PREPOSITIONS), self._np(rng, sub))
        return cl

    @staticmethod
    def render(cl: Clause, language: str) -> list[str]:
        """A clause as words of "L1" (S V O [prep NP] .) or "L2" (S [NP post] O V . with mirrored words)."""
        if language == "L1":
            out = _np_l1(cl.subject) + ([cl.verb] + _np_l1(cl.obj) if cl.verb else list(cl.aux))
            if cl.pp:
                out += [cl.pp[0]] + _np_l1(cl.pp[1])
            return out + [END]
        if language != "L2":
            raise ValueError(f"language must be 'L1' or 'L2', got {language!r}")
        out = _np_l2(cl.subject)
        if cl.pp:
            out += _np_l2(cl.pp[1]) + [cl.pp[0]]
        out += (_np_l2(cl.obj) + [cl.verb]) if cl.verb else [cl.aux[1], cl.aux[0]]
        return [mirror_word(w) for w in out] + [END]

    def parallel(self, n: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
        """`n` parallel sentences: (L1 sentences, their L2 translations), lists of words."""
        rng = random.Random(f"parallel-{seed}")
        clauses = [self.clause(rng) for _ in range(n)]
        return [self.render(c, "L1") for c in clauses], [self.render(c, "L2") for c in clauses]

    def monolingual(self, n: int, seed: int = 0) -> list[list[str]]:
        """`n` unlabelled sentences, half L1 and half L2, *not* translations of each other."""
        rng = random.Random(f"mono-{seed}")
        return [self.render(self.clause(rng), "L1" if i % 2 == 0 else "L2") for i in range(n)]

    # ---------------------------------------------------------------- tensors
    def encode(self, sentences: list[list[str]], max_len: int = 32):
        """Sentences -> (ids (N, T), mask (N, T)), ``[CLS] w1 .. wn``, right-padded."""
        return self.tokenizer.encode_batch([" ".join(s) for s in sentences], max_len=max_len)

    def encode_pairs(self, src: list[list[str]], tgt: list[list[str]], max_len: int = 32) -> dict:
        """Parallel sentences -> the dict `translation_loss` reads (the layout of `span_corrupt`):
        src/src_mask (N, S) = [CLS] x;  tgt_in/tgt_mask (N, L) = [CLS] y;  tgt_out (N, L) = y [SEP]
        (-100 on padding)."""
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source sentences but {len(tgt)} targets")
        tok = self.tokenizer
        src_ids, src_mask = self.encode(src, max_len)
        rows = [[tok.token_id(w) for w in s][:max_len - 1] for s in tgt]
        L = max((len(r) for r in rows), default=0) + 1
        tgt_in = torch.full((len(rows), L), tok.pad_id, dtype=torch.long)
        tgt_out = torch.full((len(rows), L), IGNORE_INDEX, dtype=torch.long)
        for i, r in enumerate(rows):
            tgt_in[i, :len(r) + 1] = torch.tensor([tok.cls_id] + r)
            tgt_out[i, :len(r) + 1] = torch.tensor(r + [tok.sep_id])
        return {"src": src_ids, "src_mask": src_mask, "tgt_in": tgt_in, "tgt_mask": tgt_in != tok.pad_id,
                "tgt_out": tgt_out}


def build_translator(pair: LanguagePair, seed: int = 0, **kwargs) -> EncoderDecoder:
    """A fresh EncoderDecoder over both vocabularies (d_model 64, 2 + 2 layers unless overridden)."""
    config = dict(d_model=64, n_layers=2, n_heads=4, max_len=32) | kwargs
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return EncoderDecoder(TransformerConfig(vocab_size=len(pair.tokenizer), **config))


def translation_loss(model: EncoderDecoder, batch) -> torch.Tensor:
    """Token cross-entropy of the target given the source; batch = the tensors of `encode_pairs`
    in the order (src, src_mask, tgt_in, tgt_mask, tgt_out)."""
    src, src_mask, tgt_in, tgt_mask, tgt_out = batch
    S, L = int(src_mask.sum(1).max()), int(tgt_mask.sum(1).max())
    logits = model(src[:, :S], tgt_in[:, :L], src_mask[:, :S], tgt_mask[:, :L])      # (B, L, V)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt_out[:, :L].reshape(-1),
                                             ignore_index=IGNORE_INDEX)


_KEYS = ("src", "src_mask", "tgt_in", "tgt_mask", "tgt_out")


def train_translation(model: EncoderDecoder, data: dict, *, steps: int, lr: float, batch_size: int = 32,
                      warmup: int = 20, seed: int = 0, **fit_kwargs):
    """Fine-tune every weight on parallel data (`encode_pairs`) with AdamW, warm-up, clipping at 1.0."""
    check_positive(steps=steps, lr=lr, batch_size=batch_size)
    n = len(data["src"])
    if n == 0:
        raise ValueError("no parallel sentences to train on")
    loader = DataLoader(TensorDataset(*(data[k] for k in _KEYS)), batch_size=min(batch_size, n), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    return fit(model, translation_loss, loader, steps=steps, optimizer=optimizer, grad_clip=1.0,
               scheduler=warmup_schedule(optimizer, warmup=min(warmup, steps)), **fit_kwargs)


@torch.no_grad()
def translate(model: EncoderDecoder, pair: LanguagePair, sentences: list[list[str]], max_new_tokens: int = 24,
              batch_size: int = 512) -> list[list[str]]:
    """Greedy translations (lists of words, up to the first end token)."""
    tok, out = pair.tokenizer, []
    for s in range(0, len(sentences), batch_size):
        ids, mask = pair.encode(sentences[s:s + batch_size])
        gen = model.generate(ids, tok.cls_id, max_new_tokens, src_mask=mask, eos_id=tok.sep_id)[:, 1:]
        for row in gen.tolist():
            row = row[:row.index(tok.sep_id)] if tok.sep_id in row else row
            out.append([tok.vocab[i] for i in row])
    return out


def _ngrams(words, n):
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[str]], max_n: int = 4) -> float:
    """Corpus BLEU in 0..100 (one reference per sentence; see the module docstring)."""
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be an int >= 1 (the longest n-gram; BLEU uses 4), got {max_n!r}")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    match, total = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, ref in zip(hypotheses, references):
        c, r = c + len(hyp), r + len(ref)
        for n in range(1, max_n + 1):
            h, g = _ngrams(hyp, n), _ngrams(ref, n)
            match[n - 1] += sum((h & g).values())
            total[n - 1] += sum(h.values())
    if c == 0 or min(match) == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total)) / max_n
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return 100 * bp * math.exp(log_p)


def exact_match_rate(hypotheses: list[list[str]], references: list[list[str]]) -> float:
    """Share (0..1) of sentences translated word for word right."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return sum(h == g for h, g in zip(hypotheses, references)) / max(1, len(references))


def run_translation(arm: str, pretrained: EncoderDecoder | None, pair: LanguagePair, train: tuple, val: tuple,
                    test: tuple, n: int, seed: int, *, grid=(1e-3, 3e-3), steps: int = 150, batch_size: int = 16,
                    return_model: bool = False) -> dict:
    """Fine-tune on the first `n` parallel pairs of `train` (a seed-`seed` permutation, nested across n):
    arm "pretrained" (a copy of `pretrained`) or "scratch" (the same architecture, random weights);
    one run per learning rate in `grid`, the same steps for both; the best validation BLEU is scored
    on test once. train/val/test: (L1 sentences, L2 sentences).
    Returns {"arm", "n", "seed", "lr", "val_bleu", "test": {"bleu", "exact"}} (+ "model" with `return_model`)."""
    import copy

    import numpy as np

    if arm not in ("pretrained", "scratch"):
        raise ValueError(f"arm must be 'pretrained' or 'scratch', got {arm!r}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(train[0]))[:n])
    data = pair.encode_pairs([train[0][i] for i in idx], [train[1][i] for i in idx])
    best = None
    for lr in grid:
        if arm == "pretrained":
            model = copy.deepcopy(pretrained)
        else:
            model = build_translator(pair, seed=1000 + seed, d_model=pretrained.config.d_model,
                                     n_layers=pretrained.config.n_layers, n_heads=pretrained.config.n_heads,
                                     max_len=pretrained.config.max_len)
        train_translation(model, data, steps=steps, lr=lr, seed=seed, batch_size=batch_size)
        v = corpus_bleu(translate(model, pair, val[0]), val[1])
        if best is None or v > best["val_bleu"]:
            best = {"lr": lr, "val_bleu": v, "model": model}
    model = best.pop("model")
    hyp = translate(model, pair, test[0])
    return {"arm": arm, "n": n, "seed": seed, **best,
            "test": {"bleu": corpus_bleu(hyp, test[1]), "exact": exact_match_rate(hyp, test[1])},
            **({"model": model} if return_model else {})}


# ---------------------------------------------------------------------- the shipped checkpoint
RECIPE = dict(n_sentences=40_000, mono_seed=1, steps=1000, batch_size=128, lr=3e-3, warmup=100, mask_p=0.3, seed=0,
              model=dict(d_model=64, n_layers=2, n_heads=4, max_len=32))
CHECKPOINT = "pair_denoiser"
# sha256 of data/pair_denoiser.safetensors (also in data/README.md)
SHIPPED_SHA256 = "a5d55cd79d947b598b70df6659506ae8418a3284ce4af232922cb8369f5a8a53"


@torch.no_grad()
def denoising_eval(model: EncoderDecoder, pair: LanguagePair, n: int = 1000, seed: int = 99) -> float:
    """Held-out denoising loss (nats per token) on `n` monolingual sentences never pretrained on."""
    from .objectives import denoising_loss, span_corrupt

    ids, mask = pair.encode(pair.monolingual(n, seed=seed))
    batch = span_corrupt(ids, mask, pair.tokenizer, RECIPE["mask_p"], generator=torch.Generator().manual_seed(seed))
    was_training = model.training
    model.eval()
    try:
        return float(denoising_loss(model, batch))
    finally:
        model.train(was_training)


def pretrain_pair_denoiser(steps: int = RECIPE["steps"], n_sentences: int = RECIPE["n_sentences"],
                           mask_p: float = RECIPE["mask_p"], seed: int = RECIPE["seed"],
                           pair: LanguagePair | None = None, **fit_kwargs):
    """Denoising (span-corruption) pretraining of a fresh EncoderDecoder on monolingual L1 + L2 text.
    Returns (model, History). `fit_kwargs` go to `fit` (progress=, live=, out=)."""
    from .pretrain import pretrain

    pair = pair or LanguagePair()
    ids, mask = pair.encode(pair.monolingual(n_sentences, seed=RECIPE["mono_seed"]))
    model = build_translator(pair, seed=seed, **RECIPE["model"])
    history = pretrain(model, ids, mask, pair.tokenizer, objective="denoise", steps=steps,
                       batch_size=min(RECIPE["batch_size"], len(ids)), lr=RECIPE["lr"], warmup=RECIPE["warmup"],
                       mask_p=mask_p, seed=seed, **fit_kwargs)
    return model, history


def load_pair_denoiser(folder=None):
    """The shipped denoising-pretrained EncoderDecoder (sha256 checked) and its JSON meta."""
    from pathlib import Path

    from ..checkpoint import load_checkpoint, read_config
    from ..paths import data_dir

    path = Path(folder or data_dir()) / CHECKPOINT
    if not Path(f"{path}.json").exists():
        raise FileNotFoundError(f"no shipped checkpoint {path}.json; "
                                "run `python -m ptm_lib.text.translation --out data`")
    return load_checkpoint(path, expected_sha256=SHIPPED_SHA256), read_config(path)["meta"]


def main(argv=None) -> int:
    import argparse
    import time
    from pathlib import Path

    from ..checkpoint import save_checkpoint
    from ..nets.registry import config_to_dict

    parser = argparse.ArgumentParser(prog="python -m ptm_lib.text.translation",
                                     description="Pretrain and save the shipped L1+L2 denoising encoder-decoder.")
    parser.add_argument("--out", default="data")
    args = parser.parse_args(argv)
    torch.manual_seed(RECIPE["seed"])
    pair = LanguagePair()
    before = denoising_eval(build_translator(pair, seed=RECIPE["seed"], **RECIPE["model"]), pair)
    t0 = time.perf_counter()
    model, history = pretrain_pair_denoiser(pair=pair, progress=True, live=False, device="cpu")
    meta = {"recipe": CHECKPOINT, **{k: v for k, v in RECIPE.items() if k != "model"},
            "language": config_to_dict(pair.lang.config), "vocab_size": len(pair.tokenizer),
            "command": f"python -m ptm_lib.text.translation --out {args.out}",
            "pretrain_seconds": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "heldout_denoising_loss_random_init": round(before, 4),
            "heldout_denoising_loss": round(denoising_eval(model, pair), 4),
            "curve": {"step": history.step[::10], "loss": [round(v, 4) for v in history.loss[::10]]}}
    save_checkpoint(model.cpu(), Path(args.out) / CHECKPOINT, meta=meta)
    print(f"{CHECKPOINT}: {RECIPE['steps']} steps in {meta['pretrain_seconds']} s; held-out denoising loss "
          f"{before:.3f} -> {meta['heldout_denoising_loss']:.3f}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
