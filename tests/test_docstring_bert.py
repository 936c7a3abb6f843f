"""ptm_lib.text.docstring_bert: the pretraining text, its tokenizer, and the shipped checkpoint."""
import pytest

from ptm_lib.data import sha256_file
from ptm_lib.paths import data_dir
from ptm_lib.text import docstring_bert as db
from ptm_lib.text.docstrings import docstring_corpus


def test_prose_sentences_skip_sections_examples_and_signatures():
    doc = """solve(a, b)

    Solve a linear matrix equation, or system of linear scalar equations.
    Computes the "exact" solution, `x`, of the well-determined linear system.

    >>> solve(a, b)

    Parameters
    ----------
    a : array_like
        Coefficient matrix with many words here.
    """
    assert db.prose_sentences(doc) == ["Solve a linear matrix equation, or system of linear scalar equations.",
                                       'Computes the "exact" solution, x, of the well-determined linear system.']
    assert db.prose_sentences(None) == [] and db.prose_sentences("Too short.") == []


def test_words_lowercases_and_keeps_letters_and_digits():
    assert db.words("Compute the 2-D FFT (fast!) of `x`.") == "compute the 2 d fft fast of x"


def test_pretraining_text_never_contains_a_labelled_line():
    sentences = db.pretraining_sentences()
    assert len(sentences) > 5000 and sentences == sorted(sentences)
    labelled = {" ".join(t.casefold().split()) for t in docstring_corpus()[0]}
    assert not labelled & {" ".join(s.casefold().split()) for s in sentences}


def test_shipped_checkpoint_is_pinned_and_rebuilds_its_tokenizer():
    assert sha256_file(data_dir() / f"{db.NAME}.safetensors") == db.SHIPPED_SHA256
    lm, tok, meta = db.load_docstring_bert()
    assert lm.config.vocab_size == len(tok) and meta["sentences"] > 5000
    ids, mask = db.encode(["Compute the eigenvalues of a matrix."], tok)
    assert ids.shape[1] <= db.MAX_LEN and (ids[0, 1:6] != tok.unk_id).all()
    assert lm(ids, mask).shape == (1, ids.shape[1], len(tok))


def test_missing_checkpoint_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ptm_lib.text.docstring_bert"):
        db.load_docstring_bert(tmp_path)
