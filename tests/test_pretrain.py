import math

import pytest
import torch

from ptm_lib import pretrain
from ptm_lib.checkpoint import read_config, save_checkpoint
from ptm_lib.text import LanguageConfig


@pytest.mark.parametrize("objective", ["mlm", "clm", "denoise"])
def test_pretrain_reduces_loss_with_each_objective(lang, tok, objective):
    ids, mask = pretrain.corpus_tensors(lang, tok, 256, seed=1, max_len=32)
    torch.manual_seed(0)
    model = pretrain.build_model(objective, len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    hist = pretrain.pretrain(model, ids, mask, tok, objective=objective, steps=30, batch_size=32, lr=1e-2,
                             warmup=3, mask_p=0.3, device="cpu", progress=False, live=False)
    assert len(hist.loss) == 30
    assert sum(hist.loss[-5:]) / 5 < sum(hist.loss[:5]) / 5 - 0.5


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
    d = pretrain.mlm_diagnostics(model, tok, lang)
    chance = 1 / lang.n_topics
    assert abs(d["purity"] - chance) < 0.06 and d["cloze_topic"] < 0.4
    decoder = pretrain.build_model("clm", len(tok), d_model=32, n_heads=4, n_layers=1, max_len=32)
    assert math.isnan(pretrain.mlm_diagnostics(decoder, tok, lang)["cloze_topic"])


def test_load_pretrained_rebuilds_model_tokenizer_and_language(tmp_path, lang, tok, monkeypatch):
    model = pretrain.build_model("mlm", len(tok), d_model=16, n_heads=2, n_layers=1, max_len=32)
    save_checkpoint(model, tmp_path / "tiny", meta={"language": {**LanguageConfig().__dict__}})
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
    from ptm_lib.report import repo_root

    model, tok, lang, meta = pretrain.load_pretrained("mini_bert")  # checks the pinned sha256
    assert pretrain.SHIPPED_SHA256["mini_bert"] in (repo_root() / "data" / "README.md").read_text()
    assert meta["recipe"] == "mini_bert" and meta["steps"] == pretrain.RECIPES["mini_bert"]["steps"]
    d = pretrain.mlm_diagnostics(model, tok, lang)
    assert d["purity"] >= pretrain.MLM_LEARNED_PURITY and d["cloze_topic"] >= 0.8
    assert abs(d["purity"] - meta["diagnostics"]["purity"]) < 1e-6
