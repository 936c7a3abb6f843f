"""SimCLR on the 8x8 digits: augmentations, the NT-Xent (InfoNCE) loss, pretraining, and the shipped checkpoints.

    python -m ptm_lib.vision.simclr --name simclr_digits --out data/     # re-creates the shipped encoder

SimCLR (Chen et al., ICML 2020) learns features from unlabelled images alone: two random
augmentations ("views") of each image go through the same encoder f and projection head g; the
loss asks each view to pick out its partner among the 2N - 1 other views of the batch. With
z_i = g(f(view_i)) / ||g(f(view_i))|| and sim(i, k) = z_i . z_k / tau,

    loss_i = -log  exp(sim(i, p(i))) / sum_{k != i} exp(sim(i, k))

where p(i) is the other view of the same image: a softmax cross-entropy over the 2N - 1
candidates with the partner as the "label" (NT-Xent = normalised temperature-scaled
cross-entropy; InfoNCE, van den Oord et al. 2018). `nt_xent` computes it with one
`F.cross_entropy` on the similarity matrix; `nt_xent_reference` with an explicit loop over rows.

    augment(X, strength, generator)   random zoom/rotation/shear/shift, stroke thickness, contrast, cut-out, noise
    nt_xent(z1, z2, temperature)      the loss (mean over the 2N views)
    pretrain(model, X, steps=...)     SimCLR through the course's training loop `fit`
    train_classifier(model, X, y, ...)supervised training with augmentation (scratch CNN or fine-tuning)
    load_pretrained(name)             the shipped encoder, its sha256 checked (pinned in SHIPPED_SHA256)
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..train import History, check_positive, fit, warmup_schedule
from .resnet import ResNet, ResNetConfig

RECIPES = {
    # The shipped encoder: SimCLR on the 1,077 *unlabelled* training images of the handwritten digits.
    "simclr_digits": dict(data="digits", steps=800, batch_size=256, lr=3e-3, warmup=50, temperature=0.2,
                          strength=1.5, seed=0, model=dict(width=32, blocks=[1, 1], proj_dim=64, n_classes=0)),
    # The same recipe on the unlabelled training images of the typeset digits (chapter 6b's "reverse" transfer).
    "simclr_digits_print": dict(data="typeset", steps=800, batch_size=256, lr=3e-3, warmup=50, temperature=0.2,
                                strength=1.5, seed=0, model=dict(width=32, blocks=[1, 1], proj_dim=64, n_classes=0)),
}
SHIPPED_SHA256: dict[str, str] = {  # name -> sha256 of data/<name>.safetensors (see data/README.md)
    "simclr_digits": "3966edf9afe3c146902eba6019b6bde17f8d47881b40d47dd0ed5bdfcd385574",
    "simclr_digits_print": "cc8b774c8aa4de82ed7e21ab1ff76ddc9828203a23158f783e45c9fff98e737e",
}


# ------------------------------------------------------------------------------------------------
# Augmentations
# ------------------------------------------------------------------------------------------------

def augment(X: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random view of every image: X (N, 64) or (N, 1, 8, 8) in [0, 1] -> the same shape.

    At strength 1: zoom U(0.8, 1.2), rotation U(-15, 15) degrees, shear U(-0.2, 0.2), shift
    U(-1, 1) pixels (one affine warp, bilinear); thicker or thinner strokes (a 3x3 max- or
    min-filter blended in with weight U(-0.5, 0.5)); contrast x U(0.7, 1.3); a 3x3 cut-out with
    probability 0.5; Gaussian noise of sd 0.05. `strength` scales every range (0: the identity).
    """
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength}")
    if not isinstance(X, torch.Tensor) or not X.is_floating_point() or not (
            (X.dim() == 2 and X.shape[1] == 64) or (X.dim() == 4 and tuple(X.shape[1:]) == (1, 8, 8))):
        raise ValueError(f"augment expects float images (N, 64) or (N, 1, 8, 8), got "
                         f"{getattr(X, 'dtype', type(X).__name__)} {tuple(getattr(X, 'shape', ()))}")
    shape = X.shape
    imgs = X.reshape(len(X), 1, 8, 8).float()
    n, s = len(imgs), float(strength)
    if n == 0 or s == 0:
        return X.clone()

    def u(lo, hi, *size):   # uniform in [lo, hi], widths scaled by strength around the identity value
        return lo + (hi - lo) * torch.rand(n, *size, generator=generator)

    zoom = torch.exp(u(-1, 1) * math.log(1.2) * s)
    angle = u(-1, 1) * math.radians(15) * s
    shear = u(-1, 1) * 0.2 * s
    shift = u(-1, 1, 2) * (2 / 8) * s           # 1 pixel = 2/8 in grid coordinates
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos / zoom, (-sin + shear) / zoom, shift[:, 0]], 1),
                         torch.stack([sin / zoom, cos / zoom, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, 8, 8], align_corners=False)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # stroke thickness: blend towards a dilated (w > 0) or eroded (w < 0) copy
    w = (u(-1, 1) * 0.5 * s).view(n, 1, 1, 1)
    dilated = F.max_pool2d(out, 3, stride=1, padding=1)
    eroded = -F.max_pool2d(-out, 3, stride=1, padding=1)
    out = torch.where(w > 0, out + w * (dilated - out), out + (-w) * (eroded - out))
    out = out * torch.exp(u(-1, 1) * math.log(1.3) * s).view(n, 1, 1, 1)
    # cut-out: zero a 3x3 square at a random place, for about half the images
    keep = torch.rand(n, generator=generator) < 0.5 * min(s, 1.0)
    cy, cx = (torch.randint(0, 8, (n,), generator=generator) for _ in range(2))
    rows, cols = torch.arange(8).view(1, 8, 1), torch.arange(8).view(1, 1, 8)
    hole = ((rows - cy.view(n, 1, 1)).abs() <= 1) & ((cols - cx.view(n, 1, 1)).abs() <= 1) & keep.view(n, 1, 1)
    out = out.masked_fill(hole.unsqueeze(1), 0.0)
    out = out + 0.05 * s * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1).reshape(shape).to(X.dtype)


# ------------------------------------------------------------------------------------------------
# The loss
# ------------------------------------------------------------------------------------------------

def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent (SimCLR's InfoNCE) of two batches of projections z1, z2 (N, D); row i of z1 and of
    z2 are two views of the same image. The mean over the 2N views of
    -log softmax_{k != i}(z_i . z_k / tau)[partner of i], with z normalised to length 1."""
    if z1.shape != z2.shape or z1.dim() != 2 or len(z1) < 2:
        raise ValueError(f"z1 and z2 must both be (N, D) with N >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature                                      # (2N, 2N) cosine similarities / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))  # k != i
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, partner)


def nt_xent_reference(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """The same loss written as the formula, one view at a time (slow; for checking `nt_xent`)."""
    z = torch.cat([z1, z2]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n2, losses = len(z), []
    for i in range(n2):
        p = (i + n2 // 2) % n2
        others = [k for k in range(n2) if k != i]
        logits = torch.stack([z[i] @ z[k] / temperature for k in others])
        losses.append(-(z[i] @ z[p] / temperature - torch.logsumexp(logits, 0)))
    return torch.stack(losses).mean()


def simclr_loss(temperature: float = 0.2, strength: float = 1.0, generator: torch.Generator | None = None):
    """The loss function `fit` calls on a batch (x,): two augmented views -> projections -> NT-Xent."""
    def loss_fn(model, batch):
        x = batch[0]
        v1 = augment(x.cpu(), strength, generator).to(x.device)
        v2 = augment(x.cpu(), strength, generator).to(x.device)
        z = model.project(torch.cat([v1, v2]))
        return nt_xent(z[:len(x)], z[len(x):], temperature)
    return loss_fn


def pretrain(model: ResNet, X: torch.Tensor, *, steps: int = 1500, batch_size: int = 256, lr: float = 3e-3,
             warmup: int = 50, temperature: float = 0.2, strength: float = 1.0, seed: int = 0,
             **fit_kwargs) -> History:
    """SimCLR-pretrain `model` (a ResNet with a projection head) on unlabelled images X (N, 64).

    AdamW (weight decay 1e-4), linear warm-up then cosine decay to 10 % (`warmup_schedule`).
    Labels are never used. Extra keyword arguments go to `fit` (progress=, live=, out=, device=, ...).
    """
    check_positive(steps=steps, lr=lr, batch_size=batch_size, temperature=temperature)
    if model.projector is None:
        raise ValueError("SimCLR needs a projection head: build the ResNet with ResNetConfig(proj_dim=64, n_classes=0)")
    batch_size = min(batch_size, len(X))
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(TensorDataset(X.float()), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = warmup_schedule(optimizer, warmup=min(warmup, steps), total=steps)
    return fit(model, simclr_loss(temperature, strength, generator), loader, steps=steps, optimizer=optimizer,
               scheduler=scheduler, generators=(generator,), **fit_kwargs)


# ------------------------------------------------------------------------------------------------
# Using the encoder: features for a probe, supervised training with augmentation
# ------------------------------------------------------------------------------------------------

@torch.no_grad()
def features(model: ResNet, X: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Frozen pooled features (N, feature_dim) as a NumPy array, the model in eval mode."""
    if not isinstance(X, torch.Tensor) or X.dim() not in (2, 4) or len(X) == 0:
        raise ValueError(f"features expects a non-empty batch of images (N, 64) or (N, 1, 8, 8), got "
                         f"{type(X).__name__} {tuple(getattr(X, 'shape', ()))}")
    was = model.training
    model.eval()
    try:
        return torch.cat([model.features(X[i:i + batch_size].float()) for i in range(0, len(X), batch_size)]).numpy()
    finally:
        model.train(was)


def train_classifier(model: ResNet, X: torch.Tensor, y: torch.Tensor, *, steps: int = 150, lr: float = 3e-3,
                     batch_size: int = 64, strength: float = 1.0, weight_decay: float = 5e-4,
                     seed: int = 0) -> ResNet:
    """Train a classifier ResNet on the labelled (X, y) with augmentation (in place; returned in eval mode).

    Every step draws `batch_size` labelled images with replacement (so 10 labels still make a full
    batch for batch norm), augments them, and takes an AdamW step; cosine decay to 10 % over
    `steps`. The same function trains the scratch CNN and fine-tunes a pretrained encoder.
    """
    check_positive(steps=steps, lr=lr, batch_size=batch_size)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = warmup_schedule(optimizer, warmup=0, total=steps)
    model.train()
    X, y = X.float(), y.long()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch_size,), generator=g)
        loss = F.cross_entropy(model(augment(X[idx], strength, g)), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


# ------------------------------------------------------------------------------------------------
# The shipped checkpoints
# ------------------------------------------------------------------------------------------------

def recipe_data(data: str) -> torch.Tensor:
    """The unlabelled pretraining images of a recipe: the training split's images, no labels."""
    if data == "digits":
        from .digits import load_digits
        return load_digits().X_train
    if data == "typeset":
        from .typeset import load_typeset
        return load_typeset().X_train
    raise ValueError(f"unknown pretraining data {data!r}; known: 'digits', 'typeset'")


def run_recipe(name: str, out_dir: str | Path, *, progress: bool = True) -> dict:
    """Pretrain the recipe `name` and save ``<out_dir>/<name>.safetensors`` + ``.json``; return the JSON meta."""
    from ..checkpoint import save_checkpoint
    from ..seeding import seed_everything

    recipe = RECIPES[name]
    seed_everything(recipe["seed"])
    X = recipe_data(recipe["data"])
    model = ResNet(ResNetConfig(**recipe["model"]))
    t0 = time.perf_counter()
    history = pretrain(model, X, device="cpu", live=False, progress=progress, title=name,
                       **{k: recipe[k] for k in ("steps", "batch_size", "lr", "warmup", "temperature", "strength", "seed")})
    meta = {"recipe": name, **{k: v for k, v in recipe.items() if k != "model"}, "n_images": len(X),
            "command": f"python -m ptm_lib.vision.simclr --name {name} --out {out_dir}",
            "pretrain_seconds": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "curve": {"step": history.step[::25], "loss": [round(v, 4) for v in history.loss[::25]]}}
    save_checkpoint(model.cpu(), Path(out_dir) / name, meta=meta)
    return meta


def load_pretrained(name: str = "simclr_digits", folder: str | Path | None = None) -> tuple[ResNet, dict]:
    """The shipped SimCLR encoder `name` and its meta (recipe, curve); the weights' sha256 is checked
    against `SHIPPED_SHA256`. FileNotFoundError if it is not there (then train with `run_recipe`)."""
    from ..checkpoint import load_checkpoint, read_config
    from ..paths import data_dir

    path = Path(folder or data_dir()) / name
    if not Path(f"{path}.json").exists():
        raise FileNotFoundError(f"no shipped checkpoint {path}.json; create it with "
                                f"`python -m ptm_lib.vision.simclr --name {name} --out data`")
    meta = read_config(path)["meta"]
    return load_checkpoint(path, expected_sha256=SHIPPED_SHA256.get(name)), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.vision.simclr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="simclr_digits", choices=sorted(RECIPES))
    parser.add_argument("--out", default="data", help="folder for the checkpoint (default: data)")
    args = parser.parse_args(argv)
    meta = run_recipe(args.name, args.out)
    print(f"{args.name}: {meta['steps']} steps in {meta['pretrain_seconds']} s; loss "
          f"{meta['curve']['loss'][0]:.3f} -> {meta['curve']['loss'][-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
