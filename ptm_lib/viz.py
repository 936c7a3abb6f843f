"""Plots and widgets for the lessons.

* `LivePlot` — a loss curve that redraws while training runs in JupyterLab; inside an
  experiment panel it draws into the panel, otherwise into its own cell output.
* `experiment_panel` — controls around a function: a Run button for training, or live updates
  (``live=True``) for panels that only evaluate. The result is shown once, below the panel, as a
  real output that every run replaces (so a notebook executed headless keeps it).
* `show_source` — display the real source of a library function (lesson and library cannot drift).

The `experiment_panel` contract
-------------------------------
``experiment_panel(fn, controls, *, run_now=True, button="Run", live=False) -> ExperimentPanel``

* ``controls`` maps parameter names to ipywidgets; ``fn`` is called as
  ``fn(out=<ipywidgets.Output>, **{name: widget.value})`` and returns what to show (a Figure,
  ``Markdown``, any displayable object, or None).
* Shown in the cell, top to bottom: the controls (a wrapping grid: every slider keeps a usable track
  and its whole description), the Run button (not with ``live=True``), the *run area* (progress bars,
  prints, the live plot, errors: it is emptied when the next run starts), and the **result**: one
  output made with ``display(result, display_id=True)`` that every run ``update()``s. The result is
  never shown twice.
* ``run_now=True``: ``fn`` runs once in the cell itself. Its error propagates like any cell error,
  and a notebook executed headless (papermill, nbclient, nbval) stores the result as an ordinary
  output (image/png, text/markdown) that GitHub and static HTML exports show.
* A click (or, with ``live=True``, any change of a control's value) runs ``fn`` again. ``live=True``
  is for panels that only evaluate (a formula, a plot): no Run button, and sliders get
  ``continuous_update=False`` (one run when the knob is released, not one per pixel).
* Everything ``fn`` displays during a run (tqdm.auto progress bars, ``print``, a `LivePlot` created
  without ``out``) goes to the panel's run area, also from a widget callback, where Jupyter has no
  cell output to put it in (JupyterLab would send it to its log console).
* An exception in a click or a live update is printed into the run area, the result says the run
  failed, and the exception is re-raised (so it also reaches the kernel log): nothing is swallowed.
* The returned `ExperimentPanel` gives ``.result`` (last result), ``.error`` (of the last run, or
  None), ``.controls``, ``.button`` (None when live), ``.output`` (the ``out`` passed to ``fn``),
  ``.log`` (the run area), ``.display.shown`` (what the result output shows), ``.run()`` (what a
  click does) and ``.widget``; it displays nothing itself, so a cell may end with the call.
* A result of None shows as an empty output (still updated by later runs); so does
  ``run_now=False`` until the first run.
* Limit: JupyterLab links the result output to its display id in the page's memory; after a browser
  reload with the kernel still running, runs no longer update it until the cell is run again.

Note on ipywidgets: an exception raised inside ``with output_widget:`` is swallowed (ipywidgets
#3208). Here ``with out:`` only ever wraps display calls; the experiment runs inside
`capture_display`, which routes output the same way but lets exceptions propagate.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
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


# Output widgets of the panel runs in progress (innermost last): where a LivePlot created without
# `out` draws, since display updates by id do not reach an Output widget (ipywidgets #1844).
_ACTIVE_OUTPUTS: list = []


def current_output():
    """The Output widget of the experiment-panel run in progress, or None outside one."""
    return _ACTIVE_OUTPUTS[-1] if _ACTIVE_OUTPUTS else None


@contextlib.contextmanager
def capture_display(out):
    """Send what the block displays or prints (progress bars included) into the Output widget `out`,
    like ``with out:``, but let exceptions propagate instead of swallowing them (ipywidgets #3208).

    Works in a cell and in a widget callback; outside a notebook it does nothing.
    """
    if out is None or not in_notebook():
        yield
        return
    out.__enter__()
    try:
        yield
    finally:
        out.__exit__(None, None, None)  # never pass the exception on: __exit__ would swallow it


def _clear(out) -> None:
    if out is None:
        return
    if in_notebook():
        out.clear_output()  # a clear message: right even when the kernel's copy of `outputs` is stale
    else:
        out.outputs = ()


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
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1] (the weight of the newest value), got {alpha}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence of numbers, got shape {values.shape}")
    smoothed = np.empty_like(values)
    acc = values[0] if len(values) else 0.0
    for i, v in enumerate(values):
        acc = alpha * v + (1 - alpha) * acc
        smoothed[i] = acc
    return smoothed


def history_figure(history, title: str = "", logy: bool = False) -> Figure:
    """Training loss (raw and smoothed) and every evaluated metric against the step.

    Losses (training and any evaluated ``*loss*``) share the left axes; other metrics get a
    second axes. Every axis is labelled."""
    metrics = {k: v for k, v in history.evals.items() if v}
    losses = {k: v for k, v in metrics.items() if "loss" in k}
    other = {k: v for k, v in metrics.items() if "loss" not in k}
    fig = Figure(figsize=(9 if other else 5.5, 3.2), layout="constrained")
    axes = fig.subplots(1, 2 if other else 1)
    ax = axes[0] if other else axes
    if history.loss:
        ax.plot(history.step, history.loss, color="tab:blue", alpha=0.3, lw=0.8, label="train (batch)")
        ax.plot(history.step, ema(history.loss), color="tab:blue", lw=1.8, label="train (smoothed)")
    for name, points in losses.items():
        ax.plot(*zip(*points), "o-", ms=3, label=name)
    ax.set(xlabel="step", ylabel="loss" + (" (log scale)" if logy else ""), title=title or "training loss")
    if logy:
        ax.set_yscale("log")
    if ax.lines:
        ax.legend(fontsize=8)
    if other:
        for name, points in other.items():
            axes[1].plot(*zip(*points), "o-", ms=3, label=name)
        axes[1].set(xlabel="step", ylabel=next(iter(other)) if len(other) == 1 else "metric value",
                    title="evaluation")
        axes[1].legend(fontsize=8)
    return fig


class LivePlot:
    """Redraws `history_figure` at most every `min_interval` seconds (less often when drawing is slow,
    so that plotting stays under ~10 % of training time); `finish` draws the last frame.

    With `out` (an ipywidgets.Output) it draws into that widget; without it, inside an experiment
    panel's run it draws into the panel, elsewhere it updates one display in the cell.
    Outside a notebook it does nothing.
    """

    def __init__(self, title: str = "", out=None, min_interval: float = 1.0, logy: bool = False):
        self.title, self.min_interval, self.logy = title, min_interval, logy
        self.out = out if out is not None else current_output()
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


# Controls wrap into as many columns of at least this width as fit (3 in JupyterLab at 1400 px).
CONTROL_MIN_WIDTH = "320px"
# Controls that need a whole row (a row of buttons does not fit a 320 px column).
_FULL_ROW = ("ToggleButtons", "RadioButtons", "SelectMultiple", "Textarea")


def _fit_control(widget, live: bool) -> None:
    """Make a control fill its grid cell, show its whole description, and (live) update on release."""
    layout = widget.layout
    if layout.width is None:
        layout.width = "100%"
    if layout.min_width is None:
        layout.min_width = "0"
    if type(widget).__name__ in _FULL_ROW and layout.grid_column is None:
        layout.grid_column = "1 / -1"
    style = getattr(widget, "style", None)
    if style is not None and hasattr(style, "description_width") and not style.description_width:
        style.description_width = "initial"
    if live and hasattr(widget, "continuous_update"):
        widget.continuous_update = False


_PANEL_BOX = None


def _panel_box(children, summary: str):
    """A VBox whose plain-text form (what GitHub or a static export shows instead of live widgets)
    says what the panel is, instead of a truncated repr of its children."""
    global _PANEL_BOX
    if _PANEL_BOX is None:
        import ipywidgets as widgets

        class ExperimentPanelBox(widgets.VBox):
            summary = ""

            def __repr__(self):
                return self.summary or super().__repr__()

        _PANEL_BOX = ExperimentPanelBox
    box = _PANEL_BOX(children)
    box.summary = summary
    return box


class _ResultDisplay:
    """The one output that shows a panel's result: ``display(obj, display_id=True)`` once, then
    ``update`` for every run. Remembers what it shows (`shown`), also outside a notebook."""

    def __init__(self, obj):
        from IPython.display import display

        self.shown = obj
        self.handle = display(obj, display_id=True)  # None outside IPython (then it just prints)

    def update(self, obj) -> None:
        self.shown = obj
        if self.handle is not None:
            self.handle.update(obj)


class ExperimentPanel:
    """Controls, a run area and one updating result; made by `experiment_panel` (see module docstring)."""

    def __init__(self, fn, controls: dict, *, run_now: bool = True, button: str = "Run", live: bool = False):
        import ipywidgets as widgets
        from IPython.display import Markdown, display

        self.fn, self.controls, self.live = fn, dict(controls), live
        self.result, self.runs, self.error = None, 0, None
        self.output = widgets.Output()  # `out` for fn: the live plot
        self.log = widgets.Output()     # progress bars, prints, errors
        self._running = False
        for w in self.controls.values():
            _fit_control(w, live)
        grid = widgets.GridBox(list(self.controls.values()), layout=widgets.Layout(
            grid_template_columns=f"repeat(auto-fill, minmax({CONTROL_MIN_WIDTH}, 1fr))",
            grid_gap="6px 24px", width="100%", align_items="center"))
        rows = [grid]
        if live:
            self.button = None
            for w in self.controls.values():
                w.observe(self._on_change, names="value")
        else:
            self.button = widgets.Button(description=button, button_style="primary", icon="play",
                                         layout=widgets.Layout(width="auto", min_width="120px"))
            self.button.on_click(lambda _: self.run())
            rows.append(self.button)
        rows += [self.log, self.output]
        names = ", ".join(getattr(w, "description", "") or name for name, w in self.controls.items())
        how = "updates when a control changes" if live else f"press {button!r} to run"
        self.widget = _panel_box(rows, f"[interactive panel: {names}; {how}; needs a running kernel. "
                                       "The result of the first run is shown below.]")
        self._label = button
        display(self.widget)
        if run_now:
            self.result = self._call()  # in the cell: an error propagates like any cell error
            self.runs = 1
        self.display = _ResultDisplay(self.result if self.result is not None else Markdown(""))

    def values(self) -> dict:
        return {name: w.value for name, w in self.controls.items()}

    def _call(self):
        """Run fn with the current values; what it displays goes into the run area."""
        _clear(self.log)
        _clear(self.output)
        _ACTIVE_OUTPUTS.append(self.output)
        try:
            with capture_display(self.log):  # routes output only: exceptions propagate
                return self.fn(out=self.output, **self.values())
        finally:
            _ACTIVE_OUTPUTS.pop()

    def run(self):
        """What a click does: run fn, update the result; on error print it into the panel and re-raise."""
        from IPython.display import Markdown

        if self._running:
            return self.result
        self._running = True
        if self.button is not None:
            self.button.disabled, self.button.description = True, "Running…"
        try:
            result = self._call()
        except Exception as exc:
            self.error = exc
            self._show_error(traceback.format_exc())
            self.display.update(Markdown(f"**The run failed:** `{type(exc).__name__}: {exc}` "
                                         "(the traceback is in the panel above)."))
            raise
        finally:
            self._running = False
            if self.button is not None:
                self.button.disabled, self.button.description = False, self._label
        self.result, self.error = result, None
        self.runs += 1
        self.display.update(result if result is not None else Markdown(""))
        return result

    def _on_change(self, change) -> None:
        if not self._running:
            self.run()

    def _show_error(self, text: str) -> None:
        if in_notebook():
            with capture_display(self.log):  # display code only
                sys.stderr.write(text)
                sys.stderr.flush()
        else:
            self.log.append_stderr(text)

    def _ipython_display_(self):
        """The panel is already on screen where it was made; `display(panel.widget)` shows it again."""

    def __repr__(self):
        return (f"<ExperimentPanel {getattr(self.fn, '__name__', 'fn')}: {self.runs} run(s), "
                f"{'live' if self.live else 'Run button'}>")


def experiment_panel(fn, controls: dict, *, run_now: bool = True, button: str = "Run",
                     live: bool = False) -> ExperimentPanel:
    """Controls (name -> ipywidget) around `fn`, called as ``fn(out=<Output>, **values)``.

    Training panels get a Run button; with ``live=True`` (panels that only evaluate) every change
    of a control reruns `fn`. The result is displayed once, below the panel, and each run updates
    it; with `run_now` the first run happens in the cell (errors propagate, headless runs keep the
    result). Returns the `ExperimentPanel`. Full contract: this module's docstring.
    """
    return ExperimentPanel(fn, controls, run_now=run_now, button=button, live=live)


def show_source(obj) -> None:
    """Display the source code of a function or class from ptm_lib, syntax-highlighted."""
    from IPython.display import Code, display

    display(Code(inspect.getsource(obj), language="python"))
