import pytest
import torch

from ptm_lib.nets.registry import ARCHITECTURES, build, config_from_dict, config_to_dict
from ptm_lib.nets.transformer import (EncoderDecoder, TransformerClassifier, TransformerConfig, TransformerLM,
                                      plain_attention, set_sdpa)

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
    # Kaplan et al.: 2 * block weights + 2 * n_layers * T * D + the LM head 2 * D * V, counted once
    blocks = sum(p.numel() for p in lm.body.blocks.parameters()) + sum(p.numel() for p in lm.body.ln_f.parameters())
    assert lm.num_params(non_embedding=True) == blocks
    assert lm.flops_per_token(seq_len=16) == 2 * blocks + 2 * 2 * 16 * 32 + 2 * 32 * V
    assert untied.flops_per_token(seq_len=16) == lm.flops_per_token(seq_len=16)   # an untied head is not counted twice


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
    again = build(lm.arch, config_to_dict(lm.config))
    again.load_state_dict(lm.state_dict())
    ids = rand_ids()
    with torch.no_grad():
        assert torch.equal(lm.eval()(ids), again.eval()(ids))
    with pytest.raises(ValueError, match="nope"):
        build("nope", config_to_dict(lm.config))
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="pooling"):
        TransformerConfig(vocab_size=10, pooling="max")
    with pytest.raises(ValueError, match="bogus"):
        config_from_dict(TransformerConfig, {"vocab_size": 10, "bogus": 1})
    with pytest.raises(ValueError, match="n_classes"):
        TransformerClassifier(cfg(n_classes=0))
    with pytest.raises(ValueError, match="max_len"):
        lm(rand_ids(1, 17))                          # longer than max_len


def test_bad_inputs_give_clear_errors():
    lm = TransformerLM(cfg())
    with pytest.raises(ValueError, match="empty batch"):
        lm(torch.zeros(0, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        lm(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 50\)"):
        lm(torch.full((1, 3), V))
    with pytest.raises(ValueError, match="shape"):
        lm(rand_ids(2, 5), torch.ones(2, 4, dtype=torch.bool))


def test_float_01_mask_is_converted_and_an_additive_bias_refused():
    torch.manual_seed(0)
    lm = TransformerLM(cfg()).eval()
    ids = rand_ids(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[0, 5:] = False
    with torch.no_grad():
        ref = lm(ids, mask)
        assert torch.allclose(lm(ids, mask.float()), ref) and torch.allclose(lm(ids, mask.long()), ref)
        bias = torch.zeros(2, 8).masked_fill(~mask, float("-inf"))
        with pytest.raises(ValueError, match="additive"):
            lm(ids, bias)


@pytest.mark.parametrize("sdpa", [True, False])
def test_a_row_without_real_tokens_gives_no_nan(sdpa):
    set_sdpa(sdpa)
    torch.manual_seed(0)
    clf = TransformerClassifier(cfg(n_classes=3)).eval()
    ids = rand_ids(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1] = False
    with torch.no_grad():
        out = clf(ids, mask)
        alone = clf(ids[:1], mask[:1])
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], alone[0], atol=1e-5)          # the empty row does not leak into others


def test_plain_attention_drops_weights_like_sdpa():
    q = k = v = torch.randn(2, 2, 5, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    out = plain_attention(q, k, v, dropout_p=0.5)
    torch.manual_seed(1)
    weights = torch.nn.functional.dropout((q @ k.transpose(-2, -1) / 2).softmax(-1), 0.5)
    assert torch.allclose(out, weights @ v)                       # dropout on the weights, not the output


def test_trace_lists_every_stage_and_ends_at_forward():
    torch.manual_seed(0)
    lm = TransformerLM(cfg()).eval()
    ids = rand_ids(3, 9)
    stages = lm.trace(ids)
    assert list(stages)[:2] == ["token embeddings W_E[x]", "position embeddings W_P[0:T]"]
    assert [k for k in stages if k.startswith("block")] == ["block 1", "block 2"]
    assert stages["position embeddings W_P[0:T]"].shape == (9, 32)
    assert torch.allclose(stages["LM head: logits Z"], lm(ids), atol=1e-6)


def test_generate_runs_in_eval_mode_and_restores_it():
    torch.manual_seed(0)
    dec = TransformerLM(cfg(causal=True, dropout=0.5)).train()
    ids = rand_ids(2, 3)
    a = dec.generate(ids, 4, greedy=True)
    b = dec.generate(ids, 4, greedy=True)
    assert a.shape == (2, 7) and torch.equal(a, b)      # no dropout while generating: deterministic
    assert dec.training                                 # the caller's mode is restored
    with pytest.raises(RuntimeError, match="causal"):
        TransformerLM(cfg()).generate(rand_ids(1, 3), 2)
    ed = EncoderDecoder(cfg(dropout=0.5)).train()
    out = ed.generate(rand_ids(2, 5), bos_id=2, max_new_tokens=3)
    assert out.shape == (2, 4) and torch.equal(out, ed.generate(rand_ids(2, 5), bos_id=2, max_new_tokens=3))
    assert ed.training


def test_tiny_lm_overfits_a_batch():
    torch.manual_seed(0)
    lm = TransformerLM(cfg(causal=True, d_model=16, n_layers=1))
    ids = rand_ids(4, 12)
    opt = torch.optim.AdamW(lm.parameters(), lr=1e-2)
    from ptm_lib.text.objectives import clm_loss
    first = None
    for _ in range(40):
        loss = clm_loss(lm(ids), ids)
        first = first if first is not None else loss.item()
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.5 * first
