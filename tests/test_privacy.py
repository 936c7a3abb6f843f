"""ptm_lib.trends.privacy: the membership attack, the DP bound, DP-SGD with Opacus, clipping by hand."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from ptm_lib.trends import privacy


def _toy(n=120, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(k, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_attack_separates_and_control_does_not():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.exponential(0.01, 400), rng.exponential(1.0, 400)
    leak = privacy.loss_threshold_attack(members, nonmembers, seed=0)
    assert leak["advantage"] > 0.8 and leak["auc"] > 0.95
    same = privacy.loss_threshold_attack(rng.exponential(1.0, 400), rng.exponential(1.0, 400), seed=0)
    assert abs(same["advantage"]) < 0.12 and abs(same["auc"] - 0.5) < 0.06
    # the in-sample threshold is optimistic: on identical distributions it still finds a positive advantage
    assert same["in_sample_advantage"] > same["advantage"] - 1e-12 and same["in_sample_advantage"] > 0
    assert same["fpr"][0] == 0 and same["tpr"][-1] == 1


def test_best_threshold_advantage_exact():
    t, adv = privacy.best_threshold_advantage([0.1, 0.2], [0.3, 0.4])
    assert adv == 1.0 and 0.2 <= t < 0.3
    assert privacy.best_threshold_advantage([1.0, 2.0], [1.0, 2.0])[1] == 0.0


def test_attack_rejects_bad_inputs():
    with pytest.raises(ValueError, match="balanced"):
        privacy.loss_threshold_attack(np.ones(10), np.ones(12))
    with pytest.raises(ValueError, match="at least 4"):
        privacy.loss_threshold_attack(np.ones(2), np.ones(2))
    with pytest.raises(ValueError):
        privacy.best_threshold_advantage([], [1.0])


def test_dp_advantage_bound():
    assert privacy.dp_advantage_bound(0.0) == 0.0
    assert privacy.dp_advantage_bound(math.inf) == 1.0
    assert privacy.dp_advantage_bound(1.0) == pytest.approx(math.tanh(0.5))
    assert privacy.dp_advantage_bound(2.0, 1e-5) > privacy.dp_advantage_bound(2.0)
    with pytest.raises(ValueError):
        privacy.dp_advantage_bound(-1.0)
    with pytest.raises(ValueError):
        privacy.dp_advantage_bound(1.0, 1.0)


def test_clipping_by_hand_matches_opacus():
    torch.manual_seed(0)
    lin = nn.Linear(5, 3)
    X, y = 3 * torch.randn(16, 5), torch.randint(0, 3, (16,))
    for C in (0.5, 1.0, 100.0):
        hand_W, hand_b, norms = privacy.clipped_mean_grad_by_hand(lin.weight.detach(), lin.bias.detach(), X, y, C)
        opa_W, opa_b = privacy.clipped_mean_grad_opacus(lin, X, y, C)
        assert torch.allclose(hand_W, opa_W, atol=1e-6) and torch.allclose(hand_b, opa_b, atol=1e-6)
    # with a huge C nothing is clipped: the plain mean gradient
    lin.zero_grad()
    nn.functional.cross_entropy(lin(X), y).backward()
    assert torch.allclose(hand_W, lin.weight.grad, atol=1e-6)
    # every per-sample norm after clipping is at most C
    assert norms.shape == (16,) and (norms > 0.5).any()


def test_clipping_rejects_bad_inputs():
    W, b = torch.zeros(3, 5), torch.zeros(3)
    X, y = torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="shapes"):
        privacy.clipped_mean_grad_by_hand(W, torch.zeros(2), X, y, 1.0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        privacy.clipped_mean_grad_by_hand(W, b, X, y, 0.0)
    with pytest.raises(TypeError):
        privacy.clipped_mean_grad_by_hand(W, b, X, y.float(), 1.0)
    with pytest.raises(TypeError, match="nn.Linear"):
        privacy.clipped_mean_grad_opacus(nn.Sequential(nn.Linear(5, 3)), X, y, 1.0)


def test_train_dp_spends_its_budget_and_noise_grows_as_epsilon_shrinks():
    X, y = _toy()
    results = {eps: privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=eps, epochs=3, batch_size=30, lr=0.1)
               for eps in (8.0, 1.0)}
    for eps, r in results.items():
        assert abs(r.epsilon - eps) / eps < 0.05 and r.steps == 12
        assert isinstance(r.model, nn.Linear)          # Opacus's wrapper removed
    assert results[1.0].noise_multiplier > results[8.0].noise_multiplier > 0
    plain = privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=math.inf, epochs=3, batch_size=30, lr=0.1)
    assert plain.epsilon == math.inf and plain.noise_multiplier == 0
    assert privacy.accuracy(plain.model, X, y) > 0.9


def test_train_dp_is_reproducible_and_checks_inputs():
    X, y = _toy()
    a = privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=2.0, epochs=2, batch_size=30, seed=3)
    b = privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=2.0, epochs=2, batch_size=30, seed=3)
    assert torch.equal(a.model.weight, b.model.weight)
    with pytest.raises(ValueError, match="epsilon"):
        privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=0.0)
    with pytest.raises(ValueError):
        privacy.train_dp(privacy.make_model(6, 3), X, y, epsilon=1.0, batch_size=1000)
    with pytest.raises(TypeError):
        privacy.train_dp(privacy.make_model(6, 3), X.long(), y, epsilon=1.0)


def test_overfitting_leaks_and_choose_lr():
    X, y = _toy(n=80, d=20, k=4, seed=1)
    X = X + 4 * torch.randn_like(X)                 # noisy: memorising is possible, generalising is hard
    Xm, ym, Xn, yn = X[:40], y[:40], X[40:], y[40:]
    model = privacy.train_nonprivate(privacy.make_model(20, 4, hidden=64), Xm, ym, steps=400, lr=3e-3)
    attack = privacy.loss_threshold_attack(privacy.per_example_loss(model, Xm, ym),
                                           privacy.per_example_loss(model, Xn, yn))
    assert attack["auc"] > 0.7
    best = privacy.train_dp_choose_lr(Xm, ym, Xn, yn, epsilon=4.0, lrs=(0.01, 0.1), n_classes=4, epochs=2, batch_size=20)
    assert best["lr"] in (0.01, 0.1) and 0 <= best["val_acc"] <= 1
    with pytest.raises(ValueError):
        privacy.train_dp_choose_lr(Xm, ym, Xn, yn, epsilon=4.0, lrs=())


def test_public_standardised_features_use_public_statistics():
    public = torch.randn(50, 4) * 2 + 5
    (f,) = privacy.public_standardised_features(lambda X: X * 1.0, public, public)
    assert torch.allclose(f.mean(0), torch.zeros(4), atol=1e-5)
    (g,) = privacy.public_standardised_features(lambda X: X * 1.0, public, public + 1)
    assert torch.allclose(g.mean(0), 1 / public.std(0), atol=1e-4)   # shifted by the PUBLIC sd, not re-centred


def test_make_model_checks():
    assert isinstance(privacy.make_model(4, 3), nn.Linear)
    assert isinstance(privacy.make_model(4, 3, hidden=8), nn.Sequential)
    with pytest.raises(ValueError):
        privacy.make_model(0, 3)
