import math

import pytest
import torch

from ptm_lib.checkpoint import read_config, save_checkpoint
from ptm_lib.nets.registry import config_to_dict
from ptm_lib.text import LanguageConfig, pretrain
from ptm_lib.text.diagnostics import embedding_topic_purity, mlm_diagnostics, topic_cloze_accuracy


@pytest.mark.parametrize("objective", ["mlm", "clm", "denoise"])
def test_pretrain_reduces_loss_with_each_objective(lang, tok, objective):
    ids, mask = pretrain.corpus_tensors(lang, tok, 256, seed=1, max_len=32)
    torch.manual_seed(0)
    model = pretrain.build_model(objective, len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    hist = pretrain.pretrain(model, ids, mask, tok, objective=objective, steps=30, batch_size=32, lr=1e-2,
                             warmup=3, mask_p=0.3, device="cpu", progress=False, live=False)
    assert len(hist.loss) == 30
    assert sum(hist.loss[-5:]) / 5 < sum(hist.loss[:5]) / 5 - 0.5


def test_mlm_objective_feeds_the_masked_ids_never_the_originals(lang, tok):
    """A label leak (the encoder reading the unmasked ids) would make MLM trivial: the encoder
    must see [MASK] (or a random/kept word) exactly at the positions the loss scores."""
    ids, mask = pretrain.corpus_tensors(lang, tok, 64, seed=1, max_len=32)
    model = pretrain.build_model("mlm", len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    seen = []
    encode = model.encode
    model.encode = lambda inputs, attention_mask=None: seen.append(inputs.clone()) or encode(inputs, attention_mask)
    loss = pretrain.objective_loss("mlm", tok, mask_p=0.5, generator=torch.Generator().manual_seed(0))(model, (ids, mask))
    assert loss.ndim == 0 and len(seen) == 1
    T = seen[0].shape[1]
    changed = seen[0] != ids[:, :T]
    assert changed.float().mean() > 0.2                      # about 0.5 * (80 % + 10 %) of the real tokens
    assert (seen[0][changed] == tok.mask_id).float().mean() > 0.7


def test_objective_checks_model_direction(lang, tok):
    ids, mask = pretrain.corpus_tensors(lang, tok, 8, seed=1, max_len=32)
    decoder = pretrain.build_model("clm", len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    encoder = pretrain.build_model("mlm", len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    with pytest.raises(ValueError, match="MLM needs a bidirectional model"):
        pretrain.objective_loss("mlm", tok)(decoder, (ids, mask))
    with pytest.raises(ValueError, match="CLM needs a causal model"):
        pretrain.objective_loss("clm", tok)(encoder, (ids, mask))
    with pytest.raises(ValueError, match="objective must be"):
        pretrain.objective_loss("gan", tok)


def test_diagnostics_of_a_random_model_are_at_chance(lang, tok):
    torch.manual_seed(0)
    model = pretrain.build_model("mlm", len(tok), d_model=32, n_heads=4, n_layers=1, max_len=32)
    d = mlm_diagnostics(model, tok, lang)
    chance = 1 / lang.n_topics
    assert abs(d["purity"] - chance) < 0.06 and abs(d["cloze_topic"] - chance) < 0.1
    decoder = pretrain.build_model("clm", len(tok), d_model=32, n_heads=4, n_layers=1, max_len=32)
    assert math.isnan(mlm_diagnostics(decoder, tok, lang)["cloze_topic"])
    model.train()
    topic_cloze_accuracy(model, tok, lang, n_sentences=20)
    assert model.training                                     # the caller's mode is restored


def test_embedding_topic_purity_separates_random_from_perfect(lang, tok):
    d = 16
    rnd = torch.randn(len(tok), d, generator=torch.Generator().manual_seed(0))
    assert abs(embedding_topic_purity(rnd, tok, lang) - 1 / lang.n_topics) < 0.05
    perfect = torch.zeros(len(tok), d)
    for w, t in lang.topic_of.items():
        perfect[tok.index[w], t] = 1.0
    perfect += 0.01 * rnd
    assert embedding_topic_purity(perfect, tok, lang) > 0.99
    with pytest.raises(ValueError, match="vocab_size"):
        embedding_topic_purity(torch.zeros(3, 4), tok, lang)


def test_load_pretrained_rebuilds_model_tokenizer_and_language(tmp_path, lang, tok, monkeypatch):
    model = pretrain.build_model("mlm", len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    save_checkpoint(model, tmp_path / "tiny", meta={"language": config_to_dict(LanguageConfig())})
    digest = read_config(tmp_path / "tiny")["weights_sha256"]
    monkeypatch.setitem(pretrain.SHIPPED_SHA256, "tiny", digest)
    loaded, tok2, lang2, meta = pretrain.load_pretrained("tiny", tmp_path)
    assert tok2.vocab_size == tok.vocab_size and lang2.config == lang.config
    ids, mask = pretrain.corpus_tensors(lang, tok, 4, seed=0, max_len=32)
    assert torch.equal(loaded.eval()(ids, mask), model.eval()(ids, mask))
    monkeypatch.setitem(pretrain.SHIPPED_SHA256, "tiny", "0" * 64)
    with pytest.raises(ValueError, match="pinned hash"):
        pretrain.load_pretrained("tiny", tmp_path)
    with pytest.raises(FileNotFoundError, match="make pretrain"):
        pretrain.load_pretrained("missing", tmp_path)


def test_shipped_checkpoint_is_pinned_and_learned_topics():
    """data/mini_bert: sha256 pinned in code and data/README.md; its encoder passes `mlm_learned`."""
    from ptm_lib.paths import data_dir

    model, tok, lang, meta = pretrain.load_pretrained("mini_bert")  # checks the pinned sha256
    assert pretrain.SHIPPED_SHA256["mini_bert"] in (data_dir() / "README.md").read_text()
    assert meta["recipe"] == "mini_bert" and meta["steps"] == pretrain.RECIPES["mini_bert"]["steps"]
    d = mlm_diagnostics(model, tok, lang)
    assert d["purity"] >= pretrain.MLM_LEARNED_PURITY and d["cloze_topic"] >= 0.8
    assert abs(d["purity"] - meta["diagnostics"]["purity"]) < 1e-6
