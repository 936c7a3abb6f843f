"""The small ResNet of chapter 6b: shapes, residual blocks, heads, checkpoints."""
import pytest
import torch

from ptm_lib.checkpoint import load_checkpoint, save_checkpoint
from ptm_lib.vision.resnet import BasicBlock, ResNet, ResNetConfig, encoder_state, with_new_head


def test_shapes_of_logits_features_and_projections():
    torch.manual_seed(0)
    x = torch.rand(5, 64)
    model = ResNet(ResNetConfig(width=8, blocks=(1, 1), n_classes=10))
    assert model(x).shape == (5, 10)
    assert model(x.reshape(5, 1, 8, 8)).shape == (5, 10)
    assert model.features(x).shape == (5, 16) == (5, model.feature_dim)   # two stages: 8 -> 16 channels
    encoder = ResNet(ResNetConfig(width=8, n_classes=0, proj_dim=12))
    assert encoder(x).shape == encoder.project(x).shape == (5, 12)
    with pytest.raises(ValueError, match="no projection head"):
        model.project(x)
    with pytest.raises(ValueError, match="expects"):
        model(torch.rand(5, 63))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(5, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="blocks"):
        ResNetConfig(blocks=())


def test_a_block_adds_its_input_back():
    block = BasicBlock(4, 4).eval()
    for m in (block.bn2,):          # make the residual branch output exactly zero
        torch.nn.init.zeros_(m.weight)
    x = torch.rand(2, 4, 8, 8)
    assert torch.allclose(block(x), torch.relu(x))
    assert BasicBlock(4, 8, stride=2)(x).shape == (2, 8, 4, 4)   # a 1x1 conv shortcut when shapes change


def test_new_head_keeps_the_encoder_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    encoder = ResNet(ResNetConfig(width=8, n_classes=0, proj_dim=12)).eval()
    clf = with_new_head(encoder, 5).eval()
    x = torch.rand(3, 64)
    assert torch.equal(clf.features(x), encoder.features(x))
    assert clf(x).shape == (3, 5) and clf.projector is None
    assert set(encoder_state(encoder)) == set(encoder_state(clf))
    save_checkpoint(encoder, tmp_path / "enc")
    loaded = load_checkpoint(tmp_path / "enc").eval()
    assert isinstance(loaded, ResNet) and loaded.config == encoder.config
    assert torch.equal(loaded(x), encoder(x))
