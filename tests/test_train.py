import math

import pytest
import torch

import ptm_lib as ptm
from ptm_lib.train import NonFiniteLossError, fit, lr_factor, warmup_schedule


def _digits_loader(seed=0):
    s = ptm.load_digits()
    return s, ptm.make_loader(s.X_train, s.y_train, 64, seed=seed)


def test_fit_learns_digits_and_keeps_history():
    ptm.seed_everything(0)
    s, loader = _digits_loader()
    model = ptm.MLP()
    hist = fit(model, ptm.classification_loss, loader, steps=120, lr=1e-2, device="cpu", progress=False,
               eval_fn=lambda m: {"val_acc": ptm.accuracy(m, s.X_val, s.y_val)}, eval_every=40)
    assert hist.step == list(range(1, 121)) and len(hist.loss) == 120
    assert [st for st, _ in hist.evals["val_acc"]] == [40, 80, 120]
    assert hist.last("val_acc") > 0.9
    assert sum(hist.loss[-10:]) / 10 < 0.5 * sum(hist.loss[:10]) / 10
    assert hist.wall_s > 0 and not model.training


def test_fit_is_reproducible_with_a_seed():
    """The same seed: the same losses, validation metrics and weights, to the bit on a CPU (dropout and
    shuffling draw from the seeded generators)."""
    runs = []
    for _ in range(2):
        ptm.seed_everything(7)
        s, loader = _digits_loader(seed=7)
        model = ptm.MLP(ptm.MLPConfig(dropout=0.2))
        history = fit(model, ptm.classification_loss, loader, steps=20, device="cpu", progress=False, eval_every=5,
                      eval_fn=lambda m: {"val_acc": ptm.accuracy(m, s.X_val, s.y_val)})
        runs.append((history.loss, history.evals, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][:2] == runs[1][:2] and len(runs[0][1]["val_acc"]) == 4
    assert all(torch.equal(a, b) for a, b in zip(runs[0][2], runs[1][2]))


def test_fit_continues_history():
    _, loader = _digits_loader()
    model = ptm.MLP()
    h = fit(model, ptm.classification_loss, loader, steps=5, device="cpu", progress=False)
    h = fit(model, ptm.classification_loss, loader, steps=5, device="cpu", progress=False, history=h)
    assert h.step == list(range(1, 11))


def test_nan_loss_stops_training_with_a_clear_message():
    s, loader = _digits_loader()
    model = ptm.MLP()
    with pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf) at step 1.*smaller learning rate"):
        fit(model, lambda m, b: ptm.classification_loss(m, b) * float("nan"), loader, steps=10,
            device="cpu", progress=False)
    # a NaN hidden in the data stops the loop at the step that sees it, not later
    X = s.X_train[:64].clone()
    X[40, 3] = float("nan")
    poisoned = ptm.make_loader(X, s.y_train[:64], 16, shuffle=False)
    with pytest.raises(NonFiniteLossError, match="at step 3 .*check the inputs for NaN"):
        fit(ptm.MLP(), ptm.classification_loss, poisoned, steps=8, device="cpu", progress=False)


def test_bad_labels_and_shapes_give_clear_errors():
    model = ptm.MLP()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
        ptm.classification_loss(model, (torch.zeros(2, 64), torch.tensor([0, 10])))
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 64\)"):
        model(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="the data loader is empty"):
        fit(model, ptm.classification_loss, [], steps=3, device="cpu", progress=False)
    with pytest.raises(ValueError, match="the data loader is empty"):
        fit(model, ptm.classification_loss, [], device="cpu", progress=False)


def test_an_empty_batch_names_its_step():
    full = (torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))
    empty = (torch.zeros(0, 64), torch.zeros(0, dtype=torch.long))
    model = ptm.MLP()
    with pytest.raises(ValueError, match=r"the batch of step 3 \(epoch 1\) is empty: 0 examples"):
        fit(model, ptm.classification_loss, [full, full, empty], steps=4, device="cpu", progress=False)
    assert not model.training  # left in eval mode even when training stops with an error


@pytest.mark.parametrize("name, value", [("steps", 0), ("lr", 0.0), ("lr", -1e-3), ("grad_clip", 0.0),
                                         ("eval_every", 0), ("eval_every", -5)])
def test_non_positive_arguments_are_refused(name, value):
    loader = [(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match=f"{name} must be > 0, got {value}"):
        fit(ptm.MLP(), ptm.classification_loss, loader, **{"steps": 2, name: value}, device="cpu", progress=False)


def test_epochs_must_be_positive():
    loader = [(torch.zeros(4, 64), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        fit(ptm.MLP(), ptm.classification_loss, loader, epochs=0, device="cpu", progress=False)


def test_frozen_model_is_rejected():
    model = ptm.MLP().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, ptm.classification_loss, _digits_loader()[1], steps=1, device="cpu", progress=False)


def test_lr_factor_warms_up_then_decays_by_cosine():
    assert [lr_factor(s, warmup=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert lr_factor(0, warmup=0) == 1.0 and lr_factor(10**6, warmup=0) == 1.0  # no warm-up, no division by 0
    f = [lr_factor(s, warmup=4, total=14, final=0.1) for s in range(20)]
    assert f[3] == 1.0 and f[4] == 1.0                      # the peak is reached, then decay starts
    assert f[9] == pytest.approx(0.1 + 0.9 * 0.5)           # half way: half way between 1 and final
    assert f[14] == pytest.approx(0.1) and f[19] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(f[4:14], f[5:15]))     # strictly decreasing during the decay
    assert lr_factor(5, warmup=0, total=10, final=0.0) == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs, message", [
    ({"step": -1, "warmup": 2}, "step and warmup must be >= 0"),
    ({"step": 0, "warmup": -2}, "step and warmup must be >= 0"),
    ({"step": 0, "warmup": 10, "total": 5}, "total must be >= warmup"),
    ({"step": 0, "warmup": 0, "total": 0}, "total must be >= warmup and >= 1"),
    ({"step": 0, "warmup": 1, "final": 1.5}, r"final must be in \[0, 1\]"),
])
def test_lr_factor_refuses_bad_arguments(kwargs, message):
    step = kwargs.pop("step")
    with pytest.raises(ValueError, match=message):
        lr_factor(step, **kwargs)


def test_warmup_schedule_drives_every_parameter_group_through_fit():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}])
    scheduler = warmup_schedule(optimizer, warmup=4)
    seen = []

    def loss_fn(model, batch):
        seen.append([g["lr"] for g in optimizer.param_groups])
        return (a + b).sum() * 0 + batch.sum()

    model = torch.nn.Module()
    model.a, model.b = a, b
    fit(model, loss_fn, [torch.ones(2)], steps=5, optimizer=optimizer, scheduler=scheduler,
        device="cpu", progress=False, live=False)
    assert [g[0] for g in seen] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert [g[1] for g in seen] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    with pytest.raises(ValueError, match="total must be >= warmup"):
        warmup_schedule(optimizer, warmup=5, total=2)


def test_classification_loss_takes_inputs_then_labels_with_weights():
    """One loss for every classifier: (x, y) and (ids, mask, y) batches, class weights, smoothing."""
    import torch.nn.functional as F

    class TwoInputs(torch.nn.Module):
        def forward(self, a, b):
            return a + b

    a, b = torch.randn(6, 3), torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    got = ptm.classification_loss(TwoInputs(), (a, b, y), weight=w, label_smoothing=0.1)
    assert torch.allclose(got, F.cross_entropy(a + b, y, weight=w, label_smoothing=0.1))
    assert torch.allclose(ptm.classification_loss(torch.nn.Identity(), (a, y)), F.cross_entropy(a, y))
    with pytest.raises(TypeError, match="inputs then labels"):
        ptm.classification_loss(torch.nn.Identity(), (a,))
