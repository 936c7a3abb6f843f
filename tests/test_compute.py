"""ptm_lib.trends.compute: FLOP counting, activation memory, accumulation, checkpointing, scaling fits."""
import copy

import numpy as np
import pytest
import torch

from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.text.objectives import mask_tokens, masked_lm_loss
from ptm_lib.trends import compute


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = TransformerLM(TransformerConfig(vocab_size=50, max_len=12, d_model=16, n_layers=2, n_heads=2))
    ids = torch.randint(5, 50, (16, 12))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[:8, 9:] = False
    inputs, labels = mask_tokens(ids, 50, 0.3, mask_id=4, special_ids=[0, 1, 2, 3, 4],
                                 generator=torch.Generator().manual_seed(1))
    return model, (inputs, labels, mask)


def mlm(model, batch):
    return masked_lm_loss(model, *batch)


def test_count_flops_of_a_matmul_is_2mkn():
    a, b = torch.randn(3, 5), torch.randn(5, 7)
    assert compute.count_flops(lambda: a @ b) == 2 * 3 * 5 * 7


def test_flops_per_token_is_close_to_the_count(setup):
    model, (inputs, _, _) = setup

    def step():
        model(inputs).sum().backward()
    counted = compute.count_flops(step)
    estimated = model.flops_per_token(inputs.shape[1], training=True) * inputs.numel()
    assert abs(estimated / counted - 1) < 0.15
    model.zero_grad()


def test_saved_activations_scale_with_batch_and_exclude_weights(setup):
    model, batch = setup
    full = compute.saved_activation_bytes(lambda: mlm(model, batch).backward(), model)
    half = compute.saved_activation_bytes(lambda: mlm(model, tuple(t[:8] for t in batch)).backward(), model)
    assert 0.4 < half / full < 0.6
    lin = torch.nn.Linear(100, 100)
    x = torch.randn(1, 100)
    assert compute.saved_activation_bytes(lambda: lin(x).sum().backward(), lin) == 400   # only x, not the 40 kB weight
    model.zero_grad()


def test_accumulation_by_tokens_is_exact_and_by_examples_is_not(setup):
    model, batch = setup
    ref = compute.accumulated_gradients(model, mlm, batch, 1)
    by_tokens = compute.accumulated_gradients(model, mlm, batch, 4, weight=lambda b: int((b[1] != -100).sum()))
    by_examples = compute.accumulated_gradients(model, mlm, batch, 4)
    assert max(float((a - b).abs().max()) for a, b in zip(by_tokens, ref)) < 1e-6
    assert max(float((a - b).abs().max()) for a, b in zip(by_examples, ref)) > 1e-4
    with pytest.raises(ValueError, match="divides the batch of 16"):
        compute.accumulated_gradients(model, mlm, batch, 3)


def test_checkpointing_same_gradients_less_memory(setup):
    model, batch = setup
    ckpt = compute.checkpoint_blocks(copy.deepcopy(model))
    assert compute.checkpoint_blocks(ckpt) is ckpt    # wrapping twice is a no-op
    g1 = compute.accumulated_gradients(model, mlm, batch, 1)
    g2 = compute.accumulated_gradients(ckpt, mlm, batch, 1)
    assert max(float((a - b).abs().max()) for a, b in zip(g1, g2)) < 1e-6
    plain = compute.saved_activation_bytes(lambda: mlm(model, batch).backward(), model)
    less = compute.saved_activation_bytes(lambda: mlm(ckpt, batch).backward(), ckpt)
    assert less < 0.6 * plain
    with torch.no_grad():
        assert torch.equal(ckpt(batch[0], batch[2]), model(batch[0], batch[2]))
    with pytest.raises(TypeError, match="course transformer"):
        compute.checkpoint_blocks(torch.nn.Linear(2, 2))


def test_power_law_fit_recovers_its_parameters():
    n = np.geomspace(1e3, 1e6, 6)
    fit = compute.fit_power_law(n, 2.0 + 30.0 * n ** -0.4)
    assert fit["r2"] > 0.999 and abs(fit["alpha"] - 0.4) < 0.05 and abs(fit["c"] - 2.0) < 0.1
    assert abs(float(fit["predict"](1e7)) - (2.0 + 30.0 * 1e7 ** -0.4)) < 0.05
    with pytest.raises(ValueError, match="at least 3"):
        compute.fit_power_law([1, 2], [3, 2])
    with pytest.raises(ValueError, match="> 0"):
        compute.fit_power_law([1, 2, 0], [3, 2, 1])


def test_training_memory_matches_the_zero_paper():
    # Rajbhandari et al. 2020, Figure 1: 7.5B parameters, 64 GPUs
    got = [compute.training_memory_gb(7.5e9, 64, s) for s in range(4)]
    assert got == pytest.approx([120.0, 31.4, 16.6, 1.88], abs=0.05)
    with pytest.raises(ValueError, match="zero_stage"):
        compute.training_memory_gb(1e9, 8, 4)


def test_train_mlm_learns_and_reports_held_out_loss(lang, tok):
    from ptm_lib.text.pretrain import corpus_tensors
    ids, mask = corpus_tensors(lang, tok, 300, 0, 12)
    held = compute.fixed_masks(*corpus_tensors(lang, tok, 64, 1, 12), tok, seed=0)
    run = compute.train_mlm(ids, mask, tok, held, d_model=16, steps=40, eval_every=20, batch_size=32)
    assert len(run.val_loss) == 2 and run.val_loss[-1] < np.log(len(tok))   # better than uniform guessing
    assert run.tokens[-1] > run.tokens[0] > 0
    with pytest.raises(ValueError, match="multiple of n_heads"):
        compute.train_mlm(ids, mask, tok, held, d_model=10, n_heads=4, steps=1)


def test_matmul_gflops_is_positive():
    assert compute.matmul_gflops(torch.float32, n=64, repeats=2) > 0
