"""ptm_lib.vision.shift: shifted copies of flattened square images."""
import pytest
import torch

from ptm_lib.vision import shift


def dot(row, col, side=8):
    X = torch.zeros(1, side * side)
    X[0, row * side + col] = 1.0
    return X


def where(X, side=8):
    return divmod(int(X[0].argmax()), side)


def test_translate_moves_pixels_and_fills_with_zeros():
    X = dot(3, 3)
    assert where(shift.translate(X, dx=2)) == (3, 5)
    assert where(shift.translate(X, dx=-1, dy=2)) == (5, 2)
    assert torch.equal(shift.translate(X), X)
    edge = shift.translate(dot(0, 7), dx=1)  # moved off the image
    assert edge.sum() == 0
    assert shift.translate(X, dx=8).sum() == 0


def test_rotate_is_anticlockwise_and_keeps_range():
    rotated = shift.rotate(dot(3, 7), 90)  # right of the centre -> top
    assert where(rotated) == (0, 3)
    assert torch.allclose(shift.rotate(dot(3, 4), 0), dot(3, 4))
    X = torch.rand(5, 64)
    out = shift.rotate(X, 37)
    assert out.shape == X.shape and out.min() >= 0 and out.max() <= 1


def test_noise_is_reproducible_and_clipped():
    X = torch.rand(10, 64, generator=torch.Generator().manual_seed(0))
    a, b = shift.gaussian_noise(X, 0.3, seed=1), shift.gaussian_noise(X, 0.3, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, shift.gaussian_noise(X, 0.3, seed=2))
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0  # noise pushed pixels out of range: clipped
    assert 0.15 < float((a - X).std()) < 0.3  # about std 0.3, less where clipped
    assert torch.equal(shift.gaussian_noise(X, 0.0), X)
    with pytest.raises(ValueError, match="std must be >= 0, got -1"):
        shift.gaussian_noise(X, -1)


def test_blur_and_invert():
    X = dot(4, 4)
    blurred = shift.blur(X)
    assert torch.isclose(blurred.sum(), torch.tensor(1.0)) and torch.isclose(blurred.max(), torch.tensor(1 / 9))
    assert torch.equal(shift.invert(shift.invert(X)), X)
    with pytest.raises(ValueError, match="size must be a positive odd number, got 2"):
        shift.blur(X, 2)


def test_bad_shapes_give_clear_errors():
    with pytest.raises(ValueError, match="10 pixels per image is not a square number"):
        shift.translate(torch.zeros(2, 10), 1)
    with pytest.raises(ValueError, match=r"expected flattened images of shape \(N, side\*side\), got shape \(2, 8, 8\)"):
        shift.invert(torch.zeros(2, 8, 8))


def test_inputs_are_not_modified():
    X = torch.rand(8, 64)
    before = X.clone()
    shift.standard_shifts(X)
    shift.random_affine(X, 20, 1, 0.1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(X, before)


def test_standard_shifts_shapes_and_translation_directions():
    X = dot(3, 3).repeat(4, 1)
    out = shift.standard_shifts(X, seed=0)
    assert list(out)[0] == "clean" and torch.equal(out["clean"], X)
    assert all(v.shape == X.shape for v in out.values())
    assert [where(out["move 1 px"][i:i + 1]) for i in range(4)] == [(3, 4), (3, 2), (4, 3), (2, 3)]


def test_random_affine_is_reproducible_and_identity_at_zero():
    X = torch.rand(6, 64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(shift.random_affine(X, 15, 1, 0.1, generator=g1), shift.random_affine(X, 15, 1, 0.1, generator=g2))
    assert torch.allclose(shift.random_affine(X, 0, 0, 0), X, atol=1e-6)
