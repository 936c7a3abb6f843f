"""Adaptation: LoRA by hand against peft, merging, layer-wise rates, optimisers, schedules, fine-tuning."""
import copy
import math

import pytest
import torch
from torch import nn

from ptm_lib.nets.transformer import TransformerClassifier, TransformerConfig
from ptm_lib.text import finetune, make_agent_task
from ptm_lib.trends import adaptation as ad


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TransformerClassifier(TransformerConfig(vocab_size=50, max_len=16, d_model=16, n_heads=2, n_layers=2,
                                                   n_classes=3))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (6, 10), generator=g)
    return ids, torch.ones_like(ids, dtype=torch.bool), torch.randint(0, 3, (6,), generator=g)


def test_lora_linear_starts_as_base_and_merges_exactly():
    torch.manual_seed(0)
    base = nn.Linear(8, 5)
    lora = ad.LoRALinear(copy.deepcopy(base), r=2, alpha=4)
    x = torch.randn(3, 7, 8)
    assert lora.lora_A.shape == (2, 8) and lora.lora_B.shape == (5, 2) and lora.scaling == 2.0
    assert torch.equal(lora(x), base(x))                              # B = 0: the pretrained function
    assert [n for n, p in lora.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    with torch.no_grad():
        lora.lora_B.normal_()
    assert torch.linalg.matrix_rank(lora.delta_weight()) <= 2
    assert torch.allclose(lora(x), x @ (base.weight + lora.delta_weight()).T + base.bias, atol=1e-5)
    merged = lora.merge()
    assert isinstance(merged, nn.Linear) and torch.allclose(merged(x), lora(x), atol=1e-5)


def test_lora_bad_inputs():
    with pytest.raises(ValueError, match="rank r"):
        ad.LoRALinear(nn.Linear(4, 4), r=0)
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        ad.LoRALinear(nn.Conv1d(4, 4, 1))
    with pytest.raises(ValueError, match="no nn.Linear"):
        ad.add_lora(nn.Sequential(nn.Linear(2, 2)), targets=["qkv"])
    with pytest.raises(TypeError, match="list of module-name suffixes"):
        ad.add_lora(nn.Sequential(nn.Linear(2, 2)), targets="qkv")


def test_add_lora_trains_only_lora_and_head(model):
    m = ad.add_lora(copy.deepcopy(model), r=2, alpha=4)
    trainable, total = ad.count_trainable(m)
    n_lora = sum(2 * (l.base.in_features + l.base.out_features) for l in m.modules() if isinstance(l, ad.LoRALinear))
    assert trainable == n_lora + sum(p.numel() for p in m.head.parameters())
    assert sum(isinstance(l, ad.LoRALinear) for l in m.modules()) == 2 * len(ad.TARGETS)
    ad.merge_lora(m)
    assert not any(isinstance(l, ad.LoRALinear) for l in m.modules())
    assert set(m.state_dict()) == set(model.state_dict())              # the original architecture again


def test_bitfit_trains_biases_and_head_only(model):
    m = ad.bitfit(copy.deepcopy(model))
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all(n.endswith("bias") or n.startswith("head.") for n in names)
    assert "head.weight" in names and "body.blocks.0.attn.qkv.bias" in names and "body.blocks.0.ln1.bias" in names
    with pytest.raises(ValueError, match="no bias"):
        ad.bitfit(nn.Linear(2, 2, bias=False), train=())


def test_hand_written_lora_matches_peft(model, batch):
    diff = ad.compare_with_peft(model, batch, r=2, alpha=4)
    assert set(diff) == {"output", "output_at_init", "step", "merged_weights", "merged_output"}
    assert max(diff.values()) <= 1e-5, diff


def test_param_groups_layerwise_decay(model):
    groups = ad.param_groups(model, lr=1.0, llrd=0.5, head_lr_factor=10)
    assert [g["lr"] for g in groups] == [10.0, 1.0, 0.5, 0.25]          # head, block 2 (+ ln_f), block 1, embeddings
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    frozen = copy.deepcopy(model)
    frozen.freeze_body()
    assert [g["lr"] for g in ad.param_groups(frozen, lr=1.0, llrd=0.5)] == [1.0]
    with pytest.raises(ValueError, match="llrd"):
        ad.param_groups(model, lr=1.0, llrd=1.5)


def test_optimizers_and_schedules(model):
    params = list(copy.deepcopy(model).parameters())
    kinds = {name: type(ad.make_optimizer(name, params, lr=0.1)).__name__ for name in ad.OPTIMIZERS}
    assert kinds == {"sgd": "SGD", "momentum": "SGD", "adam": "Adam", "adamw": "AdamW"}
    assert ad.make_optimizer("momentum", params, lr=0.1).defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ad.make_optimizer("lion", params, lr=0.1)
    rates = {}
    for name in ad.SCHEDULES:
        opt = torch.optim.SGD(params, lr=1.0)
        sched = ad.make_schedule(name, opt, steps=20)
        lrs = []
        for _ in range(20):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        rates[name] = lrs
    assert rates["constant"] == [1.0] * 20
    assert rates["cosine"][0] == 1.0 and rates["cosine"][-1] < 0.2 and rates["cosine"] == sorted(rates["cosine"], reverse=True)
    assert rates["warmup_cosine"][0] == 0.5 and max(rates["warmup_cosine"]) == 1.0      # 2 warm-up steps
    with pytest.raises(ValueError, match="schedule must be one of"):
        ad.make_schedule("step", torch.optim.SGD(params, lr=1.0), steps=10)


def test_adam_l2_decays_weights_without_gradient_adamw_decouples():
    # a weight whose loss gradient is 0: Adam's L2 term is divided by sqrt(v) and moves it by ~lr per
    # step whatever its size; AdamW shrinks it by lr * wd * w per step
    for name, expected in (("adam", 1.0 - 10 * 0.01), ("adamw", (1 - 0.01 * 0.1) ** 10)):
        w = nn.Parameter(torch.ones(1))
        opt = ad.make_optimizer(name, [w], lr=0.01, weight_decay=0.1)
        for _ in range(10):
            opt.zero_grad()
            (0 * w).sum().backward()
            opt.step()
        assert math.isclose(w.item(), expected, rel_tol=1e-3), (name, w.item())


def test_finetune_and_choose_lr(lang, tok):
    task = make_agent_task(lang, pool_per_class=4, n_val_per_class=3, n_test_per_class=3)
    data = finetune.encode_task(task, tok, 32)
    cfg = TransformerConfig(vocab_size=len(tok), max_len=32, d_model=16, n_heads=2, n_layers=1, n_classes=data.n_classes)

    def make():
        torch.manual_seed(0)
        return ad.add_lora(TransformerClassifier(cfg), r=1, alpha=2)

    best = ad.choose_lr(make, data, [1e-3, 1e-2], steps=3, optimizer="sgd", schedule="constant")
    assert best["lr"] in (1e-3, 1e-2) and set(best["val_by_lr"]) == {1e-3, 1e-2}
    assert best["val"] == max(best["val_by_lr"].values()) and 0 <= best["test"] <= 1
    assert len(best["loss"]) == 3 and not best["diverged"] and best["trainable"] < best["total"]
    huge = ad.finetune(make(), data, lr=1e30, steps=3, optimizer="sgd")
    assert huge["diverged"] and huge["loss"] == [math.inf] * 3
    with pytest.raises(ValueError, match="grid is empty"):
        ad.choose_lr(make, data, [], steps=3)
