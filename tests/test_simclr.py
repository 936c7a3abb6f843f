"""SimCLR: the NT-Xent loss against its formula, augmentations, pretraining, the shipped checkpoint."""
import math

import pytest
import torch
import torch.nn.functional as F

from ptm_lib.data import sha256_file
from ptm_lib.paths import data_dir
from ptm_lib.vision import simclr
from ptm_lib.vision.resnet import ResNet, ResNetConfig


def test_nt_xent_equals_the_formula_and_cross_entropy():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    loss = simclr.nt_xent(z1, z2, temperature=0.3)
    assert loss.item() == pytest.approx(simclr.nt_xent_reference(z1, z2, 0.3).item(), abs=1e-5)
    # by hand: view 0's partner is view 6; the candidates are all views but itself
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    s = z @ z.T / 0.3
    row0 = -(s[0, 6] - torch.logsumexp(s[0, 1:], 0))
    per_view = torch.stack([-(s[i, (i + 6) % 12] - torch.logsumexp(torch.cat([s[i, :i], s[i, i + 1:]]), 0))
                            for i in range(12)])
    assert per_view[0].item() == pytest.approx(row0.item(), abs=1e-6)
    assert loss.item() == pytest.approx(per_view.mean().item(), abs=1e-5)
    # identical, well separated views: the loss goes to 0; random views: about log(2N - 1)
    eye = torch.eye(6) * 10
    assert simclr.nt_xent(eye, eye, 0.05).item() < 1e-3
    assert simclr.nt_xent(torch.randn(256, 128), torch.randn(256, 128), 10.0).item() == pytest.approx(math.log(511), abs=0.01)
    with pytest.raises(ValueError, match="temperature"):
        simclr.nt_xent(z1, z2, 0.0)


def test_augment_is_reproducible_bounded_and_the_identity_at_strength_0():
    x = torch.rand(16, 64)
    a = simclr.augment(x, 1.0, torch.Generator().manual_seed(1))
    b = simclr.augment(x, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, simclr.augment(x, 1.0, torch.Generator().manual_seed(2)))
    assert torch.equal(simclr.augment(x, 0.0), x)
    with pytest.raises(ValueError, match="strength"):
        simclr.augment(x, -1.0)


def test_pretraining_lowers_the_loss():
    from ptm_lib.vision.digits import load_digits

    torch.manual_seed(0)
    X = load_digits().X_train[:128]
    model = ResNet(ResNetConfig(width=8, n_classes=0, proj_dim=16))
    hist = simclr.pretrain(model, X, steps=30, batch_size=32, lr=1e-2, warmup=3, strength=0.5, device="cpu",
                           progress=False, live=False)
    assert sum(hist.loss[-5:]) / 5 < sum(hist.loss[:5]) / 5 - 0.5   # measured 3.96 -> 2.79
    with pytest.raises(ValueError, match="projection head"):
        simclr.pretrain(ResNet(ResNetConfig(width=8)), X, steps=1)


def test_train_classifier_fits_a_few_labels():
    from ptm_lib.vision.digits import load_digits
    s = load_digits()
    torch.manual_seed(0)
    model = simclr.train_classifier(ResNet(ResNetConfig(width=8)), s.X_train[:50], s.y_train[:50], steps=40,
                                    lr=1e-2, strength=0.5)
    assert not model.training
    assert (model(s.X_train[:50]).argmax(1) == s.y_train[:50]).float().mean() > 0.6


@pytest.mark.parametrize("name", sorted(simclr.SHIPPED_SHA256))
def test_shipped_checkpoints_match_their_pinned_hash(name):
    path = data_dir() / f"{name}.safetensors"
    assert sha256_file(path) == simclr.SHIPPED_SHA256[name]
    model, meta = simclr.load_pretrained(name)
    assert isinstance(model, ResNet) and model.projector is not None and model.head is None
    assert meta["recipe"] == name and meta["command"].startswith("python -m ptm_lib.vision.simclr")
    assert meta["curve"]["loss"][-1] < meta["curve"]["loss"][0]


def test_every_recipe_is_shipped_and_pinned():
    assert set(simclr.SHIPPED_SHA256) == set(simclr.RECIPES)
    with pytest.raises(FileNotFoundError, match="python -m ptm_lib.vision.simclr"):
        simclr.load_pretrained("simclr_digits", folder=data_dir() / "no-such-folder")
