"""A small synthetic language whose structure is known, so that we can tell what a model learned.

Why synthetic?  The course runs offline on two CPU cores in minutes, yet it must *show* what
pretraining on unlabelled text buys.  In a language we generate, we know where the knowledge
lives, and we can make the labelled task behave like real ones: both a model trained from
scratch and a pretrained one improve with more labels, the pretrained one needs far fewer, and
the gap closes when labels are plentiful.

The language
------------
* ``n_topics`` topics (``sport``, ``food``, ...), the classes of the labelled task.  Each topic
  has ``subtopics`` sub-topics (``sport-a``, ``sport-b``) with their own invented nouns, verbs
  and adjectives (``brelo``, ``tusk``: spelling says nothing about meaning), plus a few words
  that both sub-topics of the topic share.  A topic is a *union* of sub-topics, as real classes
  are unions of many kinds of text.
* Word frequencies follow a Zipf law inside every list: a few words are frequent, most are
  rare.  Unlabelled text shows every word often enough; a few labelled sentences show only
  the frequent ones.
* ``ambiguous_frac`` of every sub-topic's words also belong to a sub-topic of *another* topic
  (like "bank" or "court"; a few end up in three topics): on its own such a word does not settle
  the topic.
* Generic English words (``thing``, ``make``, ``big``) and function words (``the``, ``near``)
  are shared by all topics.  A small grammar: ``NP VP [PP] [conj NP VP] .``.
* Every content slot takes a word of the sentence's (sub-)topic with probability
  ``topic_word_prob`` (else a generic word), a word of a random other topic with probability
  ``stray_prob``; with probability ``mix_prob`` the prepositional phrase is about another
  topic altogether (sentences mix topics).

So a sentence typically has three to five topical words.  A masked-language model that must
fill in one of them learns from unlabelled text which words go together -- that is what
pretraining can exploit.  Labels (`ptm_lib.text.tasks`) add noise: a few are wrong.

``heldout_frac`` (default 0) marks a fraction of every word list as *never labelled*, for the
separate "unseen words" experiment: labelled pools then avoid those words, and an extra test set
uses only them.

Everything is deterministic for a given seed: the lexicon depends on ``config.seed`` only, each
corpus on its own ``seed`` argument.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

__all__ = ["LanguageConfig", "SyntheticLanguage", "TOPIC_NAMES"]

TOPIC_NAMES = ("sport", "food", "music", "space", "ocean", "law", "health", "weather",
               "farm", "war", "school", "money")
DETERMINERS = ("the", "a", "every", "some", "this", "that")
PREPOSITIONS = ("in", "on", "near", "with", "under", "from", "behind")
CONJUNCTIONS = ("and", "but", "while", "because")
AUX = ("is", "was", "seems")
END = "."
GENERIC = {
    "noun": ("thing", "person", "place", "group", "part", "day", "way", "man", "woman", "child", "friend",
             "room", "side", "end", "home", "city", "world", "year", "time", "idea", "story", "house",
             "road", "team", "family", "kind", "moment", "number", "word", "area"),
    "verb": ("sees", "makes", "takes", "finds", "gives", "keeps", "likes", "wants", "shows", "meets",
             "holds", "brings", "leaves", "needs", "knows"),
    "adj": ("big", "small", "new", "old", "good", "bad", "long", "short", "young", "early", "late",
            "great", "little", "other", "same"),
}
FUNCTION_WORDS = DETERMINERS + PREPOSITIONS + CONJUNCTIONS + AUX + (END,)
POS = ("noun", "verb", "adj")
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


@dataclass(frozen=True)
class LanguageConfig:
    """Parameters of the synthetic language. Word counts are per sub-topic (split 2:1:1 into
    nouns, verbs, adjectives); probabilities are per content slot unless said otherwise."""

    n_topics: int = 6
    subtopics: int = 2             # sub-topics per topic, each with its own words
    words_per_subtopic: int = 60
    shared_per_topic: int = 12     # words both sub-topics of a topic use
    shared_prob: float = 0.25      # P(a topical slot takes one of the topic's shared words)
    ambiguous_frac: float = 0.1    # fraction of a sub-topic's words that also belong to another topic
    topic_word_prob: float = 0.8   # P(content slot gets a topical word)
    stray_prob: float = 0.03       # P(topical slot takes a word of a random other topic)
    mix_prob: float = 0.2          # P(the prepositional phrase is about another topic), per sentence
    zipf_a: float = 1.1            # Zipf exponent of word frequencies inside every word list
    heldout_frac: float = 0.0      # fraction of every word list never shown in labelled pools
    adj_prob: float = 0.5          # P(noun phrase has an adjective)
    pp_prob: float = 0.5           # P(clause has a prepositional phrase)
    conj_prob: float = 0.3         # P(sentence has a second clause)
    seed: int = 0                  # seed of the *lexicon* (words, frequency ranks, ambiguity, held-out)

    def validate(self) -> None:
        if not 1 <= self.n_topics <= len(TOPIC_NAMES):
            raise ValueError(f"n_topics must be in [1, {len(TOPIC_NAMES)}], got {self.n_topics}")
        if self.subtopics < 1:
            raise ValueError(f"subtopics must be >= 1, got {self.subtopics}")
        if self.words_per_subtopic < 8:
            raise ValueError(f"words_per_subtopic must be >= 8, got {self.words_per_subtopic}")
        if self.shared_per_topic < 0:
            raise ValueError(f"shared_per_topic must be >= 0, got {self.shared_per_topic}")
        for name in ("shared_prob", "ambiguous_frac", "topic_word_prob", "stray_prob", "mix_prob",
                     "adj_prob", "pp_prob", "conj_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {v}")
        if not 0.0 <= self.heldout_frac < 1.0:
            raise ValueError(f"heldout_frac must be in [0, 1) (labelled data needs some words), got {self.heldout_frac}")
        if self.ambiguous_frac > 0 and self.n_topics < 2:
            raise ValueError("ambiguous words need at least 2 topics (set ambiguous_frac=0)")
        if self.shared_prob > 0 and self.shared_per_topic < 4:
            raise ValueError("shared_prob > 0 needs shared_per_topic >= 4 (one word per part of speech)")
        if self.zipf_a < 0:
            raise ValueError(f"zipf_a must be >= 0, got {self.zipf_a}")


class _WordList:
    """The words of one (topic group, part of speech), most frequent first, with Zipf weights.
    ``sample(rng, which)``: which = "all" | "visible" (never a held-out word) | "heldout"."""

    def __init__(self, words: list[str], zipf_a: float, heldout: set[str]):
        self.words = words
        weights = [1.0 / (rank + 1) ** zipf_a for rank in range(len(words))]
        self._lists = {"all": (words, weights)}
        for which, keep in (("visible", lambda w: w not in heldout), ("heldout", lambda w: w in heldout)):
            chosen = [(w, p) for w, p in zip(words, weights) if keep(w)]
            self._lists[which] = ([w for w, _ in chosen], [p for _, p in chosen])
        self._cum = {k: list(np.cumsum(p)) for k, (_, p) in self._lists.items()}

    def sample(self, rng: random.Random, which: str) -> str:
        words = self._lists[which][0] or self.words   # a list with no held-out word falls back to all
        cum = self._cum[which] if self._lists[which][0] else self._cum["all"]
        return rng.choices(words, cum_weights=cum)[0]


class SyntheticLanguage:
    """Seeded generator of sentences of the synthetic language.

    >>> lang = SyntheticLanguage()
    >>> lang.corpus(3, seed=1)                      # unlabelled sentences
    ['the brelo ...', ...]                          # doctest: +SKIP

    Attributes
    ----------
    topics : list[str]               topic names (the classes of the topic task)
    subtopic_names : list[str]       "sport-a", "sport-b", ... (index = topic * subtopics + s)
    topic_words : list[list[str]]    every word of each topic (ambiguous words in two topics)
    topics_of : dict[str, tuple]     the topic(s) of every topical word
    topic_of : dict[str, int]        the topic of every *unambiguous* topical word
    subtopic_of : dict[str, int]     the sub-topic of every word that belongs to one sub-topic only
    ambiguous : set[str]             words that belong to two (rarely three) topics
    pos_of : dict[str, str]          "noun" | "verb" | "adj" | "func" for every word
    heldout : set[str]               topical words never used in labelled pools (heldout_frac)
    words : list[str]                the whole vocabulary (no special tokens), sorted
    """

    def __init__(self, config: LanguageConfig | None = None):
        self.config = c = config or LanguageConfig()
        c.validate()
        rng = random.Random(f"lexicon-{c.seed}")
        reserved = set(FUNCTION_WORDS).union(*GENERIC.values())
        used: set[str] = set()

        def new_word() -> str:
            while True:
                w = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 2, 3))))
                if rng.random() < 0.3:
                    w += rng.choice(_CONSONANTS)
                if w not in used and w not in reserved:
                    used.add(w)
                    return w

        def split(n: int) -> dict[str, int]:
            nouns = n // 2
            return {"noun": nouns, "verb": (n - nouns) // 2, "adj": n - nouns - (n - nouns) // 2}

        T, S = c.n_topics, c.subtopics
        self.topics = list(TOPIC_NAMES[:T])
        self.subtopic_names = [f"{t}-{'abcdefghij'[s]}" if S > 1 else t for t in self.topics for s in range(S)]
        # own words of every sub-topic and every topic's shared words, most frequent first
        own = [{pos: [new_word() for _ in range(n)] for pos, n in split(c.words_per_subtopic).items()}
               for _ in range(T * S)]
        shared = [{pos: [new_word() for _ in range(n)] for pos, n in split(c.shared_per_topic).items()}
                  for _ in range(T)]
        # ambiguous words: each sub-topic list also takes words of a sub-topic of another topic,
        # inserted at random frequency ranks
        amb_rng = random.Random(f"ambiguous-{c.seed}")
        lists = [{pos: list(words) for pos, words in sub.items()} for sub in own]
        for k in range(T * S):
            for pos, words in own[k].items():
                n_borrow = int(round(c.ambiguous_frac * len(words)))
                for _ in range(n_borrow):
                    other = amb_rng.randrange(T * S - S)
                    other += S * (other // S >= k // S)          # a sub-topic of another topic
                    word = amb_rng.choice(own[other][pos])
                    if word not in lists[k][pos]:
                        lists[k][pos].insert(amb_rng.randrange(len(lists[k][pos]) + 1), word)

        self.topics_of: dict[str, tuple[int, ...]] = {}
        subtopics_of: dict[str, set[int]] = {}
        self.pos_of: dict[str, str] = {}
        for k, sub in enumerate(lists):
            for pos, words in sub.items():
                for w in words:
                    subtopics_of.setdefault(w, set()).add(k)
                    self.pos_of[w] = pos
        for t, sub in enumerate(shared):
            for pos, words in sub.items():
                for w in words:
                    subtopics_of.setdefault(w, set()).update(range(t * S, (t + 1) * S))
                    self.pos_of[w] = pos
        for w, ks in subtopics_of.items():
            self.topics_of[w] = tuple(sorted({k // S for k in ks}))
        self.topic_of = {w: ts[0] for w, ts in self.topics_of.items() if len(ts) == 1}
        self.subtopic_of = {w: next(iter(ks)) for w, ks in subtopics_of.items() if len(ks) == 1}
        self.ambiguous = {w for w, ts in self.topics_of.items() if len(ts) > 1}
        self.topic_words = [sorted(w for w, ts in self.topics_of.items() if t in ts) for t in range(T)]

        held_rng = random.Random(f"heldout-{c.seed}")   # its own stream: the words do not depend on heldout_frac
        self.heldout: set[str] = set()
        if c.heldout_frac > 0:
            for sub in own + shared:
                for words in sub.values():
                    n_held = min(max(1, int(round(c.heldout_frac * len(words)))), len(words) - 1)
                    self.heldout.update(held_rng.sample(words, n_held))
        self._sub = [{pos: _WordList(words, c.zipf_a, self.heldout) for pos, words in sub.items()} for sub in lists]
        self._shared = [{pos: _WordList(words, c.zipf_a, self.heldout) for pos, words in sub.items()}
                        for sub in shared]
        self._generic = {pos: _WordList(list(words), 0.0, set()) for pos, words in GENERIC.items()}
        for pos, words in GENERIC.items():
            for w in words:
                self.pos_of[w] = pos
        for w in FUNCTION_WORDS:
            self.pos_of[w] = "func"
        self.words = sorted(self.pos_of)

    # ---------------------------------------------------------------------- sampling
    @property
    def n_topics(self) -> int:
        return self.config.n_topics

    @property
    def n_subtopics(self) -> int:
        """Sub-topics in all (n_topics * subtopics)."""
        return self.config.n_topics * self.config.subtopics

    def topic_word(self, rng: random.Random, subtopic: int, pos: str, which: str = "all") -> str:
        """One word of `subtopic` (index into `subtopic_names`) and part of speech `pos`, drawn by
        frequency: one of the topic's shared words with probability `shared_prob`."""
        c = self.config
        if c.shared_prob > 0 and rng.random() < c.shared_prob:
            return self._shared[subtopic // c.subtopics][pos].sample(rng, which)
        return self._sub[subtopic][pos].sample(rng, which)

    def _other_subtopic(self, rng: random.Random, subtopic: int) -> int:
        """A random sub-topic of another topic."""
        S = self.config.subtopics
        k = rng.randrange(self.n_subtopics - S)
        return k + S * (k // S >= subtopic // S)

    def content_word(self, rng, pos, subtopic, which):
        """One content word of part of speech `pos` ("noun", "verb", "adj"): a word of `subtopic`
        with probability topic_word_prob (sometimes another subtopic's: stray_prob), else a generic one.
        `which` picks the word split ("all", "train", ...); `rng` is a random.Random."""
        c = self.config
        if rng.random() >= c.topic_word_prob:
            return self._generic[pos].sample(rng, "all")
        if c.stray_prob > 0 and self.n_topics > 1 and rng.random() < c.stray_prob:
            subtopic = self._other_subtopic(rng, subtopic)
        return self.topic_word(rng, subtopic, pos, which)

    def noun_phrase(self, rng, subtopic, which, out):
        """Append a noun phrase (determiner, sometimes an adjective, a noun) of `subtopic` to the list `out`."""
        out.append(rng.choice(DETERMINERS))
        if rng.random() < self.config.adj_prob:
            out.append(self.content_word(rng, "adj", subtopic, which))
        out.append(self.content_word(rng, "noun", subtopic, which))

    def _clause(self, rng, subtopic, which, out, pp_subtopic):
        self.noun_phrase(rng, subtopic, which, out)
        if rng.random() < 0.2:
            out += [rng.choice(AUX), self.content_word(rng, "adj", subtopic, which)]
        else:
            out.append(self.content_word(rng, "verb", subtopic, which))
            self.noun_phrase(rng, subtopic, which, out)
        if rng.random() < self.config.pp_prob:
            out.append(rng.choice(PREPOSITIONS))
            self.noun_phrase(rng, pp_subtopic, which, out)

    def sentence(self, rng: random.Random, topic: int, which: str = "all", subtopic: int | None = None) -> list[str]:
        """One sentence (a list of words) about `topic`.

        which: "all" (natural text), "visible" (no held-out word: labelled pools) or "heldout"
        (topical words only from the held-out ones, for the unseen-word test).
        subtopic: 0 .. subtopics-1 within the topic (default: uniform).
        """
        c = self.config
        if not 0 <= topic < self.n_topics:
            raise ValueError(f"topic must be in [0, {self.n_topics}), got {topic}")
        if which not in ("all", "visible", "heldout"):
            raise ValueError(f"which must be 'all', 'visible' or 'heldout', got {which!r}")
        if which == "heldout" and not self.heldout:
            raise ValueError("this language has no held-out words (heldout_frac=0)")
        s = rng.randrange(c.subtopics) if subtopic is None else subtopic
        if not 0 <= s < c.subtopics:
            raise ValueError(f"subtopic must be in [0, {c.subtopics}), got {subtopic}")
        k = topic * c.subtopics + s
        pp = self._other_subtopic(rng, k) if self.n_topics > 1 and rng.random() < c.mix_prob else k
        out: list[str] = []
        self._clause(rng, k, which, out, pp)
        if rng.random() < c.conj_prob:
            out.append(rng.choice(CONJUNCTIONS))
            self._clause(rng, k, which, out, k)
        out.append(END)
        return out

    def corpus(self, n: int, seed: int = 0, return_topics: bool = False):
        """`n` unlabelled sentences (strings) of the natural distribution, topics uniform.

        With `return_topics` also returns the hidden topic of every sentence, an int array (N,),
        for diagnostics only.  100k sentences take about two seconds.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(f"corpus-{self.config.seed}-{seed}")
        topics = [rng.randrange(self.n_topics) for _ in range(n)]
        sents = [" ".join(self.sentence(rng, t)) for t in topics]
        return (sents, np.asarray(topics, dtype=np.int64)) if return_topics else sents

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticLanguage({c.n_topics} topics x {c.subtopics} sub-topics, "
                f"{len(self.topics_of)} topical words, vocab={len(self.words)}, "
                f"ambiguous={len(self.ambiguous)}, held-out={len(self.heldout)})")
