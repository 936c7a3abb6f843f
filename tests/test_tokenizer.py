import pytest
import torch

from ptm_lib.text import WordTokenizer
from ptm_lib.text.tokenizer import CLS, MASK, PAD, SEP, UNK


def test_tokenizer_roundtrip_and_specials(lang, tok):
    assert tok.vocab[:5] == [PAD, UNK, CLS, SEP, MASK]
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    s = lang.corpus(1, seed=0)[0]
    ids = tok.encode(s, add_sep=True)
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id
    assert tok.decode(ids) == s
    assert tok.encode("zzzqqq the") == [tok.cls_id, tok.unk_id, tok.index["the"]]
    strict = WordTokenizer.from_language(lang, unknown="error")
    with pytest.raises(KeyError, match="zzzqqq"):
        strict.encode("zzzqqq")
    with pytest.raises(ValueError, match="unknown must be"):
        WordTokenizer(["a"], unknown="ignore")
    with pytest.raises(TypeError, match="not a string"):
        tok.encode_batch("not a list")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([len(tok)])


def test_encode_batch_padding(tok):
    ids, mask = tok.encode_batch(["the thing .", "the"])
    assert ids.shape == (2, 4) and mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert ids[1, 2:].tolist() == [tok.pad_id] * 2
    ids, mask = tok.encode_batch(["the thing ."], max_len=2)
    assert ids.shape == (1, 2)


def test_tokenizer_from_corpus():
    tok = WordTokenizer.from_corpus(["b a a", "c a"], min_count=2)
    assert tok.vocab[5:] == ["a"]
    assert tok.encode("a b", add_cls=False) == [5, tok.unk_id]
    with pytest.raises(ValueError, match="invalid vocabulary word"):
        WordTokenizer(["two words"])
