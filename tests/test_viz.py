import numpy as np
import pytest

from ptm_lib.train import History
from ptm_lib.viz import LivePlot, ema, experiment_panel, figure_png, history_figure


def _history():
    h = History(step=[1, 2, 3, 4], loss=[2.0, 1.5, 1.0, 0.8])
    h.add_eval(2, {"val_loss": 1.4, "val_acc": 0.5})
    h.add_eval(4, {"val_loss": 0.9, "val_acc": 0.8})
    return h


def test_ema_smooths():
    assert ema([1.0, 1.0, 1.0]).tolist() == [1.0, 1.0, 1.0]
    s = ema([0.0, 10.0], alpha=0.5)
    assert np.allclose(s, [0.0, 5.0])


def test_history_figure_has_losses_and_metrics():
    fig = history_figure(_history(), "t")
    loss_ax, eval_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.lines]
    assert labels == ["train (batch)", "train (smoothed)", "val_loss"]
    assert [line.get_label() for line in eval_ax.lines] == ["val_acc"]
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_liveplot_is_silent_outside_notebooks():
    plot = LivePlot()
    assert plot.enabled is False
    plot.update(_history())
    plot.finish(_history())


def test_experiment_panel_runs_once_in_the_cell_and_propagates_errors():
    pytest.importorskip("ipywidgets")
    import ipywidgets as widgets

    calls = []

    def fn(out, x):
        calls.append((out, x))
        return x * 2

    assert experiment_panel(fn, {"x": widgets.IntSlider(value=3)}) == 6
    assert calls == [(None, 3)]

    def broken(out, x):
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="training crashed"):
        experiment_panel(broken, {"x": widgets.IntSlider(value=1)})
