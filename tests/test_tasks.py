"""Labelled tasks: balanced pools, validation with the same label noise, clean test labels, budgets."""
import numpy as np
import pytest

from ptm_lib.text import LanguageConfig, SyntheticLanguage, budget_indices, make_agent_task, make_topic_task


def test_topic_task_splits(lang):
    task = make_topic_task(lang, pool_per_class=60, n_val_per_class=20, n_test_per_class=40, seed=0,
                           label_noise=0.0)
    K = lang.n_topics
    assert task.n_classes == K and task.classes == lang.topics
    assert np.bincount(task.train_labels).tolist() == [60] * K
    assert np.bincount(task.val_labels).tolist() == [20] * K
    assert np.bincount(task.test_labels).tolist() == [40] * K
    assert task.unseen_texts == [] and len(task.unseen_labels) == 0      # no held-out words
    # a sentence's label is the topic most of its unambiguous words come from
    agree = [np.bincount([lang.topic_of[w] for w in s.split() if w in lang.topic_of], minlength=K).argmax() == y
             for s, y in zip(task.test_texts, task.test_labels) if any(w in lang.topic_of for w in s.split())]
    assert np.mean(agree) > 0.85
    again = make_topic_task(lang, pool_per_class=60, n_val_per_class=20, n_test_per_class=40, seed=0, label_noise=0.0)
    assert again.train_texts == task.train_texts and again.test_texts == task.test_texts
    other = make_topic_task(lang, pool_per_class=60, n_val_per_class=20, n_test_per_class=40, seed=1, label_noise=0.0)
    assert other.train_texts != task.train_texts


def test_label_noise_hits_pool_and_validation_only(lang):
    clean = make_topic_task(lang, pool_per_class=200, n_val_per_class=100, n_test_per_class=50, label_noise=0.0)
    noisy = make_topic_task(lang, pool_per_class=200, n_val_per_class=100, n_test_per_class=50, label_noise=0.1)
    true = np.tile(np.arange(lang.n_topics), 200)
    flipped = np.mean(noisy.train_labels != true)
    assert 0.06 < flipped < 0.14                                   # about 10 % wrong, never the right class
    assert np.mean(noisy.val_labels != np.tile(np.arange(lang.n_topics), 100)) > 0.05
    assert np.array_equal(noisy.test_labels, np.tile(np.arange(lang.n_topics), 50))   # test labels are true
    assert noisy.info["label_noise"] == 0.1
    with pytest.raises(ValueError, match="label_noise"):
        make_topic_task(lang, label_noise=1.0)


def test_unseen_split_uses_only_heldout_words():
    lang = SyntheticLanguage(LanguageConfig(heldout_frac=0.5))
    task = make_topic_task(lang, pool_per_class=40, n_val_per_class=5, n_test_per_class=30, label_noise=0.0)
    train_words = {w for s in task.train_texts for w in s.split()}
    for s, y in zip(task.train_texts, task.train_labels):
        assert not [w for w in s.split() if lang.topics_of.get(w) == (y,) and w in lang.heldout]
    for s, y in zip(task.unseen_texts, task.unseen_labels):
        own = [w for w in s.split() if lang.topics_of.get(w) == (y,)]
        assert all(w in lang.heldout for w in own)
        assert not any(w in train_words and lang.topics_of.get(w) == (y,) for w in own)


def test_agent_task_needs_word_order(lang):
    task = make_agent_task(lang, pool_per_class=20, n_val_per_class=5, n_test_per_class=20, seed=0)
    for s, y in zip(task.train_texts, task.train_labels):
        nouns = [w for w in s.split() if lang.pos_of.get(w) == "noun" and w in lang.topics_of]
        assert y in lang.topics_of[nouns[0]]                       # the subject comes first
    assert task.info["needs_word_order"]


def test_budget_indices_nested_balanced_and_seeded():
    labels = np.repeat(np.arange(4), 30)
    small, big = budget_indices(labels, 2, seed=5), budget_indices(labels, 8, seed=5)
    assert np.bincount(labels[big]).tolist() == [8] * 4
    assert set(small) <= set(big)
    assert not np.array_equal(budget_indices(labels, 8, seed=6), big)
    with pytest.raises(ValueError, match="only 30 labelled examples"):
        budget_indices(labels, 31)
    with pytest.raises(ValueError, match="per_class must be"):
        budget_indices(labels, 0)


def test_task_budget_and_split_accessors(lang):
    task = make_topic_task(lang, pool_per_class=10, n_val_per_class=2, n_test_per_class=2, label_noise=0.0)
    texts, labels = task.budget(3, seed=0)
    assert len(texts) == 3 * lang.n_topics and np.bincount(labels).tolist() == [3] * lang.n_topics
    assert task.split("val")[0] == task.val_texts
    with pytest.raises(ValueError, match="split must be"):
        task.split("dev")
