"""The fine-tuning recipe (ptm_lib.recipe): heads, freezing, learning rates, early stopping, scores."""
import pytest
import torch

from ptm_lib.nets.transformer import TransformerClassifier, TransformerConfig, TransformerLM
from ptm_lib.recipe import (Finetuned, Recipe, class_weights, evaluate, finetune, layer_groups, param_groups,
                            set_trainable, with_new_head)
from ptm_lib.vision.resnet import ResNet, ResNetConfig


def tiny_lm() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(TransformerConfig(vocab_size=30, d_model=16, n_heads=2, n_layers=2, d_ff=32, max_len=12))


def token_task(n=64, T=8, seed=0):
    """Class = whether token 5 occurs: learnable from the tokens alone."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 30, (n, T), generator=g)
    y = torch.arange(n) % 2
    ids[y == 1, 3] = 5
    mask = torch.ones(n, T, dtype=torch.bool)
    return (ids, mask), y


def test_new_head_keeps_the_pretrained_body_and_leaves_the_original_alone():
    lm = tiny_lm()
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    model = with_new_head(lm, 3, seed=1)
    assert isinstance(model, TransformerClassifier) and model.head.out_features == 3
    assert torch.equal(model.body.blocks[0].attn.qkv.weight, lm.body.blocks[0].attn.qkv.weight)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())
    again = with_new_head(lm, 3, seed=1)
    assert torch.equal(again.head.weight, model.head.weight)            # the head is seeded
    assert not torch.equal(with_new_head(lm, 3, seed=2).head.weight, model.head.weight)


def test_new_head_on_a_resnet_and_on_a_classifier():
    enc = ResNet(ResNetConfig(width=8, blocks=(1, 1), n_classes=0, proj_dim=16))
    model = with_new_head(enc, 10)
    assert model.head.out_features == 10 and model(torch.rand(2, 64)).shape == (2, 10)
    clf = with_new_head(with_new_head(tiny_lm(), 2), 5)
    assert clf.head.out_features == 5 and clf.config.n_classes == 5
    with pytest.raises(TypeError, match="head"):
        with_new_head(torch.nn.Sequential(torch.nn.Linear(2, 2)), 2)
    with pytest.raises(ValueError, match="n_classes"):
        with_new_head(enc, 1)


def test_layers_run_from_the_input_up_and_freezing_keeps_the_top():
    model = with_new_head(tiny_lm(), 2)
    groups = layer_groups(model)
    assert len(groups) == 3                                               # embeddings, block 1, block 2
    assert groups[0][0] is model.body.tok_emb.weight
    n_head = sum(p.numel() for p in model.head.parameters())
    assert set_trainable(model, "head") == n_head
    assert set_trainable(model, 1) == n_head + sum(p.numel() for p in groups[2])
    assert not any(p.requires_grad for p in groups[1]) and all(p.requires_grad for p in groups[2])
    assert set_trainable(model, "all") == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="only 3 layers"):
        set_trainable(model, 4)
    res = with_new_head(ResNet(ResNetConfig(width=8, blocks=(1, 1), n_classes=0, proj_dim=16)), 10)
    assert [len(g) > 0 for g in layer_groups(res)] == [True, True, True]


def test_layer_decay_shrinks_the_learning_rate_with_depth():
    model = with_new_head(tiny_lm(), 2)
    set_trainable(model, "all")
    groups = param_groups(model, 1e-3, layer_decay=0.5, head_lr=1e-2)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 1e-3, 5e-4, 2.5e-4])   # head, then from the top down
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    set_trainable(model, 1)
    assert len(param_groups(model, 1e-3)) == 2                                       # frozen layers left out
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, 1e-3, layer_decay=0.0)


def test_balanced_class_weights():
    w = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0])
    assert (w[:2] * torch.tensor([3, 1])).tolist() == pytest.approx([4 / 3, 4 / 3])   # equal total weight


def test_finetune_learns_stops_early_and_restores_the_best_weights():
    train, val = token_task(64, seed=0), token_task(32, seed=1)
    model = with_new_head(tiny_lm(), 2)
    before = evaluate(model, val)["accuracy"]
    result = finetune(model, train, val, Recipe(lr=3e-3, max_steps=200, eval_every=5, patience=3, batch_size=16))
    assert isinstance(result, Finetuned) and not model.training
    scores = evaluate(model, val)
    assert scores["accuracy"] == pytest.approx(result.best_score)          # the best weights are back
    assert scores["accuracy"] >= 0.9 > before
    assert result.stopped_early and result.steps < 200
    assert result.best_step == max(result.history.evals["val_accuracy"], key=lambda sv: sv[1])[0]
    assert result.steps == result.best_step + 3 * 5                         # patience 3 evaluations of 5 steps


def test_frozen_layers_do_not_move():
    train, val = token_task(32), token_task(16, seed=1)
    model = with_new_head(tiny_lm(), 2)
    emb = model.body.tok_emb.weight.clone()
    top = model.body.blocks[1].mlp[0].weight.clone()
    finetune(model, train, val, Recipe(trainable=1, max_steps=20, patience=None, lr=1e-2))
    assert torch.equal(model.body.tok_emb.weight, emb)
    assert not torch.equal(model.body.blocks[1].mlp[0].weight, top)


def test_evaluate_scores():
    class Fixed(torch.nn.Module):            # predicts class 0 for everything
        head = torch.nn.Linear(1, 3)

        def forward(self, x):
            return torch.tensor([[2.0, 0.0, 0.0]]).expand(len(x), 3)

    s = evaluate(Fixed(), (torch.zeros(4, 1), torch.tensor([0, 0, 0, 1])))
    assert s["accuracy"] == 0.75 and s["per_class_recall"] == [1.0, 0.0, 0.0]
    assert s["balanced_accuracy"] == 0.5                                      # mean over the 2 classes present
    assert s["macro_f1"] == pytest.approx((2 * 3 / 7 + 0) / 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"trainable": "some"}, "trainable"), ({"lr": 0}, "lr"), ({"layer_decay": 1.5}, "layer_decay"),
    ({"metric": "f2"}, "metric"), ({"class_weight": "auto"}, "class_weight"), ({"warmup": 1.0}, "warmup"),
    ({"patience": 0}, "patience")])
def test_bad_recipes_say_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Recipe(**kwargs)


def test_bad_splits_say_what_is_wrong():
    model = with_new_head(tiny_lm(), 2)
    (ids, mask), y = token_task(8)
    with pytest.raises(TypeError, match="inputs, labels"):
        finetune(model, (ids, mask, y), ((ids, mask), y))
    with pytest.raises(ValueError, match="one class id per input"):
        finetune(model, ((ids, mask), y[:3]), ((ids, mask), y))
    with pytest.raises(ValueError):
        finetune(model, ((ids, mask), y + 5), ((ids, mask), y))            # labels beyond the head


def test_the_recipe_knows_a_hugging_face_bert_body():
    minilm = pytest.importorskip("ptm_lib.text.minilm")
    if not minilm.available():
        pytest.skip(minilm.install_hint())
    model = minilm.MiniLMClassifier(n_classes=3)
    groups = layer_groups(model)
    assert len(groups) == 1 + len(model.body.encoder.layer)          # embeddings + 6 layers
    assert set_trainable(model, 2) == (sum(p.numel() for g in groups[-2:] for p in g)
                                       + sum(p.numel() for p in model.head.parameters()))
