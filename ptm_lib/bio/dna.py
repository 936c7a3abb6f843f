"""Synthetic bacterial promoters: DNA whose label is set by two motifs *and their spacing*.

A sigma-70 promoter of *E. coli* has two short boxes upstream of the gene: the "-35 box"
(consensus TTGACA) and the "-10 box" (Pribnow box, consensus TATAAT), separated by a spacer of
17 +- 1 bases; a spacer of 15 or 19 already weakens the promoter sharply (Hawley & McClure 1983,
Nucleic Acids Res. 11:2237; Harley & Reynolds 1987, Nucleic Acids Res. 15:2343). Real boxes are
rarely perfect: each position matches the consensus with a probability, as in a position weight
matrix. This module generates such sequences, with four classes:

    promoter    a -35 box, spacer of 16-18 bases, a -10 box
    misspaced   both boxes, but a spacer of 8-12 or 22-26 bases (both present, not functional)
    -10 only    a -10 box and no -35 box
    background  neither box (random DNA; an occasional chance near-match)

Every sequence has its own GC content (0.3-0.7), and the boxes sit anywhere they fit. Counting
k-mers (k <= 6) shows which boxes are present but not how far apart they are, so a bag of k-mers
cannot tell "promoter" from "misspaced": the task needs the arrangement, as real regulatory
grammar does.

Sequences are strings of space-separated bases ("T T G A C A ..."), so the course's word tokenizer,
masked-LM pretraining and fine-tuning (`ptm_lib.text`) work on them unchanged: one token per base.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..text.tasks import LabelledTask
from ..text.tokenizer import WordTokenizer

BASES = "ACGT"
BOX_35, BOX_10 = "TTGACA", "TATAAT"
CLASSES = ["promoter", "misspaced", "-10 only", "background"]
SPACERS = {"promoter": (16, 17, 18), "misspaced": (8, 9, 10, 11, 12, 22, 23, 24, 25, 26)}


@dataclass
class PromoterConfig:
    """length: bases per sequence.  match: probability that a box position has its consensus base
    (else one of the other three).  gc: range of the per-sequence GC content."""

    length: int = 50
    match: float = 0.95
    gc: tuple[float, float] = (0.3, 0.7)

    def __post_init__(self):
        if self.length < 2 * len(BOX_35) + max(SPACERS["misspaced"]) + 2:
            raise ValueError(f"length must be >= {2 * len(BOX_35) + max(SPACERS['misspaced']) + 2} bases to fit "
                             f"both boxes and the longest spacer, got {self.length}")
        if not 0.25 <= self.match <= 1:
            raise ValueError(f"match must be in [0.25, 1] (0.25 = no motif at all), got {self.match}")
        lo, hi = self.gc
        if not 0 < lo <= hi < 1:
            raise ValueError(f"gc must be (low, high) with 0 < low <= high < 1, got {self.gc}")


def _background(rng: np.random.Generator, cfg: PromoterConfig) -> np.ndarray:
    """(length,) base indices into BASES, i.i.d. given a GC content drawn for this sequence."""
    gc = rng.uniform(*cfg.gc)
    return rng.choice(4, size=cfg.length, p=[(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])


def _box(consensus: str, rng: np.random.Generator, match: float) -> np.ndarray:
    """One noisy copy of a box: each position keeps its consensus base with probability `match`."""
    bases = np.array([BASES.index(b) for b in consensus])
    swap = rng.random(len(bases)) > match
    bases[swap] = (bases[swap] + rng.integers(1, 4, size=int(swap.sum()))) % 4   # one of the other three
    return bases


def promoter_sequence(label: int, rng: np.random.Generator, cfg: PromoterConfig | None = None,
                      with_boxes: bool = False):
    """One sequence of class `label` (an index into CLASSES) as space-separated bases; with
    `with_boxes`, also a (length,) bool array that is True on the bases of a planted box."""
    cfg = cfg or PromoterConfig()
    if label not in range(len(CLASSES)):
        raise ValueError(f"label must be in 0..{len(CLASSES) - 1} ({CLASSES}), got {label!r}")
    seq, boxes = _background(rng, cfg), np.zeros(cfg.length, dtype=bool)
    name, w = CLASSES[label], len(BOX_35)
    if name in SPACERS:
        spacer = int(rng.choice(SPACERS[name]))
        start = int(rng.integers(0, cfg.length - (2 * w + spacer) + 1))
        seq[start:start + w] = _box(BOX_35, rng, cfg.match)
        seq[start + w + spacer:start + 2 * w + spacer] = _box(BOX_10, rng, cfg.match)
        boxes[start:start + w] = boxes[start + w + spacer:start + 2 * w + spacer] = True
    elif name == "-10 only":
        start = int(rng.integers(0, cfg.length - w + 1))
        seq[start:start + w] = _box(BOX_10, rng, cfg.match)
        boxes[start:start + w] = True
    text = " ".join(BASES[b] for b in seq)
    return (text, boxes) if with_boxes else text


def promoter_corpus(n: int, seed: int, cfg: PromoterConfig | None = None, with_boxes: bool = False):
    """`n` unlabelled sequences, the four classes equally likely (labels drawn and thrown away).
    With `with_boxes`: (texts, boxes (n, length) bool), True where a box was planted."""
    if n < 1:
        raise ValueError(f"n must be >= 1 sequences, got {n}")
    rng = np.random.default_rng(seed)
    pairs = [promoter_sequence(int(rng.integers(len(CLASSES))), rng, cfg, with_boxes=True) for _ in range(n)]
    texts = [t for t, _ in pairs]
    return (texts, np.stack([b for _, b in pairs])) if with_boxes else texts


def make_promoter_task(pool_per_class: int = 200, val_per_class: int = 25, test_per_class: int = 100,
                       label_noise: float = 0.05, seed: int = 0, cfg: PromoterConfig | None = None) -> LabelledTask:
    """A `LabelledTask` of promoter classes: labelled pool, validation and test sequences.

    `label_noise` of the pool and validation labels are replaced by a random other class (wrong labels
    happen in real annotation); test labels are true. The `unseen` split is empty. The unlabelled
    corpus (`promoter_corpus`) uses other seeds, so no test sequence is ever seen in pretraining.
    """
    if not 0 <= label_noise < 1:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise}")
    rng = np.random.default_rng(10_000 + seed)
    k = len(CLASSES)

    def split(per_class: int, noisy: bool):
        labels = np.repeat(np.arange(k), per_class)
        texts = [promoter_sequence(int(c), rng, cfg) for c in labels]
        if noisy:
            flip = rng.random(len(labels)) < label_noise
            labels = labels.copy()
            labels[flip] = (labels[flip] + rng.integers(1, k, size=int(flip.sum()))) % k
        return texts, labels.astype(np.int64)

    train, val, test = split(pool_per_class, True), split(val_per_class, True), split(test_per_class, False)
    return LabelledTask("promoters", list(CLASSES), *train, *val, *test, [], np.zeros(0, dtype=np.int64),
                        info={"label_noise": label_noise, "boxes": (BOX_35, BOX_10), "spacers": SPACERS})


def dna_tokenizer() -> WordTokenizer:
    """One token per base (A, C, G, T) plus the tokenizer's special tokens ([PAD], [CLS], [MASK], ...)."""
    return WordTokenizer(list(BASES))


def kmer_counts(texts: list[str], k: int = 3) -> np.ndarray:
    """(N, 4**k) counts of every k-mer in each sequence: the classic bag-of-k-mers features."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 8:
        raise ValueError(f"k must be an int in 1..8, got {k!r}")
    out = np.zeros((len(texts), 4 ** k), dtype=np.float32)
    for i, text in enumerate(texts):
        bases = text.split()
        unknown = sorted(set(bases) - set(BASES))
        if unknown:
            raise ValueError(f"sequence {i} has tokens {unknown[:5]} that are not bases {list(BASES)}; "
                             "sequences are space-separated bases, e.g. 'A C G T'")
        idx = np.array([BASES.index(b) for b in bases], dtype=np.int64)
        if len(idx) < k:
            continue
        codes = np.zeros(len(idx) - k + 1, dtype=np.int64)
        for j in range(k):
            codes = codes * 4 + idx[j:len(idx) - k + 1 + j]
        np.add.at(out[i], codes, 1)
    return out


def encode_dna_task(task: LabelledTask):
    """`task` as a `ptm_lib.text.finetune.EncodedTask`: one token per base, no [CLS] (as the DNA
    language model was pretrained), so the course's fine-tuning strategies run on it unchanged."""
    import torch

    from ..text.finetune import SPLITS, EncodedTask

    tok = dna_tokenizer()

    def encode(texts, labels):
        if not texts:
            return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.bool), torch.zeros(0, dtype=torch.long)
        ids, mask = tok.encode_batch(texts, add_cls=False)
        return ids, mask, torch.as_tensor(labels, dtype=torch.long)

    return EncodedTask(*(encode(*task.split(name)) for name in SPLITS), task)
