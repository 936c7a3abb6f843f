"""ptm_lib.evaluate: one predict/accuracy for every model (tensor or (ids, mask) inputs)."""
import numpy as np
import pytest
import torch
from torch import nn

import ptm_lib as ptm
from ptm_lib.evaluate import accuracy, confusion, per_class_accuracy, predict


class Echo(nn.Module):
    """logits = x (an identity layer), recording the state it was called in."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.lin = nn.Linear(n, n, bias=False)
        nn.init.eye_(self.lin.weight)
        self.calls = []

    def forward(self, x):
        self.calls.append((len(x), self.training, torch.is_grad_enabled(), torch.is_autocast_enabled("cpu")))
        return self.lin(x)


class MaskedSum(nn.Module):
    """A text-like model called as model(ids, mask): logits (B, 2) = [sum of real ids, 0]."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, ids, mask):
        total = (ids * mask).sum(1).float() * self.scale
        return torch.stack([total, torch.zeros_like(total)], 1)


def test_predict_gives_cpu_float_logits_in_batches():
    X = torch.randn(7, 3)
    model = Echo()
    logits = predict(model, X, batch_size=3)
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    assert torch.allclose(logits, X) and [n for n, *_ in model.calls] == [3, 3, 1]
    # eval mode, no gradients, and no autocast on the CPU during the forward passes
    assert {tuple(state) for _, *state in model.calls} == {(False, False, False)}


@pytest.mark.parametrize("was_training", [True, False])
def test_predict_restores_the_previous_mode(was_training):
    model = Echo().train(was_training)
    predict(model, torch.zeros(2, 3))
    assert model.training is was_training
    with pytest.raises(RuntimeError):  # a forward that fails still restores the mode
        predict(model, torch.zeros(2, 5))
    assert model.training is was_training


def test_accuracy_matches_a_hand_count():
    X = torch.eye(3)[[0, 1, 2, 0, 1]]           # Echo predicts classes 0, 1, 2, 0, 1
    y = torch.tensor([0, 1, 1, 0, 2])           # 3 of 5 right
    assert accuracy(Echo(), X, y) == pytest.approx(0.6)
    assert accuracy(Echo(), X, y, batch_size=2) == pytest.approx(0.6)


def test_tuple_inputs_are_batched_together():
    ids = torch.tensor([[1, 2, 9], [0, 0, 0], [3, 0, 0], [0, 5, 0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0]])
    logits = predict(MaskedSum(), (ids, mask), batch_size=3)
    assert logits[:, 0].tolist() == [3.0, 0.0, 3.0, 5.0]
    # class 0 wins where the sum is positive; ties (sum 0) go to class 0 as argmax's first index
    assert accuracy(MaskedSum(), [ids, mask], torch.tensor([0, 0, 1, 1])) == pytest.approx(0.5)


def test_bad_inputs_give_clear_errors():
    model, X = Echo(), torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"differ in length \(first dimension\): \[4, 3\]"):
        predict(MaskedSum(), (torch.zeros(4, 2), torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="inputs are empty"):
        predict(model, torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"inputs must be a tensor \(N, \.\.\.\) or a tuple/list"):
        predict(model, [])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predict(model, X, batch_size=0)
    with pytest.raises(ValueError, match=r"labels y must have shape \(4,\).*got \(3,\)"):
        accuracy(model, X, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels y must have shape \(4,\).*got \(4, 1\)"):
        accuracy(model, X, torch.zeros(4, 1, dtype=torch.long))


def test_course_models_work_with_predict():
    model = ptm.MLP()
    X = torch.randn(5, 64)
    expected = model.eval()(X).detach()
    assert torch.allclose(ptm.predict(model, X, batch_size=2), expected, atol=1e-6)
    assert ptm.accuracy(model, X, expected.argmax(-1)) == 1.0


def test_confusion_and_per_class_accuracy():
    y_true, y_pred = [0, 0, 1, 1, 2], [0, 1, 1, 1, 0]
    assert confusion(y_true, y_pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert per_class_accuracy(y_true, y_pred, 3).tolist() == [0.5, 1.0, 0.0]
    assert per_class_accuracy([0, 0], [0, 1], 3).tolist() == [0.5, 0.0, 0.0]  # a class with no examples: 0


def test_labels_needed_interpolates_in_log_budget_and_marks_censoring():
    from ptm_lib.evaluate import labels_needed

    budgets, acc = [1, 2, 4, 8], [0.2, 0.4, 0.6, 0.8]
    assert labels_needed(budgets, acc, 0.6).value == pytest.approx(4)
    assert labels_needed(budgets, acc, 0.5).value == pytest.approx(2 ** 1.5)   # halfway in log2
    assert not labels_needed(budgets, acc, 0.5).censored
    never = labels_needed(budgets, acc, 0.9)
    assert never.bound == "lower" and never.value == 8 and never.censored and str(never).startswith("> 8")
    assert labels_needed(budgets, acc, 0.1).bound == "upper"
    # the first crossing counts, even if the curve dips later
    assert labels_needed([1, 2, 4, 8], [0.2, 0.7, 0.5, 0.9], 0.6).value == pytest.approx(2 ** 0.8)
    with pytest.raises(ValueError, match="increasing"):
        labels_needed([2, 1], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="same non-zero length"):
        labels_needed([1, 2], [0.1], 0.5)


def test_linear_probe_picks_c_on_validation_and_scores_test_once():
    from ptm_lib.evaluate import linear_probe

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] > 0).astype(int)
    train, val, test = (X[:60], y[:60]), (X[60:90], y[60:90]), (X[90:], y[90:])
    r = linear_probe(train, val, test, grid=(0.001, 1.0))
    alone = {C: linear_probe(train, val, test, grid=(C,)) for C in (0.001, 1.0)}
    assert r["C"] == max(alone, key=lambda C: (alone[C]["val"], -C)) and r["test"] == alone[r["C"]]["test"]
    assert r["test"] > 0.8
    with pytest.raises(ValueError, match="at least 2 classes"):
        linear_probe((X[:5], np.zeros(5, int)), val, test)
    with pytest.raises(ValueError, match="C in grid must be > 0"):
        linear_probe(train, val, test, grid=(0.0,))
