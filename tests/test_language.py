"""The synthetic language: determinism, Zipf frequencies, sub-topics, ambiguity, mixing, held-out words."""
import random
from collections import Counter

import numpy as np
import pytest

from ptm_lib.text import LanguageConfig, SyntheticLanguage


def test_corpus_deterministic_and_seed_dependent(lang):
    a = lang.corpus(200, seed=1)
    assert a == SyntheticLanguage(LanguageConfig(seed=0)).corpus(200, seed=1)
    assert a != lang.corpus(200, seed=2)
    assert len(a) == 200 and all(isinstance(s, str) and s.endswith(" .") for s in a)


def test_lexicon_depends_on_seed():
    assert SyntheticLanguage(LanguageConfig(seed=0)).words != SyntheticLanguage(LanguageConfig(seed=1)).words


def test_word_maps_are_consistent(lang):
    c = lang.config
    assert len(lang.topics) == c.n_topics and len(lang.subtopic_names) == c.n_topics * c.subtopics
    # every topical word has 1 topic (topic_of) or 2+ (ambiguous), never both
    assert set(lang.topic_of) | lang.ambiguous == set(lang.topics_of)
    assert not set(lang.topic_of) & lang.ambiguous
    assert all(len(lang.topics_of[w]) >= 2 for w in lang.ambiguous)
    # about ambiguous_frac of a sub-topic's words belong to another topic too
    share = len(lang.ambiguous) / len(lang.topics_of)
    assert 0.5 * c.ambiguous_frac < share < 2 * c.ambiguous_frac
    for t, words in enumerate(lang.topic_words):
        assert all(t in lang.topics_of[w] for w in words)
    # sub-topic words map to a sub-topic of their topic
    assert all(k // c.subtopics == lang.topic_of[w] for w, k in lang.subtopic_of.items() if w in lang.topic_of)
    assert set(lang.words) == set(lang.pos_of)


def test_sentences_carry_their_topic_with_some_mixing(lang):
    sents, topics = lang.corpus(3000, seed=3, return_topics=True)
    own = other = 0
    for s, t in zip(sents, topics):
        for w in s.split():
            if w in lang.topic_of:
                own += lang.topic_of[w] == t
                other += lang.topic_of[w] != t
    assert own / len(sents) > 2.5                     # several words of its topic per sentence
    assert 0.03 < other / (own + other) < 0.2          # mixing and stray words exist, but are a minority
    assert np.bincount(topics).min() > 400            # topics are uniform


def test_subtopics_have_their_own_words(lang):
    rng = random.Random(0)
    s = lang.config.subtopics
    words = {k: Counter(w for _ in range(300) for w in lang.sentence(rng, 0, subtopic=k)
                        if lang.subtopic_of.get(w, -1) in range(s)) for k in range(s)}
    for k in range(s):   # words specific to a sub-topic come from that sub-topic
        assert {lang.subtopic_of[w] for w in words[k]} == {k}


def test_zipf_frequencies(lang):
    sents = lang.corpus(20000, seed=4)
    cnt = Counter(w for s in sents for w in s.split())
    nouns = lang._sub[0]["noun"].words                     # frequency-rank order
    assert cnt[nouns[0]] > 5 * max(cnt[nouns[-1]], 1)
    # unlabelled text shows every topical word, while a few hundred sentences show only some
    assert all(cnt[w] > 0 for w in lang.topics_of)
    few = {w for s in sents[:300] for w in s.split()}
    assert len(few & set(lang.topics_of)) < 0.7 * len(lang.topics_of)


def test_mix_prob_controls_other_topic_words():
    def other_share(mix):
        lang = SyntheticLanguage(LanguageConfig(mix_prob=mix, stray_prob=0.0))
        sents, topics = lang.corpus(2000, seed=0, return_topics=True)
        pairs = [(lang.topic_of[w], t) for s, t in zip(sents, topics) for w in s.split() if w in lang.topic_of]
        return np.mean([a != b for a, b in pairs])
    assert other_share(0.0) == 0.0 and other_share(0.5) > 0.05


def test_heldout_words_and_corpus_independence():
    a = SyntheticLanguage(LanguageConfig(heldout_frac=0.5))
    b = SyntheticLanguage(LanguageConfig(heldout_frac=0.0))
    assert a.words == b.words and not b.heldout
    assert 0.4 < len(a.heldout) / len(a.topics_of) < 0.6
    assert a.corpus(50, seed=0) == b.corpus(50, seed=0)      # the unlabelled corpus is the same
    rng = random.Random(1)
    for _ in range(100):
        vis = a.sentence(rng, 2, which="visible")
        assert not any(w in a.heldout for w in vis if a.topics_of.get(w, ()) == (2,))
        held = a.sentence(rng, 2, which="heldout")
        own = [w for w in held if a.topics_of.get(w, ()) == (2,)]
        assert all(w in a.heldout for w in own)
    with pytest.raises(ValueError, match="no held-out words"):
        b.sentence(rng, 0, which="heldout")


@pytest.mark.parametrize("changes, match", [
    (dict(n_topics=0), "n_topics"), (dict(topic_word_prob=1.5), "topic_word_prob"),
    (dict(heldout_frac=1.0), "heldout_frac"), (dict(subtopics=0), "subtopics"),
    (dict(words_per_subtopic=3), "words_per_subtopic"), (dict(zipf_a=-1), "zipf_a"),
    (dict(n_topics=1), "ambiguous"), (dict(shared_per_topic=2), "shared_per_topic"),
])
def test_bad_config_raises(changes, match):
    with pytest.raises(ValueError, match=match):
        SyntheticLanguage(LanguageConfig(**changes))


def test_bad_sentence_arguments(lang):
    rng = random.Random(0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        lang.corpus(-1)
    with pytest.raises(ValueError, match="topic must be in"):
        lang.sentence(rng, topic=99)
    with pytest.raises(ValueError, match="which must be"):
        lang.sentence(rng, 0, which="some")
    with pytest.raises(ValueError, match="subtopic must be in"):
        lang.sentence(rng, 0, subtopic=5)
