"""Translation: the second language, parallel data, the seq2seq batch layout, BLEU, a tiny run."""
import math

import pytest
import torch

from ptm_lib.text.translation import (SHIPPED_SHA256, Clause, LanguagePair, build_translator, corpus_bleu,
                                      denoising_eval, exact_match_rate, load_pair_denoiser, mirror_word,
                                      train_translation, translate, translation_loss)


@pytest.fixture(scope="module")
def pair():
    return LanguagePair()


def test_mirror_language_has_its_own_words_and_word_order(pair):
    assert mirror_word("brelo") == "Olerb" and mirror_word(".") == "."
    src, tgt = pair.parallel(200, seed=0)
    l1 = set(pair.lang.words)
    for s, t in zip(src, tgt):
        assert len(s) == len(t) and s[-1] == t[-1] == "."
        assert sorted(mirror_word(w) for w in s) == sorted(t), "the same words, mirrored"
        assert not (set(t) - {"."}) & l1, "no L1 word in L2"
    # verb last (SOV), noun before its adjective and determiner, postpositions
    clause = Clause(subject=("the", "big", "dog"), verb="sees", obj=("a", None, "cat"),
                    pp=("near", ("some", None, "tree")))
    assert LanguagePair.render(clause, "L1") == "the big dog sees a cat near some tree .".split()
    assert LanguagePair.render(clause, "L2") == "God Gib Eht Eert Emos Raen Tac A Sees .".split()
    aux = Clause(subject=("a", None, "cat"), aux=("is", "old"))
    assert LanguagePair.render(aux, "L2") == "Tac A Dlo Si .".split()
    assert pair.parallel(5, seed=0) == pair.parallel(5, seed=0) != pair.parallel(5, seed=1)
    mono = pair.monolingual(10, seed=0)
    assert set(mono[0]) <= l1 and not (set(mono[1]) - {"."}) & l1


def test_pair_batches_shift_the_target(pair):
    src, tgt = pair.parallel(4, seed=0)
    b = pair.encode_pairs(src, tgt)
    tok = pair.tokenizer
    assert b["tgt_in"].shape == b["tgt_out"].shape == b["tgt_mask"].shape
    for i, t in enumerate(tgt):
        n = len(t)
        assert b["tgt_in"][i, 0] == tok.cls_id and b["tgt_out"][i, n] == tok.sep_id
        assert torch.equal(b["tgt_in"][i, 1:n + 1], b["tgt_out"][i, :n])
        assert (b["tgt_out"][i, n + 1:] == -100).all()
    model = build_translator(pair, d_model=16, n_heads=2, n_layers=1)
    loss = translation_loss(model, tuple(b[k] for k in ("src", "src_mask", "tgt_in", "tgt_mask", "tgt_out")))
    assert abs(loss.item() - math.log(len(tok))) < 1.0, "an untrained model is close to uniform"


def test_bleu_matches_a_hand_computation():
    ref = [["the", "cat", "is", "on", "the", "mat"]]
    assert corpus_bleu(ref, ref) == pytest.approx(100.0)
    # hypothesis "the cat the cat on the mat" (7 words): clipped 1-gram matches 5/7 (the x2 clipped to 2, cat 1,
    # on 1, mat 1... the appears 3 times, reference has 2), 2-grams: the cat, on the, the mat = 3/6,
    # 3-grams: on the mat = 1/5, 4-grams: 0/4 -> BLEU 0 without smoothing
    hyp = [["the", "cat", "the", "cat", "on", "the", "mat"]]
    assert corpus_bleu(hyp, ref) == 0.0
    # "the cat is on the" (5 words, shorter than 6): p1 = 5/5, p2 = 4/4, p3 = 3/3, p4 = 2/2; BP = exp(1 - 6/5)
    assert corpus_bleu([["the", "cat", "is", "on", "the"]], ref) == pytest.approx(100 * math.exp(1 - 6 / 5))
    # two sentences: counts are pooled over the corpus before the ratios (corpus BLEU, not a mean)
    hyps = [["a", "b", "c", "d"], ["a", "b", "c", "x"]]
    refs = [["a", "b", "c", "d"], ["a", "b", "c", "d"]]
    p = [7 / 8, 5 / 6, 3 / 4, 1 / 2]
    assert corpus_bleu(hyps, refs) == pytest.approx(100 * math.exp(sum(map(math.log, p)) / 4))
    assert exact_match_rate(hyps, refs) == 0.5


def test_a_tiny_translator_learns_a_few_pairs(pair):
    torch.manual_seed(0)
    src, tgt = pair.parallel(8, seed=0)
    model = build_translator(pair, d_model=32, n_heads=2, n_layers=1)
    train_translation(model, pair.encode_pairs(src, tgt), steps=150, lr=3e-3, batch_size=8)
    hyp = translate(model, pair, src)
    assert corpus_bleu(hyp, tgt) > 50


def test_shipped_denoiser_is_pinned_and_learned(pair):
    from ptm_lib.paths import data_dir

    assert SHIPPED_SHA256 in (data_dir() / "README.md").read_text()
    model, meta = load_pair_denoiser()
    assert meta["vocab_size"] == len(pair.tokenizer) == model.config.vocab_size
    assert denoising_eval(model, pair, n=200) < 0.3 * denoising_eval(build_translator(pair), pair, n=200)
