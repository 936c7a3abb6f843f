"""ptm_lib.trends.interpret: attention maps, integrated gradients (by hand and Captum), sanity checks, probes."""
import numpy as np
import pytest
import torch

from ptm_lib.nets.transformer import TransformerClassifier, TransformerConfig, TransformerLM
from ptm_lib.trends import interpret as I


def _clf(seed=0, n_layers=2):
    torch.manual_seed(seed)
    return TransformerClassifier(TransformerConfig(vocab_size=30, max_len=12, d_model=16, n_layers=n_layers,
                                                   n_heads=2, n_classes=3)).eval()


def _batch():
    ids = torch.tensor([[2, 7, 8, 9, 10, 11], [2, 12, 13, 14, 0, 0]])
    return ids, ids != 0


def test_attention_maps_match_the_reference_attention():
    model, (ids, mask) = _clf(), _batch()
    maps = I.attention_maps(model, ids, mask)
    assert maps.shape == (2, 2, 2, 6, 6)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 6))
    assert float(maps[:, 1, :, :, 4:].abs().max()) == 0.0               # no weight on padding
    # recompute the first layer by hand with plain_attention's formula
    x = model.body.tok_emb(ids) + model.body.pos_emb(torch.arange(6))
    blk = model.body.blocks[0]
    q, k, _ = blk.attn.qkv(blk.ln1(x)).view(2, 6, 3, 2, 8).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-2, -1) / 8 ** 0.5).masked_fill(~mask[:, None, None, :], float("-inf")).softmax(-1)
    torch.testing.assert_close(maps[0], w.detach())
    assert not model.training


def test_rollout_rows_are_distributions_and_one_layer_is_half_identity():
    model, (ids, mask) = _clf(n_layers=1), _batch()
    maps = I.attention_maps(model, ids, mask)
    roll = I.attention_rollout(maps)
    torch.testing.assert_close(roll, 0.5 * maps[0].mean(1) + 0.5 * torch.eye(6))
    roll2 = I.attention_rollout(I.attention_maps(_clf(), ids, mask))
    torch.testing.assert_close(roll2.sum(-1), torch.ones(2, 6))
    imp = I.attention_importance(roll2, mask)
    assert imp.shape == (2, 6) and float(imp[1, 4:].abs().sum()) == 0.0
    with pytest.raises(ValueError, match=r"\(L, B, H, T, T\)"):
        I.attention_rollout(maps[0])


def test_forward_from_embeddings_is_the_model():
    model, (ids, mask) = _clf(), _batch()
    torch.testing.assert_close(I.forward_from_embeddings(model, model.body.tok_emb(ids), mask), model(ids, mask))


def test_hand_ig_equals_captum_and_is_complete():
    model, (ids, mask) = _clf(), _batch()
    base = I.baseline_ids(ids, mask, 4)
    assert base[0].tolist() == [2, 4, 4, 4, 4, 4] and base[1].tolist() == [2, 4, 4, 4, 0, 0]
    target = torch.tensor([0, 2])
    hand = I.integrated_gradients(model, ids, mask, target, base, steps=16)
    cap, delta = I.captum_integrated_gradients(model, ids, mask, target, base, steps=16)
    torch.testing.assert_close(hand, cap, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        gap = (model(ids, mask) - model(base, mask)).gather(1, target[:, None])[:, 0]
    torch.testing.assert_close(cap.sum((1, 2)) - gap, delta, rtol=1e-3, atol=1e-5)
    _, delta_gl = I.captum_integrated_gradients(model, ids, mask, target, base, steps=32, method="gausslegendre")
    assert float(delta_gl.abs().max()) < 0.05 * float(gap.abs().max()) + 1e-4
    scores = I.token_scores(hand, mask)
    assert scores.shape == (2, 6) and float(scores[:, 0].abs().max()) == 0.0   # [CLS] = baseline: no attribution


def test_attribution_finds_the_token_a_hand_built_model_reads():
    """A 0-layer classifier that reads only whether token 9 is present: IG and saliency put all on it."""
    torch.manual_seed(0)
    model = TransformerClassifier(TransformerConfig(vocab_size=30, max_len=12, d_model=4, n_layers=0,
                                                    n_heads=1, n_classes=2)).eval()
    with torch.no_grad():
        model.body.tok_emb.weight.zero_()
        model.body.pos_emb.weight.zero_()
        model.body.tok_emb.weight[9, 0] = 5.0
        model.body.tok_emb.weight[9, 1] = -5.0
        model.head.weight.zero_()
        model.head.weight[1, 0] = 1.0
    ids, mask = _batch()
    base = I.baseline_ids(ids, mask, 4)
    ig = I.token_scores(I.integrated_gradients(model, ids, mask, 1, base, steps=8), mask)
    valid = mask.clone()
    valid[:, 0] = False
    decisive = ids == 9
    mass, chance = I.decisive_mass(ig, decisive, valid)
    assert mass.shape == (1,) and mass[0] == pytest.approx(1.0) and chance[0] == pytest.approx(0.2)


def test_saliency_is_the_gradient_norm():
    model, (ids, mask) = _clf(), _batch()
    sal = I.saliency(model, ids, mask, torch.tensor([1, 1]))
    emb = model.body.tok_emb(ids).detach().requires_grad_(True)
    I.forward_from_embeddings(model, emb, mask)[:, 1].sum().backward()
    torch.testing.assert_close(sal, emb.grad.norm(dim=-1) * mask)


def test_rank_correlation():
    a = torch.tensor([[0.0, 1, 2, 3], [3.0, 2, 1, 0]])
    valid = torch.tensor([[True, True, True, True], [True, True, True, False]])
    rho = I.rank_correlation(a, torch.tensor([[0.0, 2, 4, 6], [0.0, 1, 2, 9]]), valid)
    np.testing.assert_allclose(rho, [1.0, -1.0])
    assert np.isnan(I.rank_correlation(a, torch.ones(2, 4), valid)).all()


def test_randomize_cascades_from_the_top_and_leaves_the_model_alone():
    model = _clf()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r, names = I.randomize(model, 2, seed=1)
    assert names == ["head", "block 2"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    changed = {k for k, v in r.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("head.") for k in changed) and any(k.startswith("body.blocks.1.attn") for k in changed)
    assert not any(k.startswith(("body.blocks.0", "body.tok_emb")) for k in changed)
    full, names = I.randomize(model, 4)
    assert names[-1] == "embeddings" and not torch.equal(full.body.tok_emb.weight, model.body.tok_emb.weight)
    with pytest.raises(ValueError, match="n_stages"):
        I.randomize(model, 5)


def test_probes_read_a_property_written_into_the_embeddings():
    torch.manual_seed(0)
    lm = TransformerLM(TransformerConfig(vocab_size=40, max_len=8, d_model=16, n_layers=1, n_heads=2))
    with torch.no_grad():                          # property: id parity, written on dimension 0
        lm.body.tok_emb.weight[:, 0] = torch.tensor([3.0 if i % 2 else -3.0 for i in range(40)])
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (200, 8), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    labels = ids % 2
    test = torch.zeros_like(mask)
    test[150:] = True
    acc = I.probe_by_layer(lm, ids, mask, labels, ~test, test)
    assert list(acc) == ["embeddings", "layer 1"] and acc["embeddings"] > 0.95
    with pytest.raises(ValueError, match="both in train and test"):
        I.probe_by_layer(lm, ids, mask, labels, mask, test)


def test_bad_inputs():
    model, (ids, mask) = _clf(), _batch()
    with pytest.raises(TypeError, match="course transformer"):
        I.attention_maps(torch.nn.Linear(2, 2), ids, mask)
    with pytest.raises(ValueError, match="int64"):
        I.attention_maps(model, ids.float(), mask)
    with pytest.raises(ValueError, match="one class per sentence"):
        I.integrated_gradients(model, ids, mask, torch.tensor([0, 1, 2]), ids)
    with pytest.raises(ValueError, match="steps"):
        I.integrated_gradients(model, ids, mask, 0, ids, steps=1)
    with pytest.raises(ValueError, match="shaped like ids"):
        I.integrated_gradients(model, ids, mask, 0, ids[:, :3])
    with pytest.raises(ValueError, match="one shape"):
        I.decisive_mass(torch.ones(2, 3), torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool))
