"""ptm_lib.lstm: shapes, padding, the autoencoder objective, encoder transfer, checkpoints."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import math

from ptm_lib.checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from ptm_lib.evaluate import accuracy
from ptm_lib.nets import lstm
from ptm_lib.nets.registry import ARCHITECTURES, build
from ptm_lib.text import SyntheticLanguage, WordTokenizer
from ptm_lib.train import classification_loss, fit

V, B, T = 30, 3, 6


def _cfg(**kw):
    return lstm.LSTMConfig(**{"vocab_size": V, "emb_dim": 8, "hidden_dim": 12, **kw})


def _batch():
    torch.manual_seed(0)
    ids = torch.randint(5, V, (B, T))
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False                    # lengths 6, 4, 2
    mask[2, 2:] = False
    return ids.masked_fill(~mask, 0), mask


def test_shapes():
    ids, mask = _batch()
    ae = lstm.SequenceAutoencoder(_cfg(n_layers=2))
    out, (h, c) = ae.encoder(ids, mask)
    assert out.shape == (B, T, 12) and h.shape == c.shape == (2, B, 12)
    assert ae(ids, mask).shape == (B, T, V)
    assert ae.next_token_logits(ids, mask).shape == (B, T, V)
    clf = lstm.LSTMClassifier(_cfg(n_classes=4))
    assert clf(ids, mask).shape == (B, 4)
    for pooling in ("mean", "max"):
        assert lstm.LSTMClassifier(_cfg(n_classes=4, pooling=pooling))(ids, mask).shape == (B, 4)
    with pytest.raises(ValueError, match="pooling"):
        _cfg(pooling="cls")
    with pytest.raises(ValueError, match="n_classes"):
        lstm.LSTMClassifier(_cfg())
    with pytest.raises(TypeError, match=r"\(h, c\)"):
        ae.decoder(ids, h)                 # the essay's bug: h alone is not an LSTM state


def test_padding_does_not_change_the_encoding():
    ids, mask = _batch()
    enc = lstm.LSTMEncoder(_cfg()).eval()
    out, (h, _) = enc(ids, mask)
    garbage = ids.masked_fill(~mask, 7)    # other tokens at the padded positions
    out2, (h2, _) = enc(garbage, mask)
    torch.testing.assert_close(h, h2)
    torch.testing.assert_close(out, out2)
    assert out[~mask].abs().max() == 0
    alone, (h_alone, _) = enc(ids[2:3, :2], mask[2:3, :2])   # the short sentence without padding
    torch.testing.assert_close(h_alone[:, 0], h[:, 2])
    clf = lstm.LSTMClassifier(_cfg(n_classes=3)).eval()
    torch.testing.assert_close(clf(ids, mask), clf(garbage, mask))


def test_autoencoder_loss_ignores_padding():
    ids, mask = _batch()
    ae = lstm.SequenceAutoencoder(_cfg())
    loss = lstm.autoencoder_loss(ae, (ids, mask))
    loss_garbage = lstm.autoencoder_loss(ae, (ids.masked_fill(~mask, 7), mask, torch.zeros(B)))
    torch.testing.assert_close(loss, loss_garbage)
    logits = ae(ids, mask)
    manual = torch.nn.functional.cross_entropy(logits[mask], ids[mask])
    torch.testing.assert_close(loss, manual)
    lm_loss = lstm.language_model_loss(ae, (ids, mask))
    torch.testing.assert_close(lm_loss, lstm.language_model_loss(ae, (ids.masked_fill(~mask, 7), mask)))


def test_decoder_input_is_the_shifted_text():
    ids, _ = _batch()
    shifted = lstm.shift_right(ids, bos_id=2)
    assert (shifted[:, 0] == 2).all() and torch.equal(shifted[:, 1:], ids[:, :-1])


@pytest.mark.parametrize("loss_fn", [lstm.autoencoder_loss, lstm.language_model_loss])
def test_loss_falls_on_a_tiny_batch(loss_fn):
    torch.manual_seed(0)
    ids, mask = _batch()
    ae = lstm.SequenceAutoencoder(_cfg())
    h = fit(ae, loss_fn, [(ids, mask)], steps=30, lr=1e-2, progress=False, live=False, device="cpu")
    assert h.loss[-1] < 0.7 * h.loss[0]


def test_classifier_loads_the_pretrained_encoder():
    ae = lstm.SequenceAutoencoder(_cfg())
    clf = lstm.LSTMClassifier.from_autoencoder(ae, n_classes=5)
    assert clf.config.n_classes == 5 and clf.config.hidden_dim == 12
    for name, p in ae.encoder.state_dict().items():
        assert torch.equal(p, clf.encoder.state_dict()[name]), name
    clf.encoder.embedding.weight.data.add_(1.0)                      # a copy, not shared
    assert not torch.equal(clf.encoder.embedding.weight, ae.encoder.embedding.weight)
    ids, mask = _batch()
    y = torch.tensor([0, 4, 2])
    h = fit(clf, classification_loss, [(ids, mask, y)], steps=40, lr=1e-2, progress=False,
            live=False, device="cpu")
    assert h.loss[-1] < 0.5 * h.loss[0]
    assert accuracy(clf, (ids, mask), y) == 1.0


def test_tied_embeddings_are_shared_and_untied_are_not():
    tied = lstm.SequenceAutoencoder(_cfg())
    assert tied.decoder.embedding is tied.encoder.embedding
    untied = lstm.SequenceAutoencoder(_cfg(tie_embeddings=False))
    assert untied.decoder.embedding is not untied.encoder.embedding


@pytest.mark.parametrize("tie", [True, False])
def test_checkpoint_round_trip(tmp_path, tie):
    assert ARCHITECTURES["lstm-seq-autoencoder"] is lstm.SequenceAutoencoder
    ids, mask = _batch()
    ae = lstm.SequenceAutoencoder(_cfg(tie_embeddings=tie)).eval()
    save_checkpoint(ae, tmp_path / "ae")
    again = load_checkpoint(tmp_path / "ae").eval()
    assert type(again) is lstm.SequenceAutoencoder and again.config == ae.config
    assert torch.equal(again(ids, mask), ae(ids, mask))
    if tie:
        assert again.decoder.embedding is again.encoder.embedding
    clf = lstm.LSTMClassifier.from_autoencoder(ae, n_classes=3).eval()
    save_checkpoint(clf, tmp_path / "clf")
    loaded = load_checkpoint(tmp_path / "clf")
    assert torch.equal(loaded(ids, mask), clf(ids, mask))
    with pytest.raises(CheckpointMismatchError):
        load_checkpoint(tmp_path / "clf", lstm.SequenceAutoencoder(_cfg()))
    assert isinstance(build("lstm-classifier", {**vars(_cfg()), "n_classes": 2}), lstm.LSTMClassifier)


def test_works_with_the_course_tokenizer():
    lang = SyntheticLanguage()
    tok = WordTokenizer.from_language(lang)
    ids, mask = tok.encode_batch(lang.corpus(8, seed=0), max_len=32)
    ae = lstm.SequenceAutoencoder(lstm.LSTMConfig(vocab_size=len(tok), emb_dim=8, hidden_dim=8,
                                                  pad_id=tok.pad_id, bos_id=tok.cls_id))
    loader = DataLoader(TensorDataset(ids, mask), batch_size=4)
    h = fit(ae, lstm.autoencoder_loss, loader, steps=2, progress=False, live=False, device="cpu")
    assert len(h.loss) == 2 and all(math.isfinite(v) for v in h.loss)
    assert abs(h.loss[0] - math.log(len(tok))) < 1.0        # a fresh model is close to a uniform guess
