"""Plots and widgets for the lessons.

* `LivePlot` — a loss curve that redraws while training runs in JupyterLab and stays in the
  notebook as a static figure when it is executed headless (papermill, nbval).
* `experiment_panel` — sliders + a Run button around a function; runs once straight away so
  the executed notebook shows a real result.
* `show_source` — display the real source of a library function (lesson and library cannot drift).

Note on ipywidgets: an exception raised inside ``with output_widget:`` is swallowed
(ipywidgets #3208). Here only display calls run inside ``with out:``; the experiment itself
runs outside, and an error in a button click is printed into the panel.
"""
from __future__ import annotations

import inspect
import time
import traceback

import numpy as np
from matplotlib.figure import Figure


def in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, papermill, nbval)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def figure_png(fig: Figure) -> bytes:
    """PNG bytes of a matplotlib Figure (how figures appear in notebook outputs)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    return buf.getvalue()


def register_figure_display() -> None:
    """Let the notebook show bare `Figure` objects (we never use pyplot, so that no figure is
    shown twice and none leaks between cells); does nothing outside a notebook."""
    if not in_notebook():
        return
    from IPython import get_ipython

    get_ipython().display_formatter.formatters["image/png"].for_type(Figure, figure_png)


def _display(obj, out=None, handle=None, clear: bool = True):
    """Show `obj`: into an Output widget `out`, by updating a display `handle`, or as a new output."""
    from IPython.display import display

    if out is not None:
        with out:  # display code only
            if clear:
                out.clear_output(wait=True)
            display(obj)
        return None
    if handle is not None:
        handle.update(obj)
        return handle
    return display(obj, display_id=True)


register_figure_display()


def ema(values, alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average, for a readable curve of noisy mini-batch losses."""
    values = np.asarray(values, dtype=float)
    smoothed = np.empty_like(values)
    acc = values[0] if len(values) else 0.0
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        smoothed[i] = acc
    return smoothed


def history_figure(history, title: str = "", logy: bool = False) -> Figure:
    """Training loss (raw and smoothed) and every evaluated metric against the step."""
    metrics = {k: v for k, v in history.evals.items() if v}
    fig = Figure(figsize=(9 if metrics else 5.5, 3.2), layout="constrained")
    axes = fig.subplots(1, 2 if metrics else 1)
    ax = axes[0] if metrics else axes
    if history.loss:
        ax.plot(history.step, history.loss, color="tab:blue", alpha=0.3, lw=0.8, label="train (batch)")
        ax.plot(history.step, ema(history.loss), color="tab:blue", lw=1.8, label="train (smoothed)")
    for name, points in metrics.items():
        if "loss" in name:
            ax.plot(*zip(*points), "o-", ms=3, label=name)
    ax.set(xlabel="step", ylabel="loss", title=title or "training loss")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    if metrics:
        other = {k: v for k, v in metrics.items() if "loss" not in k}
        for name, points in other.items():
            axes[1].plot(*zip(*points), "o-", ms=3, label=name)
        axes[1].set(xlabel="step", title="evaluation")
        if other:
            axes[1].legend(fontsize=8)
    return fig


class LivePlot:
    """Redraws `history_figure` at most every `min_interval` seconds (less often when drawing is slow,
    so that plotting stays under ~10 % of training time); `finish` draws the last frame.

    With `out` (an ipywidgets.Output) it draws into that widget; otherwise it updates one
    display in the cell. Outside a notebook it does nothing.
    """

    def __init__(self, title: str = "", out=None, min_interval: float = 1.0, logy: bool = False):
        self.title, self.out, self.min_interval, self.logy = title, out, min_interval, logy
        self.enabled = in_notebook()
        self._handle, self._last, self._interval = None, 0.0, min_interval

    def update(self, history, force: bool = False) -> None:
        if not self.enabled or not history.loss:
            return
        now = time.perf_counter()
        if force or now - self._last >= self._interval:
            self._handle = _display(history_figure(history, self.title, self.logy), self.out, self._handle)
            self._last = time.perf_counter()
            # keep drawing under ~10 % of the training time, however slow the machine
            self._interval = max(self.min_interval, 10 * (self._last - now))

    def finish(self, history) -> None:
        self.update(history, force=True)


def experiment_panel(fn, controls: dict, *, run_now: bool = True, button: str = "Run"):
    """Widgets `controls` (name -> ipywidget) plus a Run button; each click calls
    ``fn(out=<Output>, **values)`` and displays what it returns into the panel.

    With `run_now`, `fn` runs once immediately with the current values, in the cell itself and
    with ``out=None`` (so it draws into the cell, not the widget): errors surface normally, and a
    notebook executed headless keeps the result as ordinary output. Returns that result.
    """
    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()
    run = widgets.Button(description=button, button_style="primary", icon="play")

    def values():
        return {name: w.value for name, w in controls.items()}

    def on_click(_):
        run.disabled = True
        out.clear_output()
        try:
            result = fn(out=out, **values())  # computation outside `with out:`
        except Exception:  # show the error in the panel instead of losing it in the kernel log
            out.append_stderr(traceback.format_exc())
            raise
        finally:
            run.disabled = False
        if result is not None:
            _display(result, out, clear=False)

    run.on_click(on_click)
    display(widgets.VBox([widgets.HBox(list(controls.values()) + [run]), out]))
    if run_now:
        result = fn(out=None, **values())
        if result is not None:
            display(result)
        return result
    return None


def show_source(obj) -> None:
    """Display the source code of a function or class from ptm_lib, syntax-highlighted."""
    from IPython.display import Code, display

    display(Code(inspect.getsource(obj), language="python"))
