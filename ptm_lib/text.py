"""A small synthetic language with real, learnable structure.

Why synthetic?  The course has to run offline on two CPU cores in minutes, yet
it must *show* the central claim of pre-training: unlabelled text carries
knowledge that a handful of labels cannot.  A synthetic language lets us control
exactly where that knowledge lives.

The language
------------
* ``n_topics`` topics (``sport``, ``food``, ...).  Each topic owns its own
  nouns, verbs and adjectives -- invented words such as ``brelo`` or ``tusk`` --
  so the spelling of a word says nothing about its topic.  Within a topic the
  words follow a Zipf law (a few are frequent, most are rare).
* A pool of *generic* English content words (``thing``, ``make``, ``big``) and
  function words (``the``, ``near``, ``and``) shared by all topics.
* A small grammar: ``NP VP [PP] [conj NP VP] .`` with ``NP = det [adj] noun``.
  Every content slot is filled by a word of the sentence's topic with
  probability ``topic_word_prob`` (else a generic word); a topic slot takes a
  word of a *different* topic with probability ``stray_prob`` (noise).

So a sentence typically contains three to four words of its topic.  A model
that masks one of them can predict it from the others -- that is the
signal masked-language-model pre-training can exploit: words of the same topic
end up with similar representations.

Labelled tasks and the held-out vocabulary
------------------------------------------
A fraction ``heldout_frac`` of every topic's words is *held out from labelling*:
the labelled training pool never contains them (think of a labelled data set
collected from one source that uses only part of the vocabulary).  The test
sets use them:

* ``natural`` test -- sentences from the natural distribution (all words),
* ``unseen`` test -- sentences whose topic words are all held-out words; a
  model trained only on the labels has never seen any of their topic words.

Only a model that learned *from unlabelled text* which words behave alike can
classify the ``unseen`` sentences.

Two labelled tasks:

* ``make_topic_task``: the label is the sentence topic (bag of words suffices).
* ``make_agent_task``: "the <noun of topic a> <generic verb> the <noun of
  topic b> ."; the label is the topic of the *subject* (``a``).  Both topics
  occur in the sentence, so a bag-of-words model is capped near 50 %: the task
  needs word order.

Everything is deterministic for a given seed.  ``WordTokenizer`` is a plain
word-level tokenizer with the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "SPECIAL_TOKENS",
    "PAD", "UNK", "CLS", "SEP", "MASK",
    "LanguageConfig",
    "SyntheticLanguage",
    "WordTokenizer",
    "LabelledTask",
    "make_topic_task",
    "make_agent_task",
    "budget_indices",
    "trim_padding",
    "embedding_topic_purity",
]

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)

TOPIC_NAMES = (
    "sport", "food", "music", "space", "ocean", "law", "health", "weather",
    "farm", "war", "school", "money",
)

DETERMINERS = ("the", "a", "every", "some", "this", "that")
PREPOSITIONS = ("in", "on", "near", "with", "under", "from", "behind")
CONJUNCTIONS = ("and", "but", "while", "because")
AUX = ("is", "was", "seems")
END = "."
GENERIC_NOUNS = (
    "thing", "person", "place", "group", "part", "day", "way", "man", "woman",
    "child", "friend", "room", "side", "end", "home", "city", "world", "year",
    "time", "idea", "story", "house", "road", "team", "family", "kind",
    "moment", "number", "word", "area",
)
GENERIC_VERBS = (
    "sees", "makes", "takes", "finds", "gives", "keeps", "likes", "wants",
    "shows", "meets", "holds", "brings", "leaves", "needs", "knows",
)
GENERIC_ADJS = (
    "big", "small", "new", "old", "good", "bad", "long", "short", "young",
    "early", "late", "great", "little", "other", "same",
)

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class LanguageConfig:
    """Parameters of the synthetic language (all counts are per topic)."""

    n_topics: int = 6
    nouns_per_topic: int = 40
    verbs_per_topic: int = 20
    adjs_per_topic: int = 20
    topic_word_prob: float = 0.8   # P(content slot gets a topic word)
    stray_prob: float = 0.03       # P(topic slot uses another topic's word)
    zipf_a: float = 1.0            # Zipf exponent of word frequencies in a topic
    heldout_frac: float = 0.5      # fraction of topic words never labelled
    adj_prob: float = 0.5          # P(noun phrase has an adjective)
    pp_prob: float = 0.5           # P(sentence has a prepositional phrase)
    conj_prob: float = 0.3         # P(sentence has a second clause)
    seed: int = 0                  # seed for the *lexicon* (words, ranks, held-out split)

    def validate(self) -> None:
        if not 1 <= self.n_topics <= len(TOPIC_NAMES):
            raise ValueError(f"n_topics must be in [1, {len(TOPIC_NAMES)}], got {self.n_topics}")
        for name in ("nouns_per_topic", "verbs_per_topic", "adjs_per_topic"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        for name in ("topic_word_prob", "stray_prob", "heldout_frac", "adj_prob",
                     "pp_prob", "conj_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if not 0.0 <= self.heldout_frac < 1.0:
            raise ValueError("heldout_frac must be < 1 (labelled data needs some words)")
        if self.zipf_a < 0:
            raise ValueError(f"zipf_a must be >= 0, got {self.zipf_a}")


class _WordPool:
    """Words of one (topic, part of speech) with Zipf cumulative weights."""

    __slots__ = ("words", "cum", "visible", "vis_cum", "heldout", "held_cum")

    def __init__(self, words: list[str], zipf_a: float, heldout: set[str]):
        self.words = words
        w = [1.0 / (r + 1) ** zipf_a for r in range(len(words))]
        self.cum = list(np.cumsum(w))
        self.visible = [x for x in words if x not in heldout]
        self.vis_cum = list(np.cumsum([wi for x, wi in zip(words, w) if x not in heldout]))
        self.heldout = [x for x in words if x in heldout]
        self.held_cum = list(np.cumsum([wi for x, wi in zip(words, w) if x in heldout]))

    def sample(self, rng: random.Random, which: str) -> str:
        if which == "all":
            return rng.choices(self.words, cum_weights=self.cum)[0]
        if which == "visible":
            return rng.choices(self.visible, cum_weights=self.vis_cum)[0]
        return rng.choices(self.heldout, cum_weights=self.held_cum)[0]


class SyntheticLanguage:
    """Seeded generator of sentences of the synthetic language.

    >>> lang = SyntheticLanguage(LanguageConfig(seed=0))
    >>> sents = lang.corpus(1000, seed=1)          # list[str], unlabelled
    >>> lang.topic_of["brelo"]                     # doctest: +SKIP
    3

    Attributes
    ----------
    topics : list[str]              topic names
    topic_words : list[list[str]]   topic words per topic (nouns, verbs, adjs)
    topic_of : dict[str, int]       topic index of every topic word
    pos_of : dict[str, str]         "noun" | "verb" | "adj" | "func" for every word
    heldout : set[str]              topic words never used in labelled training pools
    words : list[str]               the full vocabulary (no special tokens), sorted
    """

    def __init__(self, config: LanguageConfig | None = None):
        self.config = config = config or LanguageConfig()
        config.validate()
        rng = random.Random(f"lexicon-{config.seed}")
        held_rng = random.Random(f"heldout-{config.seed}")   # own stream: words do not depend on heldout_frac
        reserved = set(DETERMINERS + PREPOSITIONS + CONJUNCTIONS + AUX + GENERIC_NOUNS
                       + GENERIC_VERBS + GENERIC_ADJS)
        used: set[str] = set()

        def new_word() -> str:
            while True:
                n_syl = rng.choice((2, 2, 3))
                w = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(n_syl))
                if rng.random() < 0.3:
                    w += rng.choice(_CONSONANTS)
                if w not in used and w not in reserved:
                    used.add(w)
                    return w

        self.topics = list(TOPIC_NAMES[: config.n_topics])
        self.topic_words: list[list[str]] = []
        self.topic_of: dict[str, int] = {}
        self.pos_of: dict[str, str] = {}
        self.heldout: set[str] = set()
        self._pools: list[dict[str, _WordPool]] = []
        sizes = {"noun": config.nouns_per_topic, "verb": config.verbs_per_topic,
                 "adj": config.adjs_per_topic}
        for t in range(config.n_topics):
            pools = {}
            all_t = []
            for pos, n in sizes.items():
                words = [new_word() for _ in range(n)]     # order = frequency rank
                n_held = int(round(config.heldout_frac * n))
                if config.heldout_frac > 0:
                    n_held = max(n_held, 1)
                n_held = min(n_held, n - 1)
                # held-out words are spread over the frequency ranks
                held = set(held_rng.sample(words, n_held))
                self.heldout |= held
                pools[pos] = _WordPool(words, config.zipf_a, held)
                for w in words:
                    self.topic_of[w] = t
                    self.pos_of[w] = pos
                all_t += words
            self._pools.append(pools)
            self.topic_words.append(all_t)
        self._generic = {
            "noun": _WordPool(list(GENERIC_NOUNS), 0.0, set()),
            "verb": _WordPool(list(GENERIC_VERBS), 0.0, set()),
            "adj": _WordPool(list(GENERIC_ADJS), 0.0, set()),
        }
        for pos, ws in (("noun", GENERIC_NOUNS), ("verb", GENERIC_VERBS), ("adj", GENERIC_ADJS)):
            for w in ws:
                self.pos_of[w] = pos
        for w in DETERMINERS + PREPOSITIONS + CONJUNCTIONS + AUX + (END,):
            self.pos_of[w] = "func"
        self.words = sorted(self.pos_of)

    # ------------------------------------------------------------------ sampling
    @property
    def n_topics(self) -> int:
        return self.config.n_topics

    def _content(self, rng: random.Random, pos: str, topic: int, which: str,
                 force_topic: bool = False) -> str:
        c = self.config
        if force_topic or rng.random() < c.topic_word_prob:
            t = topic
            if c.stray_prob > 0 and self.n_topics > 1 and rng.random() < c.stray_prob:
                t = rng.randrange(self.n_topics - 1)
                t += t >= topic
                # stray words are noise from another topic; the labelled pool still
                # never shows a held-out word
                which = "visible" if which == "visible" else "all"
            return self._pools[t][pos].sample(rng, which)
        return self._generic[pos].sample(rng, "all")

    def _np(self, rng, topic, which, out):
        out.append(rng.choice(DETERMINERS))
        if rng.random() < self.config.adj_prob:
            out.append(self._content(rng, "adj", topic, which))
        out.append(self._content(rng, "noun", topic, which))

    def _clause(self, rng, topic, which, out):
        self._np(rng, topic, which, out)
        if rng.random() < 0.2:
            out.append(rng.choice(AUX))
            out.append(self._content(rng, "adj", topic, which))
        else:
            out.append(self._content(rng, "verb", topic, which))
            self._np(rng, topic, which, out)
        if rng.random() < self.config.pp_prob:
            out.append(rng.choice(PREPOSITIONS))
            self._np(rng, topic, which, out)

    def sentence(self, rng: random.Random, topic: int, which: str = "all",
                 min_topic_words: int = 0) -> list[str]:
        """One sentence (list of words) about ``topic``.

        which: "all" (natural), "visible" (labelled pool: no held-out words) or
        "heldout" (only held-out topic words, except stray noise).
        min_topic_words: resample until the sentence has at least this many
        words of ``topic``.
        """
        if not 0 <= topic < self.n_topics:
            raise ValueError(f"topic must be in [0, {self.n_topics}), got {topic}")
        if which not in ("all", "visible", "heldout"):
            raise ValueError(f"which must be 'all', 'visible' or 'heldout', got {which!r}")
        if which == "heldout" and not self.heldout:
            raise ValueError("heldout_frac=0: there are no held-out words")
        for _ in range(1000):
            out: list[str] = []
            self._clause(rng, topic, which, out)
            if rng.random() < self.config.conj_prob:
                out.append(rng.choice(CONJUNCTIONS))
                self._clause(rng, topic, which, out)
            out.append(END)
            if min_topic_words <= 0 or sum(self.topic_of.get(w, -1) == topic
                                           for w in out) >= min_topic_words:
                return out
        raise RuntimeError("could not satisfy min_topic_words; lower it or raise topic_word_prob")

    def corpus(self, n: int, seed: int = 0, return_topics: bool = False):
        """``n`` unlabelled sentences (strings) from the natural distribution.

        Topics are uniform.  With ``return_topics`` also returns the (hidden)
        topic of every sentence as an int array -- for diagnostics only.
        100k sentences take about a second.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(f"corpus-{self.config.seed}-{seed}")
        sents, topics = [], []
        for _ in range(n):
            t = rng.randrange(self.n_topics)
            sents.append(" ".join(self.sentence(rng, t)))
            topics.append(t)
        if return_topics:
            return sents, np.asarray(topics, dtype=np.int64)
        return sents

    def documents(self, n_docs: int, sents_per_doc: int = 4, seed: int = 0) -> list[str]:
        """``n_docs`` documents of ``sents_per_doc`` sentences that share one topic."""
        if n_docs < 0 or sents_per_doc < 1:
            raise ValueError("n_docs must be >= 0 and sents_per_doc >= 1")
        rng = random.Random(f"docs-{self.config.seed}-{seed}")
        docs = []
        for _ in range(n_docs):
            t = rng.randrange(self.n_topics)
            docs.append(" ".join(" ".join(self.sentence(rng, t)) for _ in range(sents_per_doc)))
        return docs

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticLanguage({c.n_topics} topics x "
                f"{c.nouns_per_topic + c.verbs_per_topic + c.adjs_per_topic} words, "
                f"vocab={len(self.words)}, held-out={len(self.heldout)})")


# ---------------------------------------------------------------------- tokenizer
class WordTokenizer:
    """Word-level tokenizer: whitespace split, fixed vocabulary.

    ``ids = [CLS] w1 ... wn [SEP]?`` ; unknown words become ``[UNK]``
    (``unknown="unk"``) or raise ``KeyError`` (``unknown="error"``).
    """

    def __init__(self, words: Iterable[str], unknown: str = "unk"):
        if unknown not in ("unk", "error"):
            raise ValueError(f"unknown must be 'unk' or 'error', got {unknown!r}")
        self.unknown = unknown
        vocab = list(SPECIAL_TOKENS)
        seen = set(vocab)
        for w in words:
            if not isinstance(w, str) or not w or any(ch.isspace() for ch in w):
                raise ValueError(f"invalid vocabulary word {w!r}")
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        self.vocab: list[str] = vocab
        self.index: dict[str, int] = {w: i for i, w in enumerate(vocab)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)
        self.special_ids: tuple[int, ...] = tuple(range(len(SPECIAL_TOKENS)))
        self.n_special = len(SPECIAL_TOKENS)

    @classmethod
    def from_language(cls, lang: SyntheticLanguage, unknown: str = "unk") -> "WordTokenizer":
        return cls(lang.words, unknown=unknown)

    @classmethod
    def from_corpus(cls, texts: Iterable[str], min_count: int = 1, unknown: str = "unk"):
        counts: dict[str, int] = {}
        for t in texts:
            for w in t.split():
                counts[w] = counts.get(w, 0) + 1
        return cls(sorted(w for w, c in counts.items() if c >= min_count), unknown=unknown)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_id(self, word: str) -> int:
        i = self.index.get(word)
        if i is None:
            if self.unknown == "error":
                raise KeyError(f"unknown word {word!r} (tokenizer built with unknown='error')")
            return self.unk_id
        return i

    def encode(self, text: str, add_cls: bool = True, add_sep: bool = False,
               max_len: int | None = None) -> list[int]:
        """Text -> list of ids (truncated to ``max_len`` if given)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        ids = [self.cls_id] if add_cls else []
        ids += [self.token_id(w) for w in text.split()]
        if add_sep:
            ids.append(self.sep_id)
        if max_len is not None:
            if max_len < 1:
                raise ValueError(f"max_len must be >= 1, got {max_len}")
            ids = ids[:max_len]
        return ids

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None,
                     add_cls: bool = True, add_sep: bool = False):
        """Texts -> ``(ids, attention_mask)``: LongTensor (B, T), BoolTensor (B, T).

        Right-padded with ``[PAD]``; ``attention_mask`` is True on real tokens.
        T = longest sequence (capped by ``max_len``).
        """
        import torch

        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, not a string")
        seqs = [self.encode(t, add_cls=add_cls, add_sep=add_sep, max_len=max_len) for t in texts]
        T = max(1, max((len(s) for s in seqs), default=1))
        arr = np.full((len(seqs), T), self.pad_id, dtype=np.int64)
        for i, s in enumerate(seqs):
            arr[i, : len(s)] = s
        ids = torch.from_numpy(arr)
        return ids, ids != self.pad_id

    def decode(self, ids, skip_special: bool = True) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"id {i} out of range [0, {len(self.vocab)})")
            if skip_special and i < self.n_special:
                continue
            out.append(self.vocab[i])
        return " ".join(out)


# ---------------------------------------------------------------- labelled tasks
def trim_padding(ids, mask):
    """Drop the right-hand columns that are padding in every row of a batch (encode_batch pads
    every sentence to the longest of the whole corpus): (B, T), (B, T) -> (B, T'), (B, T')."""
    T = max(1, int(mask.sum(1).max()))
    return ids[:, :T], mask[:, :T]


@dataclass
class LabelledTask:
    """A labelled classification task.

    train_*: the labelled *pool* (``pool_per_class`` per class, class-balanced,
    no held-out words).  Use :func:`budget_indices` to take ``k`` labels per
    class from it.  test_*: the natural test mix.  unseen_*: test sentences
    whose topic words are all held out from labelling.
    """

    name: str
    classes: list[str]
    train_texts: list[str]
    train_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    unseen_texts: list[str]
    unseen_labels: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def budget(self, per_class: int, seed: int = 0):
        """(texts, labels) with ``per_class`` labelled examples per class."""
        idx = budget_indices(self.train_labels, per_class, seed)
        return [self.train_texts[i] for i in idx], self.train_labels[idx]


def budget_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` examples of every class, *nested* across budgets.

    For a fixed seed the 4-per-class subset contains the 2-per-class subset, so
    learning curves are not confounded by re-drawing the data.
    """
    labels = np.asarray(labels)
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if per_class > len(idx):
            raise ValueError(f"class {c} has only {len(idx)} examples, asked for {per_class}")
        out.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(out))


def _check_task_args(pool_per_class, n_test_per_class):
    if pool_per_class < 1 or n_test_per_class < 1:
        raise ValueError("pool_per_class and n_test_per_class must be >= 1")


def make_topic_task(lang: SyntheticLanguage, pool_per_class: int = 256,
                    n_test_per_class: int = 200, seed: int = 0,
                    min_topic_words: int = 1) -> LabelledTask:
    """Sentence -> topic.  See the module docstring for the train/test design."""
    _check_task_args(pool_per_class, n_test_per_class)
    rng = random.Random(f"topic-task-{lang.config.seed}-{seed}")
    return _labelled_task("topic", lang, lambda t, which: lang.sentence(rng, t, which, min_topic_words),
                          pool_per_class, n_test_per_class, needs_word_order=False)


def _labelled_task(name: str, lang: SyntheticLanguage, sentence, pool_per_class: int,
                   n_test_per_class: int, needs_word_order: bool) -> LabelledTask:
    """Build the three splits of a task from `sentence(label, which) -> list of words`:
    a class-balanced labelled pool ("visible" words only), the natural test mix ("all"),
    and the unseen-word test ("heldout"), drawn in that order."""
    def make(n, which):
        texts, labels = [], []
        for _ in range(n):
            for c in range(lang.n_topics):
                texts.append(" ".join(sentence(c, which)))
                labels.append(c)
        return texts, np.asarray(labels, dtype=np.int64)

    tr = make(pool_per_class, "visible")
    te = make(n_test_per_class, "all")
    un = make(n_test_per_class, "heldout") if lang.heldout else ([], np.zeros(0, np.int64))
    return LabelledTask(name, list(lang.topics), tr[0], tr[1], te[0], te[1], un[0], un[1],
                        info={"needs_word_order": needs_word_order})


def _agent_sentence(lang: SyntheticLanguage, rng: random.Random, a: int, b: int, which: str):
    def np_(t):
        out = [rng.choice(DETERMINERS)]
        if rng.random() < lang.config.adj_prob:
            out.append(lang._pools[t]["adj"].sample(rng, which))
        out.append(lang._pools[t]["noun"].sample(rng, which))
        return out

    s = np_(a) + [lang._generic["verb"].sample(rng, "all")] + np_(b)
    if rng.random() < lang.config.pp_prob:
        s += [rng.choice(PREPOSITIONS), rng.choice(DETERMINERS),
              lang._generic["noun"].sample(rng, "all")]
    return s + [END]


def make_agent_task(lang: SyntheticLanguage, pool_per_class: int = 256,
                    n_test_per_class: int = 200, seed: int = 0) -> LabelledTask:
    """Word-order task: "the <topic-a noun> <verb> the <topic-b noun> ." -> a.

    The object is always from a different topic, so the bag of words contains
    two topics and cannot tell which one is the subject (ceiling ~50 %).
    """
    _check_task_args(pool_per_class, n_test_per_class)
    if lang.n_topics < 2:
        raise ValueError("the agent task needs at least 2 topics")
    rng = random.Random(f"agent-task-{lang.config.seed}-{seed}")

    def sentence(a, which):
        b = rng.randrange(lang.n_topics - 1)   # the object's topic: any other than the subject's
        b += b >= a
        return _agent_sentence(lang, rng, a, b, which)

    return _labelled_task("agent", lang, sentence, pool_per_class, n_test_per_class, needs_word_order=True)


# ------------------------------------------------------------------ diagnostics
def embedding_topic_purity(embeddings, tokenizer: WordTokenizer, lang: SyntheticLanguage,
                           k: int = 10) -> float:
    """Mean fraction of a topic word's ``k`` nearest neighbours (cosine, among
    all topic words) that belong to the same topic.  Chance = 1 / n_topics.

    embeddings: (vocab_size, d) array/tensor, rows indexed by tokenizer ids.
    """
    import torch

    E = torch.as_tensor(embeddings).detach().to("cpu", torch.float32)
    if E.ndim != 2 or E.shape[0] != len(tokenizer):
        raise ValueError(f"embeddings must be (vocab_size={len(tokenizer)}, d), got {tuple(E.shape)}")
    words = [w for w in lang.words if w in lang.topic_of]
    if k < 1 or k >= len(words):
        raise ValueError(f"k must be in [1, {len(words) - 1}], got {k}")
    ids = torch.tensor([tokenizer.index[w] for w in words])
    topics = torch.tensor([lang.topic_of[w] for w in words])
    X = torch.nn.functional.normalize(E[ids], dim=1)
    sim = X @ X.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices
    return (topics[nn_idx] == topics[:, None]).float().mean().item()
