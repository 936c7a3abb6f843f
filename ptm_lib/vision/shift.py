"""Distribution shift for small images: move, turn, blur, add noise to, or invert test images.

A model trained on clean images meets *shifted* ones at test time; these functions make the
shifted copies. Every function takes flattened square images ``X`` of shape (N, side*side)
with pixels in [0, 1] (what `load_digits` gives: side 8) and returns a new tensor of the same
shape and dtype, pixels still in [0, 1]; the input is never modified.

    translate(X, dx=1)          move right by one pixel (zeros come in at the edge)
    rotate(X, 20)               turn 20 degrees anticlockwise about the centre (bilinear)
    gaussian_noise(X, 0.3, seed=0)
    blur(X)                     3x3 box blur
    invert(X)                   1 - X (white digit on black becomes black on white)
    standard_shifts(X, seed=0)  a dict name -> shifted copy, the set chapter 01 measures
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def image_side(X: torch.Tensor) -> int:
    """Side length of the square images in X (N, side*side); a clear error otherwise."""
    if not isinstance(X, torch.Tensor) or X.dim() != 2:
        raise ValueError(f"expected flattened images of shape (N, side*side), got shape {tuple(getattr(X, 'shape', ()))}")
    side = math.isqrt(X.shape[1])
    if side * side != X.shape[1] or side == 0:
        raise ValueError(f"{X.shape[1]} pixels per image is not a square number; expected side*side")
    if not X.is_floating_point():
        raise TypeError(f"expected floating-point pixels in [0, 1], got dtype {X.dtype}; convert with X.float()")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("the images hold NaN or inf pixels; expected pixels in [0, 1]")
    return side


def _as_images(X: torch.Tensor) -> tuple[torch.Tensor, int]:
    side = image_side(X)
    return X.reshape(len(X), 1, side, side).float(), side


def translate(X: torch.Tensor, dx: int = 0, dy: int = 0) -> torch.Tensor:
    """Move every image `dx` pixels right and `dy` pixels down (negative: left/up), filling with 0."""
    imgs, side = _as_images(X)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in (dx, dy)):
        raise TypeError(f"dx and dy are whole pixels (int), got {dx!r} and {dy!r}")
    if abs(dx) >= side or abs(dy) >= side:
        return torch.zeros_like(X)
    out = torch.zeros_like(imgs)
    src_y, dst_y = (slice(0, side - dy), slice(dy, side)) if dy >= 0 else (slice(-dy, side), slice(0, side + dy))
    src_x, dst_x = (slice(0, side - dx), slice(dx, side)) if dx >= 0 else (slice(-dx, side), slice(0, side + dx))
    out[:, :, dst_y, dst_x] = imgs[:, :, src_y, src_x]
    return out.reshape(X.shape).to(X.dtype)


def rotate(X: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate every image by `degrees` (anticlockwise as displayed) about its centre, bilinear, zeros outside."""
    imgs, _ = _as_images(X)
    if not math.isfinite(degrees):
        raise ValueError(f"degrees must be a finite angle, got {degrees}")
    if len(X) == 0:
        return X.clone()
    a = math.radians(degrees)
    # grid_sample maps output coordinates to input coordinates: use the inverse rotation.
    # (x to the right, y down in image coordinates, so anticlockwise on screen is this matrix.)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0],
                          [math.sin(a), math.cos(a), 0.0]], dtype=imgs.dtype)
    grid = F.affine_grid(theta.expand(len(imgs), 2, 3), list(imgs.shape), align_corners=False)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp(0, 1).reshape(X.shape).to(X.dtype)


def gaussian_noise(X: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Add N(0, std^2) noise to every pixel (reproducible from `seed`) and clip to [0, 1]."""
    image_side(X)
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"std must be >= 0, got {std}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(X.shape, generator=g, dtype=torch.float32) * std
    return (X.float() + noise).clamp(0, 1).to(X.dtype)


def blur(X: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Box blur: each pixel becomes the mean of its size x size neighbourhood (zeros outside)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, got {size}")
    imgs, _ = _as_images(X)
    kernel = torch.full((1, 1, size, size), 1.0 / size**2, dtype=imgs.dtype)
    return F.conv2d(imgs, kernel, padding=size // 2).reshape(X.shape).to(X.dtype)


def invert(X: torch.Tensor) -> torch.Tensor:
    """Invert the contrast: 1 - X."""
    image_side(X)
    return 1.0 - X


def standard_shifts(X: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """The shifts chapter 01 measures, mildest first: name -> shifted copy of X.

    Translations are applied to the four directions in turn (image i is moved
    right, left, down or up depending on i % 4), so no single direction dominates.
    """
    def moved(pixels: int) -> torch.Tensor:
        out = torch.empty_like(X)
        for k, (dx, dy) in enumerate([(pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)]):
            out[k::4] = translate(X[k::4], dx, dy)
        return out

    def turned(degrees: float) -> torch.Tensor:
        out = torch.empty_like(X)
        out[0::2] = rotate(X[0::2], degrees)
        out[1::2] = rotate(X[1::2], -degrees)
        return out

    return {
        "clean": X.clone(),
        "noise σ=0.1": gaussian_noise(X, 0.1, seed=seed),
        "noise σ=0.3": gaussian_noise(X, 0.3, seed=seed),
        "blur 3×3": blur(X, 3),
        "rotate ±15°": turned(15),
        "rotate ±30°": turned(30),
        "move 1 px": moved(1),
        "move 2 px": moved(2),
        "inverted": invert(X),
    }


def random_affine(X: torch.Tensor, degrees: float = 15.0, pixels: float = 1.0, noise: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A random small change per image (data augmentation): rotate by U(-degrees, degrees),
    move by U(-pixels, pixels) in x and y (sub-pixel, bilinear), then add N(0, noise^2) noise;
    clipped to [0, 1]. Pass a seeded `generator` for reproducible draws."""
    imgs, side = _as_images(X)
    if not all(math.isfinite(v) and v >= 0 for v in (degrees, pixels, noise)):
        raise ValueError(f"degrees, pixels and noise must be finite and >= 0, got {degrees}, {pixels}, {noise}")
    n = len(imgs)
    if n == 0:
        return X.clone()
    a = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(degrees)
    t = (torch.rand(n, 2, generator=generator) * 2 - 1) * pixels * 2 / side  # pixels -> [-1, 1] coordinates
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.stack([torch.stack([cos, -sin, -t[:, 0]], 1), torch.stack([sin, cos, -t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(imgs.dtype), list(imgs.shape), align_corners=False)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if noise > 0:
        out = out + torch.randn(out.shape, generator=generator) * noise
    return out.clamp(0, 1).reshape(X.shape).to(X.dtype)
