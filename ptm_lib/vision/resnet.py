"""A small ResNet for the 8x8 digits: residual blocks with batch norm, the ImageNet recipe at toy size.

Read it like nanoGPT's ``model.py``: a config dataclass, one block, one model.

    ResNetConfig   width, blocks per stage, head sizes
    BasicBlock     conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the input (the residual), then ReLU
    ResNet         stem conv -> stages (each halves the image and doubles the channels) -> global
                   average pool = the *features* -> a classifier head and/or a SimCLR projection head

He et al. (CVPR 2016, *Deep Residual Learning*) built ResNet-18/34 from exactly this block, for
224x224 ImageNet photos; on 8x8 digits the stem keeps the resolution (no 7x7 stride-2 conv, no
max-pool) and two stages take 8x8 -> 4x4. The input is a batch of flattened digits (B, 64) or
images (B, 1, 8, 8) with pixels in [0, 1].

    model = ResNet(ResNetConfig(n_classes=10))
    logits = model(X)            # (B, 10)
    feats = model.features(X)    # (B, model.feature_dim): what a linear probe reads
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.registry import check_sizes, register


@dataclass
class ResNetConfig:
    in_channels: int = 1     # grey-level digits
    side: int = 8            # images are side x side
    width: int = 32          # channels of the first stage; each later stage doubles them
    blocks: tuple = (1, 1)   # residual blocks per stage; stage s > 0 starts with a stride-2 block
    n_classes: int = 10      # classifier head (0: none, e.g. a SimCLR encoder)
    proj_dim: int = 0        # SimCLR projection head output (0: none); its hidden width = feature_dim

    def __post_init__(self):
        self.blocks = tuple(self.blocks)   # a JSON list comes back as a list
        check_sizes(self, {"in_channels": 1, "side": 1, "width": 1, "n_classes": 0, "proj_dim": 0})
        if not self.blocks or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in self.blocks):
            raise ValueError(f"ResNetConfig.blocks must be a non-empty tuple of ints >= 1, got {self.blocks!r}")


class BasicBlock(nn.Module):
    """out = ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)); the shortcut is the identity, or a
    1x1 conv + BN when the block changes the number of channels or the resolution."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@register
class ResNet(nn.Module):
    """Digits (B, 64) or (B, 1, side, side) -> logits (B, n_classes), or projections (B, proj_dim)
    when there is no classifier head. `features(x)` gives the pooled features (B, feature_dim)."""

    arch = "resnet"
    config_class = ResNetConfig

    def __init__(self, config: ResNetConfig | None = None):
        super().__init__()
        self.config = c = config or ResNetConfig()
        self.stem = nn.Sequential(nn.Conv2d(c.in_channels, c.width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c.width), nn.ReLU())
        layers, width = [], c.width
        for s, n in enumerate(c.blocks):
            out = c.width * 2**s
            for b in range(n):
                layers.append(BasicBlock(width, out, stride=2 if (s > 0 and b == 0) else 1))
                width = out
        self.stages = nn.Sequential(*layers)
        self.feature_dim = width
        self.head = nn.Linear(width, c.n_classes) if c.n_classes else None
        self.projector = (nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, c.proj_dim))
                          if c.proj_dim else None)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"ResNet expects floating-point images, got {type(x).__name__} "
                            f"{getattr(x, 'dtype', '')}")
        x = x.to(self.stem[0].weight.dtype) if x.dtype != self.stem[0].weight.dtype else x   # e.g. float64 pixels
        if x.dim() in (2, 4) and len(x) == 0:
            raise ValueError("ResNet got an empty batch (0 images)")
        if x.dim() == 2 and x.shape[1] == c.in_channels * c.side**2:
            return x.reshape(len(x), c.in_channels, c.side, c.side)
        if x.dim() == 4 and tuple(x.shape[1:]) == (c.in_channels, c.side, c.side):
            return x
        raise ValueError(f"ResNet expects (B, {c.in_channels * c.side**2}) or (B, {c.in_channels}, {c.side}, "
                         f"{c.side}) images, got shape {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features of the last stage: (B, feature_dim)."""
        return self.stages(self.stem(self._images(x))).mean(dim=(2, 3))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """SimCLR's z = g(h): the projection head on the features (B, proj_dim)."""
        if self.projector is None:
            raise ValueError("this ResNet has no projection head (ResNetConfig.proj_dim = 0)")
        return self.projector(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is not None:
            return self.head(self.features(x))
        return self.project(x)


def encoder_state(model: ResNet) -> dict[str, torch.Tensor]:
    """The encoder's weights (stem and stages, batch-norm statistics included), without the heads."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(("stem.", "stages."))}


def with_new_head(encoder: ResNet, n_classes: int) -> ResNet:
    """A classifier ResNet with `encoder`'s stem and stages (copied) and a fresh head of `n_classes`:
    how a pretrained encoder starts fine-tuning."""
    c = encoder.config
    model = ResNet(ResNetConfig(c.in_channels, c.side, c.width, c.blocks, n_classes=n_classes, proj_dim=0))
    model.load_state_dict({**model.state_dict(), **{k: v.clone() for k, v in encoder_state(encoder).items()}})
    return model
