import pytest
import torch

from ptm_lib import finetune
from ptm_lib.text import make_topic_task
from ptm_lib.transformer import TransformerConfig, TransformerLM


@pytest.fixture(scope="module")
def setup(lang, tok):
    task = make_topic_task(lang, pool_per_class=16, n_test_per_class=10)
    torch.manual_seed(0)
    lm = TransformerLM(TransformerConfig(vocab_size=len(tok), max_len=32, d_model=16, n_heads=2, n_layers=2))
    return lm, finetune.encode_task(task, tok, 32)


def test_encode_task_shapes(setup):
    _, data = setup
    ids, mask, y = data.train
    assert ids.shape == mask.shape and ids.shape[0] == len(y) == 16 * 6 and ids.shape[1] <= 32
    assert data.n_classes == 6 and set(y.tolist()) == set(range(6))


def test_partial_freezes_all_but_last_block_and_head(setup):
    lm, data = setup
    model = finetune.make_classifier("partial", lm, data.n_classes)
    trainable = {n.split(".")[1] if n.startswith("body.") else n.split(".")[0]
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"blocks", "ln_f", "head"}
    assert all(not p.requires_grad for p in model.body.blocks[0].parameters())
    assert all(p.requires_grad for p in model.body.blocks[-1].parameters())
    full = finetune.make_classifier("full", lm, data.n_classes)
    assert torch.equal(full.body.tok_emb.weight, lm.body.tok_emb.weight)  # pretrained weights copied
    scratch = finetune.make_classifier("scratch", lm, data.n_classes)
    assert not torch.equal(scratch.body.tok_emb.weight, lm.body.tok_emb.weight)
    with pytest.raises(ValueError, match="strategy must be one of"):
        finetune.make_classifier("magic", lm, 6)


@pytest.mark.parametrize("strategy", finetune.STRATEGIES)
def test_run_strategy_returns_accuracies(setup, strategy):
    lm, data = setup
    r = finetune.run_strategy(strategy, lm, data, per_class=2, seed=0)
    assert r["strategy"] == strategy and r["per_class"] == 2
    assert 0.0 <= r["test"] <= 1.0 and 0.0 <= r["unseen"] <= 1.0 and r["seconds"] > 0
    assert (r["history"] is None) == (strategy == "probe")


def test_training_moves_only_trainable_weights_and_loss_falls(setup):
    lm, data = setup
    model = finetune.make_classifier("partial", lm, data.n_classes)
    frozen_before = [p.clone() for p in model.body.blocks[0].parameters()]
    last_before = [p.clone() for p in model.body.blocks[-1].parameters()]
    hist = finetune.train_classifier(model, data.train, steps=40, lr=1e-2, head_lr=1e-2, device="cpu")
    assert sum(hist.loss[-5:]) / 5 < sum(hist.loss[:5]) / 5
    assert all(torch.equal(a, b) for a, b in zip(frozen_before, model.body.blocks[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(last_before, model.body.blocks[-1].parameters()))


def test_bad_labels_are_a_clear_error(setup):
    lm, data = setup
    ids, mask, y = data.train
    model = finetune.make_classifier("full", lm, data.n_classes)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\]"):
        finetune.text_classification_loss(model, (ids[:4], mask[:4], torch.tensor([0, 1, 2, 6])))


def test_label_smoothing_option_matches_torch(setup):
    import torch.nn.functional as F

    lm, data = setup
    model = finetune.make_classifier("full", lm, data.n_classes).eval()
    ids, mask, y = (t[:8] for t in data.train)
    T = int(mask.sum(1).max())
    logits = model(ids[:, :T], mask[:, :T])
    for eps in (0.0, 0.1):
        expected = F.cross_entropy(logits, y, label_smoothing=eps)
        assert torch.allclose(finetune.text_classification_loss(model, (ids, mask, y), label_smoothing=eps), expected)
    assert finetune.text_classification_loss(model, (ids, mask, y), 0.1) != finetune.text_classification_loss(model, (ids, mask, y))


def test_accuracy_predict_in_batches_and_empty_split(setup):
    import math

    lm, data = setup
    model = finetune.make_classifier("full", lm, data.n_classes)
    ids, mask, _ = data.test
    logits = finetune.predict(model, ids, mask, batch_size=7)
    assert logits.shape == (len(ids), data.n_classes)
    assert torch.allclose(logits, finetune.predict(model, ids, mask), atol=1e-5)
    y = logits.argmax(-1)
    assert finetune.accuracy(model, (ids, mask, y)) == 1.0
    assert math.isnan(finetune.accuracy(model, (ids[:0], mask[:0], y[:0])))
