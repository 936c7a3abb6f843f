"""Typeset digits: 0-9 rendered from the fonts matplotlib ships, made exactly like the 8x8 handwritten digits.

The handwritten digits (UCI "optdigits", scikit-learn's `load_digits`) were made by drawing each
digit as a 32x32 black-and-white bitmap and counting the ink pixels in each 4x4 block: 8x8 images
with values 0..16. `typeset_digits()` does the same with printed digits: each glyph of each font
(DejaVu Sans / Sans Mono / Serif, STIX, Computer Modern: regular, bold, italic; 18 faces, all
bundled with matplotlib, so nothing downloads) is drawn once at 64x64 with matplotlib's Agg
renderer, then turned (-12 to 12 degrees), scaled (0.8 or 1.0 of the box) and narrowed (width
x0.8 or x1.0) onto a 32x32 grid, thresholded at half ink, and block-counted to 8x8, 0..16.

Deterministic: the same matplotlib (pinned in constraints.txt) gives the same images, bit for bit.

    X, y, info = typeset_digits()      # X (3600, 8, 8) float32 in 0..16, y (3600,), info: font etc. per image
    split = load_typeset()             # a digits-like `Split`: X (N, 64) in [0, 1], 60/20/20 stratified
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .digits import Split

FONT_FILES = (  # (family, style, file in matplotlib's mpl-data/fonts/ttf)
    ("DejaVu Sans", "regular", "DejaVuSans.ttf"), ("DejaVu Sans", "bold", "DejaVuSans-Bold.ttf"),
    ("DejaVu Sans", "oblique", "DejaVuSans-Oblique.ttf"), ("DejaVu Sans", "bold oblique", "DejaVuSans-BoldOblique.ttf"),
    ("DejaVu Sans Mono", "regular", "DejaVuSansMono.ttf"), ("DejaVu Sans Mono", "bold", "DejaVuSansMono-Bold.ttf"),
    ("DejaVu Serif", "regular", "DejaVuSerif.ttf"), ("DejaVu Serif", "bold", "DejaVuSerif-Bold.ttf"),
    ("DejaVu Serif", "italic", "DejaVuSerif-Italic.ttf"),
    ("STIX", "regular", "STIXGeneral.ttf"), ("STIX", "bold", "STIXGeneralBol.ttf"),
    ("STIX", "italic", "STIXGeneralItalic.ttf"), ("STIX", "bold italic", "STIXGeneralBolIta.ttf"),
    ("Computer Modern", "roman", "cmr10.ttf"), ("Computer Modern", "bold", "cmb10.ttf"),
    ("Computer Modern", "sans", "cmss10.ttf"), ("Computer Modern", "typewriter", "cmtt10.ttf"),
    ("Computer Modern", "italic", "cmti10.ttf"),
)
ROTATIONS = (-12, -6, 0, 6, 12)   # degrees, anticlockwise
SCALES = (0.8, 1.0)               # glyph height as a share of the 32-pixel box
WIDTHS = (0.8, 1.0)               # horizontal squeeze
HIRES = 64                        # side of the first rendering


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def glyph_path(char: str, font_file: str | Path, side: int = HIRES):
    """The outline of `char` in the font `font_file` (a matplotlib Path), its bounding box fitted
    (aspect kept, a 2 % margin) and centred in a side x side square."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    path = TextPath((0, 0), char, size=100, prop=FontProperties(fname=str(font_file)))
    if path.vertices.size == 0:
        raise ValueError(f"the font {font_file} has no visible glyph for {char!r}")
    (x0, y0), (x1, y1) = path.vertices.min(0), path.vertices.max(0)
    k = 0.96 * side / max(x1 - x0, y1 - y0)
    return path.transformed(Affine2D().translate(-(x0 + x1) / 2, -(y0 + y1) / 2).scale(k).translate(side / 2, side / 2))


def render_glyphs(paths, side: int = HIRES) -> np.ndarray:
    """Fill each path (in a side x side square) with matplotlib's Agg renderer: float32 (N, side, side)
    ink coverage in [0, 1] (anti-aliased), row 0 at the top."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import PathPatch

    fig = Figure(figsize=(1, 1), dpi=side)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, side)
    ax.set_ylim(0, side)
    ax.set_axis_off()
    out = []
    for path in paths:
        patch = ax.add_patch(PathPatch(path, facecolor="black", edgecolor="none", antialiased=True))
        canvas.draw()
        out.append(1.0 - np.asarray(canvas.buffer_rgba(), dtype=np.float32)[..., 0] / 255.0)
        patch.remove()
    return np.stack(out)


def render_glyph(char: str, font_file: str | Path, side: int = HIRES) -> np.ndarray:
    """`char` in the font `font_file`, filled and centred: float32 (side, side) ink coverage in [0, 1]."""
    return render_glyphs([glyph_path(char, font_file, side)], side)[0]


def to_optdigits(hires: torch.Tensor, rotation: float, scale: float, width: float) -> torch.Tensor:
    """High-resolution glyphs (N, S, S) -> UCI-style 8x8 counts (N, 8, 8) in 0..16: warp onto a
    32x32 grid (turn, scale, narrow; bilinear), ink where coverage >= 0.5, count per 4x4 block."""
    n = len(hires)
    a = math.radians(rotation)
    # affine_grid maps output to input coordinates: the inverse of "narrow, scale, then turn"
    rot = torch.tensor([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=torch.float32)
    inv = torch.diag(torch.tensor([1 / (scale * width), 1 / scale])) @ rot
    theta = torch.cat([inv, torch.zeros(2, 1)], 1).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, 1, 32, 32], align_corners=False)
    ink = F.grid_sample(hires.unsqueeze(1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    bitmap = (ink >= 0.5).float()
    return (F.avg_pool2d(bitmap, 4) * 16).round().squeeze(1)


@functools.lru_cache(maxsize=2)
def _rendered(digits: tuple[int, ...]) -> np.ndarray:
    folder = font_dir()
    paths = [glyph_path(str(d), folder / f) for _, _, f in FONT_FILES for d in digits]
    return render_glyphs(paths).reshape(len(FONT_FILES), len(digits), HIRES, HIRES)   # (F, D, S, S)


def typeset_digits(digits=tuple(range(10))) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Every digit in every font and variation: X (N, 8, 8) float32 with integer values 0..16 (like the
    handwritten digits before scaling), y (N,) int64 digits, and per image a dict of font, style,
    rotation, scale and width. N = 18 faces x 5 rotations x 2 scales x 2 widths x len(digits)."""
    digits = tuple(int(d) for d in digits)
    if not digits or any(not 0 <= d <= 9 for d in digits):
        raise ValueError(f"digits must be a non-empty sequence of 0..9, got {digits}")
    hires = torch.from_numpy(_rendered(digits))                       # (F, D, S, S)
    flat = hires.reshape(-1, HIRES, HIRES)
    images, labels, info = [], [], []
    for rotation in ROTATIONS:
        for scale in SCALES:
            for width in WIDTHS:
                images.append(to_optdigits(flat, rotation, scale, width))
                for family, style, _ in FONT_FILES:
                    for d in digits:
                        labels.append(d)
                        info.append({"font": family, "style": style, "rotation": rotation, "scale": scale,
                                     "width": width})
    return torch.cat(images).numpy().astype(np.float32), np.array(labels, dtype=np.int64), info


@functools.lru_cache(maxsize=1)
def load_typeset(*, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Split:
    """The typeset digits as a `Split` like `load_digits()`: X (N, 64) float32 in [0, 1] (counts / 16),
    y (N,) in 0..9, stratified 60/20/20 with ``random_state=0`` (the same for every seed)."""
    from sklearn.model_selection import train_test_split

    X, y, _ = typeset_digits()
    X = X.reshape(len(X), 64) / 16.0
    X_trval, X_test, y_trval, y_test = train_test_split(X, y, test_size=test_fraction, stratify=y, random_state=0)
    X_train, X_val, y_train, y_val = train_test_split(
        X_trval, y_trval, test_size=val_fraction / (1 - test_fraction), stratify=y_trval, random_state=0)
    t = torch.from_numpy
    return Split(t(X_train), t(y_train), t(X_val), t(y_val), t(X_test), t(y_test), n_classes=10)
