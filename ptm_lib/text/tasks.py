"""Labelled tasks on the synthetic language: splits, label budgets, label noise.

    task = make_topic_task(lang)                  # sentence -> topic
    texts, labels = task.budget(8, seed=0)        # 8 labelled sentences per topic

Every task has four splits:

* ``train``  -- the labelled *pool*, class-balanced; `budget` / `budget_indices` take `k` labels per
  class from it, nested across budgets (the 4-per-class subset contains the 2-per-class one);
* ``val``    -- labelled like the pool (the same label noise): choose hyper-parameters here;
* ``test``   -- the natural mix of sentences with their *true* labels: report it once, at the end;
* ``unseen`` -- (only when the language has held-out words) test sentences whose topical words
  were never shown in the labelled pool: what labels alone cannot teach.

``label_noise`` is the fraction of pool and validation labels replaced by a random *other*
class, as happens with real annotators; test labels are the true ones.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from .language import DETERMINERS, END, PREPOSITIONS, SyntheticLanguage

__all__ = ["LabelledTask", "budget_indices", "make_topic_task", "make_agent_task"]


@dataclass
class LabelledTask:
    """A labelled classification task: texts (list of str) and labels (int64 arrays) per split."""

    name: str
    classes: list[str]
    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    unseen_texts: list[str]
    unseen_labels: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        """(texts, labels) of "train", "val", "test" or "unseen"."""
        if name not in ("train", "val", "test", "unseen"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'unseen', got {name!r}")
        return getattr(self, f"{name}_texts"), getattr(self, f"{name}_labels")

    def budget(self, per_class: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
        """(texts, labels) with `per_class` labelled examples of every class from the pool."""
        idx = budget_indices(self.train_labels, per_class, seed)
        return [self.train_texts[i] for i in idx], self.train_labels[idx]


def budget_indices(labels, per_class: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `per_class` examples of every class, *nested* across budgets: for one seed
    the 4-per-class subset contains the 2-per-class one, so a learning curve is not confounded by
    re-drawing the data. A budget larger than a class raises a ValueError that says how many there are."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if per_class > len(idx):
            raise ValueError(f"class {c} has only {len(idx)} labelled examples, asked for {per_class} per class; "
                             "make the task with a larger pool_per_class")
        out.append(rng.permutation(idx)[:per_class])
    return np.sort(np.concatenate(out))


def _check_sizes(pool_per_class, n_val_per_class, n_test_per_class, label_noise):
    if pool_per_class < 1 or n_val_per_class < 1 or n_test_per_class < 1:
        raise ValueError("pool_per_class, n_val_per_class and n_test_per_class must be >= 1")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise}")


def _labelled_task(name: str, lang: SyntheticLanguage, sentence, pool_per_class: int, n_val_per_class: int,
                   n_test_per_class: int, label_noise: float, rng: random.Random, **info) -> LabelledTask:
    """The four splits of a task from `sentence(label, which) -> list of words`, drawn in the order
    pool ("visible" words only), validation ("visible"), test ("all"), unseen-word test ("heldout")."""
    C = lang.n_topics

    def make(n, which, noisy):
        texts, labels = [], []
        for _ in range(n):
            for c in range(C):
                texts.append(" ".join(sentence(c, which)))
                label = c
                if noisy and C > 1 and rng.random() < label_noise:
                    label = rng.randrange(C - 1)
                    label += label >= c
                labels.append(label)
        return texts, np.asarray(labels, dtype=np.int64)

    train = make(pool_per_class, "visible", True)
    val = make(n_val_per_class, "visible", True)
    test = make(n_test_per_class, "all", False)
    unseen = make(n_test_per_class, "heldout", False) if lang.heldout else ([], np.zeros(0, np.int64))
    return LabelledTask(name, list(lang.topics), *train, *val, *test, *unseen,
                        info={"label_noise": label_noise, **info})


def make_topic_task(lang: SyntheticLanguage, pool_per_class: int = 1024, n_val_per_class: int = 50,
                    n_test_per_class: int = 150, seed: int = 0, label_noise: float = 0.05) -> LabelledTask:
    """Sentence -> its topic. A bag of words suffices; rare and ambiguous words make it hard."""
    _check_sizes(pool_per_class, n_val_per_class, n_test_per_class, label_noise)
    rng = random.Random(f"topic-task-{lang.config.seed}-{seed}")
    return _labelled_task("topic", lang, lambda t, which: lang.sentence(rng, t, which), pool_per_class,
                          n_val_per_class, n_test_per_class, label_noise, rng, needs_word_order=False)


def make_agent_task(lang: SyntheticLanguage, pool_per_class: int = 256, n_val_per_class: int = 50,
                    n_test_per_class: int = 150, seed: int = 0, label_noise: float = 0.0) -> LabelledTask:
    """Word-order task: "the <noun of topic a> <generic verb> the <noun of topic b> ." -> a.

    The object is always of another topic, so the bag of words holds two topics and cannot tell
    which is the subject (a bag-of-words model is capped near 50 %): the task needs word order.
    """
    _check_sizes(pool_per_class, n_val_per_class, n_test_per_class, label_noise)
    if lang.n_topics < 2:
        raise ValueError("the agent task needs at least 2 topics")
    rng = random.Random(f"agent-task-{lang.config.seed}-{seed}")
    S = lang.config.subtopics

    def noun_phrase(topic, which):
        k = topic * S + rng.randrange(S)
        out = [rng.choice(DETERMINERS)]
        if rng.random() < lang.config.adj_prob:
            out.append(lang.topic_word(rng, k, "adj", which))
        return out + [lang.topic_word(rng, k, "noun", which)]

    def sentence(a, which):
        b = rng.randrange(lang.n_topics - 1)   # the object's topic: any but the subject's
        b += b >= a
        words = noun_phrase(a, which) + [rng.choice(("sees", "finds", "meets", "holds", "likes"))]
        words += noun_phrase(b, which)
        if rng.random() < lang.config.pp_prob:
            words += [rng.choice(PREPOSITIONS), rng.choice(DETERMINERS), rng.choice(("place", "day", "city", "room"))]
        return words + [END]

    return _labelled_task("agent", lang, sentence, pool_per_class, n_val_per_class, n_test_per_class,
                          label_noise, rng, needs_word_order=True)
