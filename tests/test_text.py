import numpy as np
import pytest
import torch

from ptm_lib.text import (CLS, MASK, PAD, SEP, UNK, LanguageConfig, SyntheticLanguage,
                          WordTokenizer, budget_indices, embedding_topic_purity,
                          make_agent_task, make_topic_task)


def test_corpus_deterministic_and_seed_dependent(lang):
    a = lang.corpus(200, seed=1)
    b = SyntheticLanguage(LanguageConfig(seed=0)).corpus(200, seed=1)
    c = lang.corpus(200, seed=2)
    assert a == b
    assert a != c
    assert len(a) == 200 and all(isinstance(s, str) and s.endswith(" .") for s in a)


def test_lexicon_depends_on_seed():
    assert SyntheticLanguage(LanguageConfig(seed=0)).words != SyntheticLanguage(LanguageConfig(seed=1)).words


def test_language_structure(lang):
    cfg = lang.config
    per_topic = cfg.nouns_per_topic + cfg.verbs_per_topic + cfg.adjs_per_topic
    assert len(lang.topic_of) == cfg.n_topics * per_topic
    assert all(len(ws) == per_topic for ws in lang.topic_words)
    # about heldout_frac of the topic words are held out, in every topic
    for t in range(cfg.n_topics):
        frac = np.mean([w in lang.heldout for w in lang.topic_words[t]])
        assert abs(frac - cfg.heldout_frac) < 0.05
    # sentences carry several words of their (hidden) topic
    sents, topics = lang.corpus(2000, seed=3, return_topics=True)
    own, other = 0, 0
    for s, t in zip(sents, topics):
        for w in s.split():
            if w in lang.topic_of:
                own += lang.topic_of[w] == t
                other += lang.topic_of[w] != t
    assert own / len(sents) > 3.0           # several topic words per sentence
    assert other / (own + other) < 0.06     # little stray noise


def test_zipf_frequencies(lang):
    from collections import Counter
    sents = lang.corpus(5000, seed=4)
    cnt = Counter(w for s in sents for w in s.split() if w in lang.topic_of)
    nouns0 = [w for w in lang.topic_words[0] if lang.pos_of[w] == "noun"]   # rank order
    assert cnt[nouns0[0]] > 5 * max(cnt[nouns0[-1]], 1)


def test_bad_config_raises():
    with pytest.raises(ValueError):
        SyntheticLanguage(LanguageConfig(n_topics=0))
    with pytest.raises(ValueError):
        SyntheticLanguage(LanguageConfig(topic_word_prob=1.5))
    with pytest.raises(ValueError):
        SyntheticLanguage(LanguageConfig(heldout_frac=1.0))
    lang = SyntheticLanguage()
    with pytest.raises(ValueError):
        lang.corpus(-1)
    with pytest.raises(ValueError):
        lang.sentence(__import__("random").Random(0), topic=99)


def test_tokenizer_roundtrip_and_specials(lang, tok):
    assert tok.vocab[:5] == [PAD, UNK, CLS, SEP, MASK]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    s = lang.corpus(1, seed=0)[0]
    ids = tok.encode(s, add_sep=True)
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id
    assert tok.decode(ids) == s
    assert tok.encode("zzzqqq the") == [tok.cls_id, tok.unk_id, tok.index["the"]]
    strict = WordTokenizer.from_language(lang, unknown="error")
    with pytest.raises(KeyError):
        strict.encode("zzzqqq")
    with pytest.raises(ValueError):
        WordTokenizer(["a"], unknown="ignore")
    with pytest.raises(TypeError):
        tok.encode_batch("not a list")


def test_encode_batch_padding(tok):
    ids, mask = tok.encode_batch(["the thing .", "the"])
    assert ids.shape == (2, 4) and mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert ids[1, 2:].tolist() == [tok.pad_id] * 2
    ids, mask = tok.encode_batch(["the thing ."], max_len=2)
    assert ids.shape == (1, 2)


def test_topic_task_design(lang):
    task = make_topic_task(lang, pool_per_class=50, n_test_per_class=40, seed=0)
    K = lang.n_topics
    assert task.n_classes == K
    assert np.bincount(task.train_labels).tolist() == [50] * K
    assert np.bincount(task.test_labels).tolist() == [40] * K
    train_words = {w for s in task.train_texts for w in s.split()}
    # labelled pool never shows a held-out word (stray noise excepted: other-topic words)
    for s, y in zip(task.train_texts, task.train_labels):
        for w in s.split():
            if lang.topic_of.get(w) == y:
                assert w not in lang.heldout
    # unseen test: own-topic words are all held out, hence absent from the labelled pool
    for s, y in zip(task.unseen_texts, task.unseen_labels):
        own = [w for w in s.split() if lang.topic_of.get(w) == y]
        assert own and all(w in lang.heldout and w not in train_words for w in own)
    # natural test mixes both
    nat = [w for s in task.test_texts for w in s.split() if w in lang.topic_of]
    assert 0.2 < np.mean([w in lang.heldout for w in nat]) < 0.8
    again = make_topic_task(lang, pool_per_class=50, n_test_per_class=40, seed=0)
    assert again.train_texts == task.train_texts and again.unseen_texts == task.unseen_texts


def test_agent_task_needs_word_order(lang):
    task = make_agent_task(lang, pool_per_class=20, n_test_per_class=20, seed=0)
    for s, y in zip(task.train_texts, task.train_labels):
        topics = [lang.topic_of[w] for w in s.split() if w in lang.topic_of]
        assert topics[0] == y and len(set(topics)) == 2    # subject first, two topics
    assert task.info["needs_word_order"]


def test_budget_indices_nested_and_balanced():
    labels = np.repeat(np.arange(4), 30)
    small = budget_indices(labels, 2, seed=5)
    big = budget_indices(labels, 8, seed=5)
    assert np.bincount(labels[big]).tolist() == [8] * 4
    assert set(small) <= set(big)
    assert not np.array_equal(budget_indices(labels, 8, seed=6), big)
    with pytest.raises(ValueError):
        budget_indices(labels, 31)
    with pytest.raises(ValueError):
        budget_indices(labels, 0)


def test_embedding_topic_purity(lang, tok):
    d = 16
    rnd = torch.randn(len(tok), d, generator=torch.Generator().manual_seed(0))
    assert embedding_topic_purity(rnd, tok, lang) < 0.3            # ~ 1 / n_topics
    perfect = torch.zeros(len(tok), d)
    for w, t in lang.topic_of.items():
        perfect[tok.index[w], t] = 1.0
    perfect += 0.01 * rnd
    assert embedding_topic_purity(perfect, tok, lang) > 0.99
    with pytest.raises(ValueError):
        embedding_topic_purity(torch.zeros(3, 4), tok, lang)


def test_words_do_not_depend_on_heldout_frac():
    a = SyntheticLanguage(LanguageConfig(heldout_frac=0.5))
    b = SyntheticLanguage(LanguageConfig(heldout_frac=0.0))
    assert a.words == b.words and len(b.heldout) == 0
    assert a.corpus(50, seed=0) == b.corpus(50, seed=0)      # the unlabelled corpus is the same
    task = make_topic_task(b, pool_per_class=3, n_test_per_class=3)
    assert task.unseen_texts == [] and len(task.unseen_labels) == 0


def test_documents_and_tokenizer_from_corpus(lang):
    docs = lang.documents(5, sents_per_doc=3, seed=0)
    assert len(docs) == 5 and all(d.count(" .") == 3 for d in docs)
    assert docs == lang.documents(5, sents_per_doc=3, seed=0)
    tok = WordTokenizer.from_corpus(["b a a", "c a"], min_count=2)
    assert tok.vocab[5:] == ["a"]
    assert tok.encode("a b", add_cls=False) == [5, tok.unk_id]
    with pytest.raises(ValueError):
        WordTokenizer(["two words"])
