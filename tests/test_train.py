import math

import pytest
import torch

import ptm_lib as ptm
from ptm_lib.train import NonFiniteLossError, fit


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
    runs = []
    for _ in range(2):
        ptm.seed_everything(7)
        _, loader = _digits_loader(seed=7)
        runs.append(fit(ptm.MLP(), ptm.classification_loss, loader, steps=20, device="cpu", progress=False).loss)
    assert runs[0] == runs[1]


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
    with pytest.raises(ValueError, match="empty"):
        fit(model, ptm.classification_loss, [], steps=3, device="cpu", progress=False)


def test_frozen_model_is_rejected():
    model = ptm.MLP().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(model, ptm.classification_loss, _digits_loader()[1], steps=1, device="cpu", progress=False)


def test_evaluation_helpers():
    from ptm_lib.evaluate import confusion, per_class_accuracy

    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    cm = confusion(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert per_class_accuracy(y_true, y_pred, 3).tolist() == [0.5, 1.0, 0.0]
    model = ptm.MLP()
    X = torch.randn(7, 64)
    assert ptm.predict(model, X, batch_size=3).shape == (7, 10)
    acc = ptm.accuracy(model, X, ptm.predict(model, X).argmax(-1))
    assert math.isclose(acc, 1.0)
