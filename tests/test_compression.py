"""ptm_lib.trends.compression: sizes, int8 quantisation, latency, pruning and the distillation loss."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ptm_lib.trends import compression as C


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Embedding(500, 32), nn.Flatten(), nn.Linear(4 * 32, 64), nn.ReLU(), nn.Linear(64, 5))


def test_serialized_size_counts_the_bytes_of_the_state_dict():
    net = nn.Linear(1000, 100)                              # 100,100 float32 numbers = 400,400 bytes
    assert 0.4004 <= C.serialized_mb(net) < 0.41


def test_int8_shrinks_linear_4x_and_embedding_only_when_asked():
    net = small_net()
    fp32 = C.serialized_mb(net)
    linear_only = C.quantize_int8(net, embeddings=False)
    full = C.quantize_int8(net, embeddings=True)
    assert isinstance(net[2], nn.Linear), "the original is untouched"
    # the embedding (16,000 numbers) dominates: quantising only Linear leaves most of the file
    assert C.serialized_mb(full) < 0.45 * fp32 < C.serialized_mb(linear_only)
    x = torch.randint(0, 500, (8, 4))
    with torch.no_grad():
        ref, out = net(x), full(x)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=0.05 * ref.abs().max().item())


def test_int8_rounding_error_is_at_most_half_a_step():
    w = torch.randn(200)
    scale = float(w.max() - w.min()) / 255
    q = torch.quantize_per_tensor(w, scale, int(round(-128 - float(w.min()) / scale)), torch.qint8)
    assert (q.dequantize() - w).abs().max() <= scale / 2 + 1e-6


def test_latency_is_a_positive_median_and_threads_are_restored():
    before = torch.get_num_threads()
    calls = []
    ms = C.latency_ms(lambda: calls.append(1), warmup=2, repeats=5, threads=1)
    assert ms >= 0 and len(calls) == 7 and torch.get_num_threads() == before
    timed = C.compare_latency({"a": lambda: None, "b": lambda: sum(range(20000))}, rounds=2, repeats=3)
    assert set(timed) == {"a", "b"} and timed["b"] > timed["a"]
    with pytest.raises(TypeError):
        C.latency_ms(42)
    with pytest.raises(ValueError):
        C.compare_latency({"a": lambda: None}, rounds=0)


def test_global_pruning_reaches_the_sparsity_pooled_over_layers_and_keeps_zeros_while_training():
    net = small_net()
    C.prune_global(net, 0.8)
    assert C.weight_sparsity(net) == pytest.approx(0.8, abs=1e-3)
    # global: the layers are not pruned equally (unlike per-layer pruning)
    per_layer = [float((m.weight == 0).float().mean()) for m, _ in C.linear_weights(net)]
    assert max(per_layer) - min(per_layer) > 0.01
    x, y = torch.randint(0, 500, (64, 4)), torch.randint(0, 5, (64,))
    C.train_model(net, x, y, steps=5, lr=1e-2)
    assert C.weight_sparsity(net) == pytest.approx(0.8, abs=1e-3), "fine-tuning must not revive pruned weights"
    C.prune_global(net, 0.9)                                  # iterative: the total sparsity, not 0.9 of the rest
    assert C.weight_sparsity(net) == pytest.approx(0.9, abs=1e-3)
    C.remove_pruning(net)
    assert all(not hasattr(m, "weight_mask") for m, _ in C.linear_weights(net))
    assert C.weight_sparsity(net) == pytest.approx(0.9, abs=1e-3)
    copy.deepcopy(net)                                        # a plain module again


def test_pruned_zeros_cost_the_same_disk_unless_stored_sparse():
    net = C.FeatureMLP(256, 4, hidden=512)
    dense_mb = C.serialized_mb(net)
    C.remove_pruning(C.prune_global(net, 0.9))
    assert C.serialized_mb(net) == pytest.approx(dense_mb, rel=1e-3)
    assert C.sparse_serialized_mb(net) < 0.5 * dense_mb


def test_pruning_checks_its_inputs():
    with pytest.raises(ValueError):
        C.prune_global(small_net(), 1.0)
    with pytest.raises(ValueError):
        C.prune_global(nn.ReLU(), 0.5)
    with pytest.raises(TypeError):
        C.serialized_mb("model")


def test_distillation_loss_matches_its_formula():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 4), torch.randn(6, 4), torch.tensor([0, 1, 2, 3, -1, -1])
    T, alpha = 3.0, 0.7
    p_t = F.softmax(t / T, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, -1))).sum(-1).mean()
    ce = -F.log_softmax(s, -1)[torch.arange(4), y[:4]].sum() / 6       # unlabelled rows add 0, mean over the batch
    assert C.distillation_loss(s, t, y, T=T, alpha=alpha) == pytest.approx(float(alpha * T ** 2 * kl + (1 - alpha) * ce), rel=1e-5)
    assert C.distillation_loss(s, t, None, T=T) == pytest.approx(float(T ** 2 * kl), rel=1e-5)
    assert float(C.distillation_loss(t, t, None)) == pytest.approx(0.0, abs=1e-6)


def test_t_squared_keeps_the_soft_gradient_the_same_size():
    torch.manual_seed(0)
    t = torch.randn(256, 8) * 3
    norms = []
    for T in (4.0, 8.0, 16.0):
        s = torch.zeros(256, 8, requires_grad=True)
        C.distillation_loss(s, t, None, T=T).backward()
        norms.append(float(s.grad.norm()))
    # without T^2 the gradient would shrink 4x per doubling of T; with it, it shrinks as 1/T at most (~2x)
    assert norms[1] / norms[0] > 0.4 and norms[2] / norms[1] > 0.4


def test_distillation_loss_checks_its_inputs():
    with pytest.raises(ValueError):
        C.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        C.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), T=0.0)


def test_a_student_learns_from_soft_targets_alone():
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (200, 6))
    label = ((ids < 25).float().mean(1) > 0.5).long()                  # which half of the vocabulary dominates
    teacher_logits = F.one_hot(label, 2).float() * 4
    student = C.BagOfTokens(50, 2, dim=8)
    C.train_model(student, ids, torch.full((200,), -1), teacher_logits=teacher_logits, steps=150, lr=3e-2)
    with torch.no_grad():
        acc = float((student(ids).argmax(1) == label).float().mean())
    assert acc > 0.85
    with pytest.raises(ValueError):
        C.train_model(student, ids, torch.full((200,), -1), steps=1)    # no labels and no teacher
    with pytest.raises(ValueError):
        student(ids.float())


def test_bag_of_tokens_ignores_padding():
    bag = C.BagOfTokens(20, 3, dim=4)
    a = torch.tensor([[5, 6, 0, 0]])
    b = torch.tensor([[5, 6, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(bag(a), bag(b))


def test_per_channel_scales_fit_rows_of_very_different_size_better():
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Linear(64, 8))                          # quantize_dynamic swaps children, not the root
    with torch.no_grad():
        lin[0].weight.mul_(torch.logspace(-2, 1, 8).unsqueeze(1))   # rows from 0.01x to 10x
        lin[0].bias.zero_()
    x = torch.randn(16, 64)
    with torch.no_grad():
        ref = lin(x)
        err = {pc: (C.quantize_int8(lin, per_channel=pc)(x) - ref)[:, 0].abs().max().item() for pc in (True, False)}
    assert err[True] < err[False] / 5        # the smallest row: per-tensor rounds it almost to zero
