"""Chapter 6c's toy wav2vec 2.0: shapes, masking, the contrastive losses against a reference, checkpoints."""
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from ptm_lib.speech import wav2vec as W


def small():
    torch.manual_seed(0)
    return W.Wav2Vec(W.Wav2VecConfig(d_model=32, n_heads=2, proj_dim=16, n_codes=8))


def test_shapes_and_features():
    model = small()
    mel = torch.randn(3, 40, 101)
    z, c = model(mel)
    assert z.shape == c.shape == (3, 51, 32)
    assert model.features(mel).shape == (3, 64)
    with pytest.raises(ValueError, match="log-mel"):
        model(torch.randn(3, 20, 101))


def test_span_mask_covers_about_half_the_frames_in_spans():
    mask = W.span_mask(2000, 51, p_start=0.13, span=5, generator=torch.Generator().manual_seed(0))
    share = mask.float().mean().item()
    assert 0.4 < share < 0.6 and mask.any(1).all()
    # a masked frame whose left neighbour is unmasked starts a run of at least `span` frames (unless cut by the end)
    starts = mask[:, 1:-5] & ~mask[:, :-6]
    b, t = starts.nonzero(as_tuple=True)
    assert all(mask[i, j + 1: j + 6].all() for i, j in zip(b[:200].tolist(), t[:200].tolist()))


def test_info_nce_equals_a_written_out_reference():
    g = torch.Generator().manual_seed(1)
    pred, targets = torch.randn(6, 8, generator=g), torch.randn(6, 4, 8, generator=g)
    ref = 0.0
    for i in range(6):
        sims = [float(pred[i] @ targets[i, k] / (pred[i].norm() * targets[i, k].norm())) / 0.1 for k in range(4)]
        ref += -(sims[0] - math.log(sum(math.exp(s) for s in sims)))
    assert abs(W.info_nce(pred, targets, 0.1).item() - ref / 6) < 1e-4


def test_nt_xent_equals_a_written_out_reference():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    x = F.normalize(torch.cat([a, b]), dim=-1)
    ref = 0.0
    for i in range(8):
        partner = (i + 4) % 8
        logits = [float(x[i] @ x[j]) / 0.5 for j in range(8) if j != i]
        others = [j for j in range(8) if j != i]
        ref += -(logits[others.index(partner)] - math.log(sum(math.exp(v) for v in logits)))
    assert abs(W.nt_xent(a, b, 0.5).item() - ref / 8) < 1e-4


def test_both_objectives_give_finite_losses_and_gradients():
    model, mel = small(), torch.randn(4, 40, 101)
    for fn, kwargs in ((W.masked_contrastive_loss, {"targets": "quantized"}), (W.masked_contrastive_loss,
                       {"targets": "stopgrad"}), (W.utterance_contrastive_loss, {})):
        model.zero_grad()
        loss, stats = fn(model, mel, generator=torch.Generator().manual_seed(0), **kwargs)
        loss.backward()
        assert torch.isfinite(loss) and stats["contrastive"] > 0
        assert model.encoder.conv1.weight.grad.abs().sum() > 0
    # stop-gradient: the targets give the encoder no gradient of their own
    with pytest.raises(ValueError, match="targets"):
        W.masked_contrastive_loss(model, mel, targets="other")


def test_augment_keeps_shape_and_changes_the_clip():
    mel = torch.randn(5, 40, 101)
    view = W.augment(mel, torch.Generator().manual_seed(0))
    assert view.shape == mel.shape and torch.isfinite(view).all() and not torch.allclose(view, mel)


@pytest.mark.parametrize("name", sorted(W.SHIPPED_SHA256))
def test_shipped_checkpoints_load_with_their_pinned_hash_and_a_changed_file_is_refused(name, tmp_path):
    from ptm_lib.paths import data_dir

    model, meta = W.load_pretrained(name)
    assert meta["recipe"] == name and not model.training
    for suffix in (".json", ".safetensors"):
        shutil.copy(data_dir() / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    weights = tmp_path / f"{name}.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 1
    weights.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        W.load_pretrained(name, folder=tmp_path)


def test_every_recipe_has_a_pinned_checkpoint():
    assert set(W.SHIPPED_SHA256) == set(W.RECIPES)
