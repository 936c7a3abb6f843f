"""Extractive QA: the task's construction, the span head, SQuAD metrics, a tiny training run."""
import numpy as np
import pytest
import torch

from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.text import WordTokenizer
from ptm_lib.text.qa import (QUESTION_OFFSET, SpanQA, best_spans, encode_qa, exact_match, heuristic_spans,
                             make_qa_data, normalize_answer, predict_spans, qa_loss, squad_scores, token_f1,
                             train_qa)


def test_every_question_is_answerable_by_meaning_only(lang):
    data = make_qa_data(lang, 200, seed=0)
    assert len(data) == 200 and data.topics.shape == (200, 3)
    for i in range(len(data)):
        q, doc, j = data.questions[i], data.documents[i], data.answer_sentence[i]
        assert q not in doc, "the question word never occurs in the document"
        assert lang.topic_of[q] == data.topics[i, j], "the question is a word of the answer sentence's topic"
        assert len(set(data.topics[i])) == 3, "one topic per sentence"
        s, e = data.subjects[i][j]
        assert (data.starts[i], data.ends[i]) == (s, e) and 1 <= e - s + 1 <= 2
        assert doc[s - 1] in ("the", "a", "every", "some", "this", "that"), "the answer follows a determiner"
    assert np.bincount(data.answer_sentence, minlength=3).min() > 40, "the answer is in any sentence"
    again = make_qa_data(lang, 200, seed=0)
    assert again.questions == data.questions and make_qa_data(lang, 200, seed=1).questions != data.questions


def test_heuristics_get_about_one_in_three(lang):
    data = make_qa_data(lang, 600, seed=3)
    for rule in ("first", "random"):
        em = squad_scores(heuristic_spans(data, rule), data)["em"]
        assert 0.2 < em < 0.45, (rule, em)
    gold = squad_scores((data.starts, data.ends), data)
    assert gold == {"em": 1.0, "f1": 1.0}


def test_squad_metrics_match_the_official_definitions():
    assert normalize_answer("The  Big, dog!") == "big dog"
    assert exact_match("a tusk", "tusk") == 1.0 and exact_match("big tusk", "tusk") == 0.0
    assert token_f1("big tusk", "tusk") == pytest.approx(2 * 0.5 * 1 / 1.5)     # P = 1/2, R = 1
    assert token_f1("kiva", "tusk") == 0.0 and token_f1("", "") == 1.0 and token_f1("the", "tusk") == 0.0


def test_best_span_respects_order_and_length():
    logits = torch.full((1, 6, 2), -5.0)
    logits[0, 4, 0], logits[0, 1, 1] = 3.0, 3.0          # best start after best end: not allowed
    logits[0, 2, 1] = 2.0
    s, e = best_spans(logits, max_answer_len=2)
    assert s.item() <= e.item() < s.item() + 2
    logits = torch.full((1, 6, 2), -5.0)
    logits[0, 2, 0], logits[0, 3, 1] = 1.0, 1.0
    assert [t.item() for t in best_spans(logits)] == [2, 3]


def test_span_model_shapes_context_mask_and_pretrained_copy(lang):
    tok = WordTokenizer.from_language(lang)
    data = make_qa_data(lang, 8, seed=0)
    enc = encode_qa(data, tok)
    assert enc.ids.shape[1] <= 32 and (enc.ids[:, 0] == tok.cls_id).all() and (enc.ids[:, 2] == tok.sep_id).all()
    assert (enc.ids[torch.arange(8), enc.start] == torch.tensor([tok.token_id(data.documents[i][data.starts[i]])
                                                                 for i in range(8)])).all()
    lm = TransformerLM(TransformerConfig(vocab_size=len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32))
    model = SpanQA.from_lm(lm)
    assert torch.equal(model.body.tok_emb.weight, lm.body.tok_emb.weight)
    assert model.body.tok_emb.weight is not lm.body.tok_emb.weight, "a copy: fine-tuning leaves lm unchanged"
    logits = model(enc.ids, enc.mask, enc.context)
    assert logits.shape == (*enc.ids.shape, 2)
    assert torch.isinf(logits[:, :QUESTION_OFFSET]).all() and torch.isfinite(logits[enc.context]).all()
    starts, ends = predict_spans(model, enc)
    assert ((starts >= 0) & (ends >= starts)).all()


def test_training_fits_a_small_set(lang):
    torch.manual_seed(0)
    tok = WordTokenizer.from_language(lang)
    data = make_qa_data(lang, 16, seed=0)
    enc = encode_qa(data, tok)
    model = SpanQA(TransformerConfig(vocab_size=len(tok), d_model=32, n_heads=2, n_layers=1, max_len=32))
    before = qa_loss(model, (enc.ids, enc.mask, enc.context, enc.start, enc.end)).item()
    train_qa(model, enc, steps=60, lr=3e-3, batch_size=16)
    after = qa_loss(model, (enc.ids, enc.mask, enc.context, enc.start, enc.end)).item()
    assert after < 0.5 * before
    assert squad_scores(predict_spans(model, enc), data)["em"] > 0.6, "it can memorise 16 examples"


def test_steps_follow_chapter_3s_rule():
    from ptm_lib.text.qa import qa_steps

    assert qa_steps(64) == 60 and qa_steps(256) == 60 and qa_steps(1024) == 96
