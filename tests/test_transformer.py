import pytest
import torch

from ptm_lib.models import ARCHITECTURES, build
from ptm_lib.transformer import (EncoderDecoder, TransformerClassifier, TransformerConfig, TransformerLM,
                                 set_sdpa)

V = 50


def cfg(**kw):
    base = dict(vocab_size=V, max_len=16, d_model=32, n_layers=2, n_heads=4)
    base.update(kw)
    return TransformerConfig(**base)


def rand_ids(B=3, T=10, seed=0):
    return torch.randint(5, V, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _sdpa_on():
    set_sdpa(True)
    yield
    set_sdpa(True)


def test_shapes_and_attributes():
    torch.manual_seed(0)
    lm = TransformerLM(cfg())
    ids = rand_ids()
    assert lm(ids).shape == (3, 10, V)
    assert lm.encode(ids).shape == (3, 10, 32)
    assert lm.arch == "transformer_lm" and isinstance(lm.config, TransformerConfig)
    clf = TransformerClassifier(cfg(n_classes=6))
    assert clf(ids).shape == (3, 6) and clf.features(ids).shape == (3, 32)
    ed = EncoderDecoder(cfg())
    assert ed(ids, rand_ids(3, 7, 1)).shape == (3, 7, V)
    assert {m.arch for m in (lm, clf, ed)} <= set(ARCHITECTURES)


def test_tied_head_and_param_count():
    lm = TransformerLM(cfg())
    assert lm.lm_head.weight is lm.body.tok_emb.weight
    untied = TransformerLM(cfg(tie_weights=False))
    assert untied.num_params() == lm.num_params() + V * 32
    assert lm.num_params(non_embedding=True) < lm.num_params()
    assert lm.flops_per_token(training=True) == 3 * lm.flops_per_token()
    assert lm.flops_per_token(seq_len=16) > 2 * lm.num_params(non_embedding=True)


def test_causal_mask_is_causal():
    torch.manual_seed(0)
    dec = TransformerLM(cfg(causal=True)).eval()
    ids = rand_ids(2, 10)
    ids2 = ids.clone()
    ids2[:, 6] = (ids2[:, 6] + 1 - 5) % (V - 5) + 5      # change a "future" token
    with torch.no_grad():
        a, b = dec(ids), dec(ids2)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-4)
    # an encoder, by contrast, lets every position see the change
    enc = TransformerLM(cfg(causal=False)).eval()
    with torch.no_grad():
        assert not torch.allclose(enc(ids)[:, :6], enc(ids2)[:, :6], atol=1e-4)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_equals_plain_attention(causal):
    torch.manual_seed(0)
    lm = TransformerLM(cfg(causal=causal)).eval()
    ids = rand_ids(3, 9)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 6:] = False
    with torch.no_grad():
        fast = lm(ids, mask)
        set_sdpa(False)
        slow = lm(ids, mask)
    assert torch.allclose(fast, slow, atol=1e-5)


def test_encoder_decoder_sdpa_equals_plain():
    torch.manual_seed(0)
    ed = EncoderDecoder(cfg()).eval()
    src, tgt = rand_ids(2, 8), rand_ids(2, 5, 1)
    sm = torch.ones_like(src, dtype=torch.bool)
    sm[1, 5:] = False
    with torch.no_grad():
        fast = ed(src, tgt, sm)
        set_sdpa(False)
        slow = ed(src, tgt, sm)
    assert torch.allclose(fast, slow, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_padding_does_not_change_real_tokens(causal):
    torch.manual_seed(0)
    lm = TransformerLM(cfg(causal=causal)).eval()
    ids = rand_ids(1, 7)
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], 1).bool()
    with torch.no_grad():
        a = lm(ids)
        b = lm(padded, mask)
    assert torch.allclose(a, b[:, :7], atol=1e-5)
    # without the mask, the encoder's outputs WOULD change (the pads are attended to)
    if not causal:
        with torch.no_grad():
            assert not torch.allclose(a, lm(padded)[:, :7], atol=1e-4)


def test_classifier_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    clf = TransformerClassifier(cfg(n_classes=3)).eval()
    ids = rand_ids(1, 6)
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = padded != 0
    with torch.no_grad():
        assert torch.allclose(clf(ids), clf(padded, mask), atol=1e-5)
    cls = TransformerClassifier(cfg(n_classes=3, pooling="cls")).eval()
    with torch.no_grad():
        assert torch.allclose(cls.features(ids), cls.body(ids)[:, 0])


def test_classifier_from_lm_copies_body_and_freezes():
    torch.manual_seed(0)
    lm = TransformerLM(cfg())
    clf = TransformerClassifier.from_lm(lm, n_classes=4)
    for (n1, p1), (n2, p2) in zip(lm.body.named_parameters(), clf.body.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2) and p1 is not p2
    clf.freeze_body()
    assert all(not p.requires_grad for p in clf.body.parameters())
    assert all(p.requires_grad for p in clf.head.parameters())
    ed = EncoderDecoder(cfg())
    clf.load_body_from(ed)                           # an encoder-decoder's encoder transfers too
    assert torch.equal(clf.body.tok_emb.weight, ed.encoder.tok_emb.weight)


def test_build_model_and_config_validation():
    lm = TransformerLM(cfg())
    again = build(lm.arch, lm.config.to_dict())
    again.load_state_dict(lm.state_dict())
    ids = rand_ids()
    with torch.no_grad():
        assert torch.equal(lm.eval()(ids), again.eval()(ids))
    with pytest.raises(KeyError):
        build("nope", lm.config)
    with pytest.raises(ValueError):
        TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError):
        TransformerConfig(vocab_size=10, pooling="max")
    with pytest.raises(ValueError):
        TransformerConfig.from_dict({"vocab_size": 10, "bogus": 1})
    with pytest.raises(ValueError):
        TransformerClassifier(cfg(n_classes=0))
    with pytest.raises(ValueError):
        lm(rand_ids(1, 17))                          # longer than max_len


def test_generate():
    torch.manual_seed(0)
    dec = TransformerLM(cfg(causal=True)).eval()
    out = dec.generate(rand_ids(2, 3), 4, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 7)
    with pytest.raises(RuntimeError):
        TransformerLM(cfg()).generate(rand_ids(1, 3), 2)
    ed = EncoderDecoder(cfg()).eval()
    assert ed.generate(rand_ids(2, 5), bos_id=2, max_new_tokens=3).shape == (2, 4)


def test_tiny_lm_overfits_a_batch():
    torch.manual_seed(0)
    lm = TransformerLM(cfg(causal=True, d_model=16, n_layers=1))
    ids = rand_ids(4, 12)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    from ptm_lib.objectives import clm_loss
    first = None
    for _ in range(40):
        loss = clm_loss(lm(ids), ids)
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.5 * first
