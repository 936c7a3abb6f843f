"""The real pre-trained model (ptm_lib.text.minilm): found in the installed package, refused when its
weights are not the pinned ones, loaded without any network, and embeddings that are what
sentence-transformers computes. About 6 s (one model load, a few sentences). That importing
ptm_lib.text.minilm does not import transformers is checked in test_docstrings.py (one fresh process)."""
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from ptm_lib.text import minilm

pytestmark = pytest.mark.skipif(not minilm.available(), reason=minilm.install_hint())

PARAPHRASES = ["A man is eating food.", "A man is eating a piece of bread."]
UNRELATED = ["The new movie is awesome.", "Compute the eigenvalues of a symmetric matrix."]


@pytest.fixture(scope="module")
def loaded():
    return minilm.load("cpu")


def _linked_copy(folder: Path) -> Path:
    """A new folder whose files are symbolic links to the model's files (a copy without the 90 MB)."""
    for src in minilm.model_dir().rglob("*"):
        if src.is_file():
            dest = folder / src.relative_to(minilm.model_dir())
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(src)
    return folder


def test_model_dir_is_inside_the_installed_package_and_has_the_pinned_weights():
    folder = minilm.model_dir()
    assert folder.name == "model" and folder.parent.name == minilm.PACKAGE
    from ptm_lib.data import sha256_file
    assert sha256_file(folder / "model.safetensors") == minilm.MODEL_SHA256
    readme = (Path(__file__).resolve().parents[1] / "data" / "README.md").read_text()
    assert minilm.MODEL_SHA256 in readme, "list the MiniLM weights' sha256 in data/README.md"


def test_modified_weights_are_refused_before_anything_loads_them(tmp_path, monkeypatch):
    copy = _linked_copy(tmp_path / "model")
    weights = copy / "model.safetensors"
    weights.unlink()
    shutil.copyfile(minilm.model_dir() / "model.safetensors", weights)
    with open(weights, "r+b") as f:           # flip one byte of a weight: still a valid safetensors file
        f.seek(weights.stat().st_size - 100)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    import transformers
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda *a, **k: pytest.fail("the modified weights were loaded"))
    with pytest.raises(minilm.WeightsMismatchError, match="corrupt or was replaced"):
        minilm.load("cpu", path=copy)


def test_missing_files_and_missing_package_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        minilm.model_dir(tmp_path)
    real_find_spec = minilm.importlib.util.find_spec
    monkeypatch.setattr(minilm.importlib.util, "find_spec",
                        lambda name, *a: None if name == minilm.PACKAGE else real_find_spec(name, *a))
    assert not minilm.available()
    with pytest.raises(ImportError, match=r"real-models.*make lab"):
        minilm.model_dir()
    assert "pip install -c constraints.txt '.[real-models]'" in minilm.install_hint()


def test_load_reaches_no_network(tmp_path, monkeypatch):
    """A fresh load (a copy of the files, so not the cached model) with every socket connection refused."""
    copy = _linked_copy(tmp_path / "model")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during load: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    model, tokenizer = minilm.load("cpu", path=copy)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert not model.training and type(model).__name__ == "BertModel"
    assert model.config.hidden_size == minilm.EMBED_DIM and tokenizer.vocab_size == 30522
    assert minilm.embed(PARAPHRASES, model=model, tokenizer=tokenizer).shape == (2, 384)


def test_load_is_cached_and_in_eval_mode(loaded):
    model, tokenizer = loaded
    assert minilm.load("cpu")[0] is model and not model.training
    assert sum(p.numel() for p in model.parameters()) == 22_713_216


def test_embed_shapes_norms_determinism_and_order(loaded):
    texts = PARAPHRASES + UNRELATED + ["a much longer sentence " * 10]
    X = minilm.embed(texts)
    assert X.shape == (5, 384) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(X, minilm.embed(texts)), "the same texts must give the same numbers"
    np.testing.assert_allclose(minilm.embed(texts[::-1])[::-1], X, atol=1e-5)      # rows follow the input
    np.testing.assert_allclose(minilm.embed(texts, batch_size=1), X, atol=1e-5)   # padding changes nothing
    raw = minilm.embed(texts, normalize=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), X, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences_and_a_random_encoder_cannot_tell(loaded):
    X = minilm.embed(PARAPHRASES + UNRELATED)
    sims = X @ X.T
    assert sims[0, 1] > 0.6 and max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3]) < 0.2
    model, tokenizer = minilm.load("cpu", pretrained=False)           # the control: same network, random weights
    R = minilm.embed(PARAPHRASES + UNRELATED, model=model, tokenizer=tokenizer)
    r = R @ R.T
    assert r[0, 1] - max(r[0, 2], r[0, 3]) < sims[0, 1] - max(sims[0, 2], sims[0, 3]) - 0.3


def test_mean_pooling_matches_sentence_transformers(loaded):
    st = pytest.importorskip("sentence_transformers")
    texts = PARAPHRASES + UNRELATED
    reference = st.SentenceTransformer(str(minilm.model_dir()), device="cpu").encode(texts)
    np.testing.assert_allclose(minilm.embed(texts), reference, atol=1e-5)


def test_embed_refuses_bad_input_clearly(loaded):
    with pytest.raises(ValueError, match="empty"):
        minilm.embed([])
    with pytest.raises(TypeError, match=r"embed\(\[text\]\)"):
        minilm.embed("one string")
    with pytest.raises(TypeError, match="strings"):
        minilm.embed(["ok", 3])
    with pytest.raises(ValueError, match="max_length"):
        minilm.embed(["ok"], max_length=1000)


def test_classifier_features_are_what_the_head_reads():
    clf = minilm.MiniLMClassifier(3).train()
    ids, mask = minilm.tokenize(["numpy arrays", "plot a histogram of the data", "x"])
    feats = clf.features(ids, mask, batch_size=2)
    assert feats.shape == (3, 384) and clf.training and not feats.requires_grad
    clf.eval()
    with torch.no_grad():
        assert torch.allclose(clf.head(feats), clf(ids, mask), atol=1e-5)
