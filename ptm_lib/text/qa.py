"""Extractive question answering (SQuAD-style) on short documents of the synthetic language.

    data = make_qa_data(lang, n=1000, seed=0)          # QAData: questions, documents, gold spans
    enc = encode_qa(data, tokenizer)                    # ids (N, T), mask (N, T), start (N,), end (N,)
    model = SpanQA.from_lm(lm)                          # a pretrained encoder + start/end heads
    train_qa(model, enc.subset(idx), steps=150, lr=1e-3)
    squad_scores(predict_spans(model, enc), data)       # {"em": ..., "f1": ...}

The task
--------
A *document* is ``n_sentences`` short sentences, each about a different topic
(``det [adj] noun verb det [adj] noun .``). The *question* is one word of one of those topics that
does not occur in the document ("which thing here goes with *brelo*?"). The *answer* is the subject
of the sentence about the question's topic, without its determiner: ``[adj] noun``, one or two words.

The subjects are easy to find (after ``.``); which one is right depends only on what the words
*mean*: the question word and the answer's sentence share a topic, and nothing else links them (no
shared word, random sentence order). A model must know the topics of a thousand Zipf-distributed
words, which masked-LM pretraining learns from unlabelled text and a few labelled pairs cannot
show. Heuristics that ignore meaning (`heuristic_spans`: the first sentence's subject, a random
subject) get about ``1 / n_sentences`` exact matches.

Model (`SpanQA`): BERT's SQuAD head (Devlin et al. 2019, section 4.2) scores where answers start
and end with one linear layer on the encoder's hidden state ``h_i`` (B, T, D); alone, it never
learned to use the question here (measured: one answer in three, with up to 1,024 pairs and 600
steps, pretrained or not). So a bilinear match with the question word's hidden state is added, as
in DrQA (Chen et al. 2017): score_k(i) = w_k . h_i + (W_k h_i) . h_q / sqrt(D). Positions outside
the document are masked out; the loss is the cross-entropy of the gold start plus that of the gold
end, halved. The prediction is the span (s, e) with s <= e < s + max_answer_len maximising
start[s] + end[e].

Metrics (SQuAD v1.1's official script, Rajpurkar et al. 2016): both texts are normalised (lower
case, punctuation and the articles a/an/the removed, whitespace collapsed); *exact match* is 1 when
the normalised texts are equal; *token F1* is the F1 of the bag of tokens shared by prediction and
gold answer.
"""
from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..nets.transformer import TransformerLM, TransformerBody, init_weights
from ..train import check_positive, fit, warmup_schedule
from .language import AUX, END, SyntheticLanguage
from .tokenizer import WordTokenizer

__all__ = ["QAData", "EncodedQA", "make_qa_data", "encode_qa", "SpanQA", "qa_loss", "best_spans",
           "predict_spans", "normalize_answer", "exact_match", "token_f1", "squad_scores",
           "heuristic_spans", "train_qa", "qa_steps", "run_qa", "QUESTION_OFFSET"]

QUESTION_OFFSET = 3          # tokens before the document: [CLS] question [SEP]


@dataclass
class QAData:
    """Questions, documents (lists of words) and gold spans (word indices in the document, end
    inclusive); `topics` (N, n_sentences): the topic of every sentence; `answer_sentence` (N,)."""

    questions: list[str]
    documents: list[list[str]]
    starts: np.ndarray
    ends: np.ndarray
    subjects: list[list[tuple[int, int]]]     # (start, end) of every sentence's subject
    topics: np.ndarray
    answer_sentence: np.ndarray

    def __len__(self) -> int:
        return len(self.questions)

    def answer(self, i: int) -> str:
        return " ".join(self.documents[i][self.starts[i]: self.ends[i] + 1])

    def text(self, i: int) -> str:
        """One example as a learner reads it."""
        return f"Q: {self.questions[i]}   D: {' '.join(self.documents[i])}   A: {self.answer(i)}"


def _sentence(lang: SyntheticLanguage, rng: random.Random, subtopic: int) -> tuple[list[str], tuple[int, int]]:
    """det [adj] noun (verb det [adj] noun | aux adj) .  -> (words, (subject start, subject end))."""
    out: list[str] = []
    lang.noun_phrase(rng, subtopic, "all", out)
    subject = (1, len(out) - 1)                       # without the determiner
    if rng.random() < 0.2:
        out += [rng.choice(AUX), lang.content_word(rng, "adj", subtopic, "all")]
    else:
        out.append(lang.content_word(rng, "verb", subtopic, "all"))
        lang.noun_phrase(rng, subtopic, "all", out)
    out.append(END)
    return out, subject


def make_qa_data(lang: SyntheticLanguage, n: int, seed: int = 0, n_sentences: int = 3,
                 min_topical: int = 2) -> QAData:
    """`n` (question, document, answer) triples; see the module docstring.

    Every sentence has at least `min_topical` unambiguous words of its own topic (so every question
    can be answered by meaning), the question word is an unambiguous word of the answer sentence's
    topic, drawn by frequency, and never occurs in the document.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 2 <= n_sentences <= lang.n_topics:
        raise ValueError(f"n_sentences must be in [2, {lang.n_topics}] (one topic each), got {n_sentences}")
    rng = random.Random(f"qa-{lang.config.seed}-{seed}")
    S = lang.config.subtopics
    out = {k: [] for k in ("q", "doc", "start", "end", "subjects", "topics", "ans")}
    while len(out["q"]) < n:
        topics = rng.sample(range(lang.n_topics), n_sentences)
        doc, subjects = [], []
        for t in topics:
            while True:
                words, (s, e) = _sentence(lang, rng, t * S + rng.randrange(S))
                if sum(lang.topic_of.get(w) == t for w in words) >= min_topical:
                    break
            subjects.append((len(doc) + s, len(doc) + e))
            doc += words
        j = rng.randrange(n_sentences)
        for _ in range(100):
            q = lang.topic_word(rng, topics[j] * S + rng.randrange(S), rng.choice(("noun", "verb", "adj")))
            if lang.topic_of.get(q) == topics[j] and q not in doc:
                break
        else:
            continue
        for key, v in zip(out, (q, doc, subjects[j][0], subjects[j][1], subjects, topics, j)):
            out[key].append(v)
    return QAData(out["q"], out["doc"], np.array(out["start"], dtype=np.int64), np.array(out["end"], dtype=np.int64),
                  out["subjects"], np.array(out["topics"], dtype=np.int64).reshape(n, n_sentences),
                  np.array(out["ans"], dtype=np.int64))


@dataclass
class EncodedQA:
    """Token tensors: ids/mask (N, T) = [CLS] question [SEP] document [PAD]...; context (N, T) bool,
    True on document tokens (where an answer may start or end); start/end (N,) token positions."""

    ids: torch.Tensor
    mask: torch.Tensor
    context: torch.Tensor
    start: torch.Tensor
    end: torch.Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx) -> "EncodedQA":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return EncodedQA(*(t[idx] for t in (self.ids, self.mask, self.context, self.start, self.end)))


def encode_qa(data: QAData, tokenizer: WordTokenizer, max_len: int = 32) -> EncodedQA:
    """Tokenise `data` as ``[CLS] q [SEP] d1 .. dn``; refuses an example longer than `max_len`."""
    rows = []
    for q, doc in zip(data.questions, data.documents):
        row = [tokenizer.cls_id, tokenizer.token_id(q), tokenizer.sep_id] + [tokenizer.token_id(w) for w in doc]
        if len(row) > max_len:
            raise ValueError(f"an example has {len(row)} tokens > max_len={max_len} (use shorter documents)")
        rows.append(row)
    T = max((len(r) for r in rows), default=1)
    ids = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    mask = ids != tokenizer.pad_id
    context = mask.clone()
    context[:, :QUESTION_OFFSET] = False
    start = torch.as_tensor(data.starts + QUESTION_OFFSET)
    end = torch.as_tensor(data.ends + QUESTION_OFFSET)
    return EncodedQA(ids, mask, context, start, end)


class SpanQA(nn.Module):
    """A transformer encoder with start/end heads that read the question.

    forward(ids (B, T), mask (B, T), context (B, T)) -> logits (B, T, 2): [..., 0] start scores,
    [..., 1] end scores, -inf outside `context`.

    Score of position i, for k in (start, end):  w_k . h_i  +  (W_k h_i) . h_q / sqrt(D),
    where h (B, T, D) are the encoder's hidden states and h_q = h[:, 1] the question word's. The first
    term is BERT's SQuAD head (Devlin et al. 2019): *where* answers start and end; the second, a
    bilinear match with the question as in DrQA (Chen et al. 2017): *which* candidate fits the question.
    The body has `TransformerLM`'s parameter names, so `from_lm` copies a pretrained encoder.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.body = TransformerBody(config, causal=False, n_layers=config.n_layers)
        self.head = nn.Linear(config.d_model, 2)
        self.match = nn.Linear(config.d_model, 2 * config.d_model, bias=False)
        init_weights(self)

    @classmethod
    def from_lm(cls, lm: TransformerLM) -> "SpanQA":
        """Pretrained body of `lm` (copied, `lm` is not changed) + new, randomly initialised heads."""
        model = cls(lm.config)
        model.body.load_state_dict(lm.body.state_dict())
        return model

    def forward(self, ids, mask=None, context=None):
        self.body.check_inputs(ids, mask)
        if ids.shape[1] < 2:
            raise ValueError(f"a QA input is [CLS] question [SEP] document: at least 2 tokens, got {ids.shape[1]}")
        if context is not None and (not isinstance(context, torch.Tensor) or context.dtype != torch.bool
                                    or context.shape != ids.shape):
            raise ValueError(f"context must be a bool tensor of the ids' shape {tuple(ids.shape)} (True on document "
                             f"words), got {getattr(context, 'dtype', type(context).__name__)} "
                             f"{tuple(getattr(context, 'shape', ()))}")
        h = self.body(ids, mask)                                        # (B, T, D)
        B, T, D = h.shape
        match = self.match(h).view(B, T, 2, D) @ h[:, 1, None, :, None]  # (B, T, 2, 1): (W_k h_i) . h_q
        logits = self.head(h) + match.squeeze(-1) / D ** 0.5            # (B, T, 2)
        if context is not None:
            logits = logits.masked_fill(~context[..., None], float("-inf"))
        return logits


def qa_loss(model: SpanQA, batch) -> torch.Tensor:
    """(CE(start) + CE(end)) / 2 on a batch (ids, mask, context, start, end)."""
    ids, mask, context, start, end = batch
    T = int(mask.sum(1).max())
    logits = model(ids[:, :T], mask[:, :T], context[:, :T])
    return 0.5 * (F.cross_entropy(logits[..., 0], start) + F.cross_entropy(logits[..., 1], end))


def best_spans(logits: torch.Tensor, max_answer_len: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, T, 2) -> (start (N,), end (N,)): argmax of start[s] + end[e] over s <= e < s + max_answer_len."""
    if (not isinstance(logits, torch.Tensor) or logits.dim() != 3 or logits.shape[-1] != 2
            or not logits.is_floating_point() or 0 in logits.shape):
        raise ValueError(f"logits must be a float (N, T, 2) tensor of start and end scores, N and T >= 1, got "
                         f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}")
    if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, int) or max_answer_len < 1:
        raise ValueError(f"max_answer_len must be an int >= 1 (words), got {max_answer_len!r}")
    start, end = logits[..., 0], logits[..., 1]
    T = logits.shape[1]
    score = start[:, :, None] + end[:, None, :]                         # (N, T_start, T_end)
    i = torch.arange(T)
    allowed = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_answer_len)
    score = score.masked_fill(~allowed, float("-inf"))
    flat = score.reshape(len(score), -1).argmax(-1)
    return flat // T, flat % T


@torch.no_grad()
def predict_spans(model: SpanQA, enc: EncodedQA, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Predicted (start, end) word indices *in the document* (N,), (N,); eval mode, restored after."""
    was_training = model.training
    model.eval()
    starts, ends = [], []
    try:
        for s in range(0, len(enc), batch_size):
            b = enc.subset(range(s, min(s + batch_size, len(enc))))
            T = int(b.mask.sum(1).max())
            st, en = best_spans(model(b.ids[:, :T], b.mask[:, :T], b.context[:, :T]))
            starts.append(st - QUESTION_OFFSET)
            ends.append(en - QUESTION_OFFSET)
    finally:
        model.train(was_training)
    return torch.cat(starts).numpy(), torch.cat(ends).numpy()


# ------------------------------------------------------------------ SQuAD metrics
def normalize_answer(text: str) -> str:
    """SQuAD v1.1: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the shared tokens (a bag: a word counts as often as it occurs in both)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def squad_scores(spans: tuple[np.ndarray, np.ndarray], data: QAData) -> dict[str, float]:
    """Mean exact match and token F1 (in 0..1) of predicted document spans (start (N,), end (N,))."""
    em, f1 = [], []
    for i, (s, e) in enumerate(zip(*spans)):
        pred = " ".join(data.documents[i][max(int(s), 0): int(e) + 1])
        em.append(exact_match(pred, data.answer(i)))
        f1.append(token_f1(pred, data.answer(i)))
    return {"em": float(np.mean(em)) if em else float("nan"), "f1": float(np.mean(f1)) if f1 else float("nan")}


def heuristic_spans(data: QAData, rule: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Answers that ignore meaning: rule "first" (the first sentence's subject) or "random" (a random
    sentence's subject). Both find *a* subject; only meaning tells which."""
    rng = np.random.default_rng(seed)
    if rule not in ("first", "random"):
        raise ValueError(f"rule must be 'first' or 'random', got {rule!r}")
    picks = [subs[0] if rule == "first" else subs[rng.integers(len(subs))] for subs in data.subjects]
    return np.array([p[0] for p in picks]), np.array([p[1] for p in picks])


# ------------------------------------------------------------------ training
def train_qa(model: SpanQA, enc: EncodedQA, *, steps: int, lr: float, batch_size: int = 32, warmup: int = 10,
             seed: int = 0, **fit_kwargs):
    """Fine-tune every weight of `model` on `enc` with AdamW (weight decay 0.01), linear warm-up,
    gradient clipping at 1.0. Returns the History."""
    check_positive(steps=steps, lr=lr, batch_size=batch_size)
    if len(enc) == 0:
        raise ValueError("no labelled QA pairs to train on")
    loader = DataLoader(TensorDataset(enc.ids, enc.mask, enc.context, enc.start, enc.end),
                        batch_size=min(batch_size, len(enc)), shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    return fit(model, qa_loss, loader, steps=steps, optimizer=optimizer, grad_clip=1.0,
               scheduler=warmup_schedule(optimizer, warmup=min(warmup, steps)), **fit_kwargs)


def qa_steps(n: int, batch_size: int = 32, epochs: int = 3, min_steps: int = 60) -> int:
    """Fine-tuning steps for `n` pairs, chapter 3's rule (`finetune.RECIPES`): 3 epochs, at least 60."""
    return max(min_steps, epochs * -(-n // batch_size))


def run_qa(arm: str, lm: TransformerLM, train: EncodedQA, val: tuple[EncodedQA, QAData],
           test: tuple[EncodedQA, QAData], n: int, seed: int, *, grid=(1e-3, 3e-3), steps: int | None = None,
           return_model: bool = False) -> dict:
    """One point of the label-efficiency curve: the first `n` pairs of a seed-`seed` permutation of
    `train` (nested across n), arm "pretrained" (SpanQA.from_lm(lm)) or "scratch" (the same
    architecture, random weights); one run per learning rate in `grid`, the same `steps` for both
    arms (default `qa_steps(n)`); the run with the best validation F1 is scored on test once.
    Returns {"arm", "n", "seed", "lr", "val": {"em", "f1"}, "test": {"em", "f1"}} (+ "model" with `return_model`)."""
    if arm not in ("pretrained", "scratch"):
        raise ValueError(f"arm must be 'pretrained' or 'scratch', got {arm!r}")
    if not 1 <= n <= len(train):
        raise ValueError(f"n must be in [1, {len(train)}], got {n}")
    idx = np.sort(np.random.default_rng(seed).permutation(len(train))[:n])
    steps = steps or qa_steps(n)
    best = None
    for lr in grid:
        torch.manual_seed(1000 + seed)           # the same head (and scratch body) for every lr
        model = SpanQA.from_lm(lm) if arm == "pretrained" else SpanQA(lm.config)
        train_qa(model, train.subset(idx), steps=steps, lr=lr, seed=seed)
        v = squad_scores(predict_spans(model, val[0]), val[1])
        if best is None or v["f1"] > best["val"]["f1"]:
            best = {"lr": lr, "val": v, "model": model}
    model = best.pop("model")
    return {"arm": arm, "n": n, "seed": seed, **best, "test": squad_scores(predict_spans(model, test[0]), test[1]),
            **({"model": model} if return_model else {})}
