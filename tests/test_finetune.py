"""Fine-tuning strategies: what trains, settings chosen on validation, the random-encoder control."""
import numpy as np
import pytest
import torch

import ptm_lib as ptm

from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.text import finetune, make_topic_task


@pytest.fixture(scope="module")
def setup(lang, tok):
    task = make_topic_task(lang, pool_per_class=16, n_val_per_class=6, n_test_per_class=10)
    torch.manual_seed(0)
    lm = TransformerLM(TransformerConfig(vocab_size=len(tok), max_len=32, d_model=16, n_heads=2, n_layers=2))
    return lm, finetune.encode_task(task, tok, 32)


def test_encode_task_shapes(setup):
    _, data = setup
    ids, mask, y = data.train
    assert ids.shape == mask.shape and ids.shape[0] == len(y) == 16 * 6 and ids.shape[1] <= 32
    assert len(data.val[2]) == 36 and len(data.test[2]) == 60 and len(data.unseen[2]) == 0
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
    with pytest.raises(ValueError, match="builds 'scratch', 'partial' or 'full'"):
        finetune.make_classifier("magic", lm, 6)


def test_random_encoder_is_the_same_architecture_with_other_weights(setup):
    lm, _ = setup
    rnd = finetune.random_encoder(lm, seed=3)
    assert rnd.config == lm.config
    assert not torch.equal(rnd.token_embeddings, lm.token_embeddings)
    assert torch.equal(rnd.token_embeddings, finetune.random_encoder(lm, seed=3).token_embeddings)   # seeded
    state = torch.random.get_rng_state()
    finetune.random_encoder(lm, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())       # does not disturb the caller's random stream


@pytest.mark.parametrize("strategy", finetune.STRATEGIES)
def test_run_strategy_keeps_the_setting_with_the_best_validation_accuracy(setup, strategy, monkeypatch):
    lm, data = setup
    r = finetune.run_strategy(strategy, lm, data, per_class=2, seed=0, steps=5)
    assert r["strategy"] == strategy and r["per_class"] == 2 and r["seconds"] > 0
    assert r["setting"] in finetune.RECIPES[strategy]["grid"] and np.isnan(r["unseen"])
    assert (r["history"] is None) == (strategy in ("probe", "random_probe"))
    # each grid value alone, then the pick: the chosen one has the best validation accuracy
    alone = {g: finetune.run_strategy(strategy, lm, data, per_class=2, seed=0, steps=5, grid=(g,))
             for g in finetune.RECIPES[strategy]["grid"]}
    best = max(alone.values(), key=lambda x: x["val"])
    assert r["val"] == best["val"] and r["test"] == alone[r["setting"]]["test"]


def test_probe_reads_pretrained_features_and_the_control_random_ones(setup):
    lm, data = setup
    pre = finetune.probe_features(lm, data)
    rnd = finetune.probe_features(finetune.random_encoder(lm, 5), data)   # (lm itself was made with seed 0)
    assert set(pre) == {"train", "val", "test", "unseen"} and pre["train"].shape == (len(data.train[2]), 16)
    a = finetune.run_strategy("probe", lm, data, 4, 5, features=pre)
    b = finetune.run_strategy("probe", lm, data, 4, 5)                 # computes the same features itself
    c = finetune.run_strategy("random_probe", lm, data, 4, 5, features=rnd)
    d = finetune.run_strategy("random_probe", lm, data, 4, 5)          # builds random_encoder(lm, seed) itself
    assert a["test"] == b["test"] and c["test"] == d["test"]
    assert not np.allclose(pre["test"], rnd["test"])


def test_run_many_equals_running_one_by_one(setup):
    lm, data = setup
    jobs = [("scratch", 1, 0), ("full", 2, 1), ("probe", 2, 0)]
    parallel = finetune.run_many(jobs, lm, data, n_jobs=2, steps=4, progress=False)
    serial = [finetune.run_strategy(s, lm, data, n, seed, steps=4) for s, n, seed in jobs]
    assert [(r["strategy"], r["per_class"], r["seed"]) for r in parallel] == jobs
    for p, q in zip(parallel, serial):
        assert p["test"] == q["test"] and p["val"] == q["val"] and p["setting"] == q["setting"]


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
        ptm.classification_loss(model, (ids[:4], mask[:4], torch.tensor([0, 1, 2, 6])))
    with pytest.raises(ValueError, match="strategy must be one of"):
        finetune.run_strategy("magic", lm, data, 1, 0)


def test_label_smoothing_option_matches_torch(setup):
    import torch.nn.functional as F

    lm, data = setup
    model = finetune.make_classifier("full", lm, data.n_classes).eval()
    ids, mask, y = (t[:8] for t in data.train)
    T = int(mask.sum(1).max())
    logits = model(ids[:, :T], mask[:, :T])
    for eps in (0.0, 0.1):
        expected = F.cross_entropy(logits, y, label_smoothing=eps)
        assert torch.allclose(ptm.classification_loss(model, (ids, mask, y), label_smoothing=eps), expected)


def test_mean_features_restores_mode_and_ignores_padding(setup):
    lm, data = setup
    lm.train()
    ids, mask, _ = data.test
    f = finetune.mean_features(lm, ids, mask)
    assert lm.training                                          # the caller's mode is restored
    extra = torch.cat([ids, torch.zeros(len(ids), 3, dtype=torch.long)], 1)
    more_mask = torch.cat([mask, torch.zeros(len(ids), 3, dtype=torch.bool)], 1)
    assert np.allclose(f, finetune.mean_features(lm, extra, more_mask), atol=1e-5)


def test_train_classifier_groups_by_length_and_still_learns(setup):
    lm, data = setup
    model = finetune.make_classifier("full", lm, data.n_classes)
    h = finetune.train_classifier(model, data.train, steps=30, lr=3e-3, seed=0, group_by_length=True)
    assert h.loss[-1] < h.loss[0]
