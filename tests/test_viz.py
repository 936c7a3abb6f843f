"""Plots and experiment panels (ptm_lib.viz).

Panels are tested three ways: with ipywidgets objects directly (a click is `button.click()`, a
change is setting `.value`), in a real kernel driven over the Jupyter protocol (a click is the
`comm_msg` a browser sends; the messages are routed to Output widgets the way JupyterLab does), and
in a notebook executed headless by nbclient (what papermill, nbval and `make execute` see).
"""
import json
import os
import types

import nbformat
import numpy as np
import pytest

from ptm_lib import viz
from ptm_lib.train import History
from ptm_lib.viz import LivePlot, ema, experiment_panel, figure_png, history_figure

widgets = pytest.importorskip("ipywidgets")


def _history():
    h = History(step=[1, 2, 3, 4], loss=[2.0, 1.5, 1.0, 0.8])
    h.add_eval(2, {"val_loss": 1.4, "val_acc": 0.5})
    h.add_eval(4, {"val_loss": 0.9, "val_acc": 0.8})
    return h


def test_ema_smooths():
    assert ema([1.0, 1.0, 1.0]).tolist() == [1.0, 1.0, 1.0]
    s = ema([0.0, 10.0], alpha=0.5)
    assert np.allclose(s, [0.0, 5.0])


# ---------------------------------------------------------------------------------------- figures

def test_history_figure_has_losses_and_metrics():
    fig = history_figure(_history(), "t")
    loss_ax, eval_ax = fig.axes
    labels = [line.get_label() for line in loss_ax.lines]
    assert labels == ["train (batch)", "train (smoothed)", "val_loss"]
    assert [line.get_label() for line in eval_ax.lines] == ["val_acc"]
    assert figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("evals", [{"val_acc": 0.5}, {"val_acc": 0.5, "val_f1": 0.4}, {"val_loss": 1.0}, {}])
def test_history_figure_labels_every_axis(evals):
    h = History(step=[1, 2], loss=[1.0, 0.5])
    if evals:
        h.add_eval(2, evals)
    fig = history_figure(h, logy=True)
    has_other = any("loss" not in k for k in evals)
    assert len(fig.axes) == (2 if has_other else 1), "no empty evaluation axes"
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel(), f"unlabelled axis in {ax.get_title()!r}"
    if len(evals) == 1 and has_other:
        assert fig.axes[1].get_ylabel() == "val_acc"


def test_liveplot_is_silent_outside_notebooks():
    plot = LivePlot()
    assert plot.enabled is False
    plot.update(_history())
    plot.finish(_history())


def test_liveplot_keeps_drawing_under_a_tenth_of_training_time(monkeypatch):
    """Fake clock: a training step takes 10 ms, a redraw 50 ms. Drawing must stay under ~10 %."""
    clock = types.SimpleNamespace(t=0.0)
    monkeypatch.setattr(viz.time, "perf_counter", lambda: clock.t)
    draws = []

    def slow_display(obj, out=None, handle=None, clear=True):
        draws.append(clock.t)
        clock.t += 0.05
        return handle

    monkeypatch.setattr(viz, "_display", slow_display)
    monkeypatch.setattr(viz, "history_figure", lambda *a, **k: None)
    plot = LivePlot(min_interval=0.0)
    plot.enabled = True
    h = History(step=[0], loss=[1.0])
    for _ in range(2000):
        clock.t += 0.01
        plot.update(h)
    plot.finish(h)
    draw_time = 0.05 * len(draws)
    assert len(draws) > 5, "it still redraws during training"
    assert draw_time / clock.t < 0.11, f"{len(draws)} redraws took {draw_time / clock.t:.0%} of the time"


def test_liveplot_without_out_draws_into_the_running_panel():
    seen = {}

    def fn(out, x):
        seen["plot_out"] = LivePlot().out
        seen["out"] = out
        return x

    panel = experiment_panel(fn, {"x": widgets.IntSlider(value=1)})
    assert seen["out"] is panel.output and seen["plot_out"] is panel.output
    assert viz.current_output() is None and LivePlot().out is None


# ------------------------------------------------------------------------- panels, widgets directly

def _recording_display(monkeypatch):
    """Replace IPython's display: record every new output and every update of a display id."""
    import IPython.display

    log = {"displayed": [], "updates": []}

    class Handle:
        def __init__(self, obj):
            self.obj = obj

        def update(self, obj):
            log["updates"].append(obj)

    def display(*objs, display_id=None, **kwargs):
        log["displayed"].extend(objs)
        return Handle(objs[0]) if display_id else None

    monkeypatch.setattr(IPython.display, "display", display)
    return log


def test_experiment_panel_runs_once_in_the_cell_and_propagates_errors():
    calls = []

    def fn(out, x):
        calls.append((out, x))
        return x * 2

    panel = experiment_panel(fn, {"x": widgets.IntSlider(value=3)})
    assert panel.result == 6 and panel.runs == 1
    assert calls == [(panel.output, 3)], "fn gets the panel's Output widget as `out`"

    def broken(out, x):
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="training crashed"):
        experiment_panel(broken, {"x": widgets.IntSlider(value=1)})


def test_the_result_is_shown_once_and_every_run_updates_it(monkeypatch):
    log = _recording_display(monkeypatch)
    slider = widgets.IntSlider(value=3, description="x")
    panel = experiment_panel(lambda out, x: f"x = {x}", {"x": slider})
    assert log["displayed"] == [panel.widget, "x = 3"], "the panel, then the first result: nothing else"
    for value in (4, 5):
        slider.value = value  # a Run panel does not run on a change
        assert panel.runs == 1 + (value - 4)
        panel.button.click()
    assert log["displayed"] == [panel.widget, "x = 3"], "clicks add no new output"
    assert log["updates"] == ["x = 4", "x = 5"] and panel.result == "x = 5" and panel.display.shown == "x = 5"
    assert panel.controls["x"].value == 5 and panel.button.disabled is False


def test_run_now_false_shows_an_empty_result_that_the_first_click_fills(monkeypatch):
    log = _recording_display(monkeypatch)
    calls = []
    panel = experiment_panel(lambda out, x: calls.append(x) or x, {"x": widgets.IntSlider(value=2)}, run_now=False)
    assert calls == [] and panel.result is None and len(log["displayed"]) == 2
    panel.button.click()
    assert calls == [2] and log["updates"] == [2]


def test_an_error_in_a_click_is_printed_into_the_panel_and_re_raised(monkeypatch, caplog):
    log = _recording_display(monkeypatch)
    slider = widgets.IntSlider(value=1, description="x")
    panel = experiment_panel(lambda out, x: 10 // x, {"x": slider})
    slider.value = 0
    with pytest.raises(ZeroDivisionError):
        panel.run()  # what a click does
    text = "".join(o.get("text", "") for o in panel.log.outputs)
    assert "ZeroDivisionError" in text and "Traceback" in text, "the traceback is shown in the panel"
    assert "The run failed" in log["updates"][-1].data, "the result does not keep showing a stale number"
    assert panel.button.disabled is False and panel.error is not None
    # A real click: ipywidgets' callback dispatcher receives the exception and reports it (kernel log).
    caplog.clear()
    panel.button.click()
    assert any("ZeroDivisionError" in r.getMessage() or (r.exc_info and r.exc_info[0] is ZeroDivisionError)
               for r in caplog.records)
    slider.value = 5
    panel.button.click()
    assert panel.result == 2 and panel.error is None and panel.log.outputs == (), "the next run starts clean"


def test_live_panels_update_on_change_without_a_run_button(monkeypatch):
    log = _recording_display(monkeypatch)
    calls = []

    def formula(out, a, b):
        calls.append((a, b))
        if a < 0:
            raise ValueError("a must be >= 0")
        return a + b

    a = widgets.FloatSlider(value=1.0, min=-5, max=5, description="a")
    b = widgets.Dropdown(options=[1, 2, 3], value=1, description="b")
    panel = experiment_panel(formula, {"a": a, "b": b}, live=True)
    assert panel.button is None, "nothing to click: it updates by itself"
    assert not any(isinstance(w, widgets.Button) for w in panel.widget.children)
    assert a.continuous_update is False, "one evaluation when the knob is released, not one per pixel"
    a.value = 2.5
    b.value = 3
    assert calls == [(1.0, 1), (2.5, 1), (2.5, 3)]
    assert log["updates"] == [3.5, 5.5] and len(log["displayed"]) == 2
    with pytest.raises(ValueError, match="a must be"):  # an error in a live update propagates too
        a.value = -1.0
    assert "a must be" in "".join(o.get("text", "") for o in panel.log.outputs)


def test_controls_wrap_in_a_grid_with_usable_sliders_and_full_descriptions():
    """Chapter 04's panel: six sliders and a dropdown must not squeeze into one row."""
    def slider(name):
        return widgets.FloatSlider(value=0.0, min=-6, max=6, step=0.25, description=name)

    controls = {f"z{i}": slider(f"logit z{i}") for i in range(4)}
    controls["temperature"] = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, description="temperature τ")
    controls["true_class"] = widgets.Dropdown(options=[0, 1, 2, 3], description="true class")
    controls["smoothing"] = widgets.FloatSlider(value=0.0, min=0, max=0.5, description="smoothing ε")
    controls["strategy"] = widgets.ToggleButtons(options=["scratch", "probe", "partial", "full"], description="strategy")
    fixed = widgets.IntSlider(description="fixed", layout=widgets.Layout(width="200px"))
    controls["fixed"] = fixed
    panel = experiment_panel(lambda out, **kw: None, controls)
    grid, button = panel.widget.children[:2]
    assert isinstance(grid, widgets.GridBox) and list(grid.children) == list(controls.values())
    template = grid.layout.grid_template_columns
    assert "auto-fill" in template and "minmax(" in template, "columns wrap instead of shrinking"
    min_px = int(viz.CONTROL_MIN_WIDTH.removesuffix("px"))
    assert min_px >= 300, "a column leaves a slider a real track next to its description and readout"
    assert 1400 // min_px >= 3 >= 1, "several controls per row at 1400 px"
    assert button is panel.button, "the Run button has its own row: never cut off at the right edge"
    for name, w in controls.items():
        if w is fixed:
            assert w.layout.width == "200px", "a width the lesson chose is kept"
            continue
        assert w.layout.width == "100%", f"{name} fills its column"
        assert w.style.description_width == "initial", f"{name}: the description is not truncated"
    assert controls["strategy"].layout.grid_column == "1 / -1", "a row of buttons gets a whole row"
    assert controls["z0"].continuous_update is True, "Run panels leave continuous_update alone"


def test_panel_text_fallback_says_what_it_is():
    panel = experiment_panel(lambda out, lr: lr, {"lr": widgets.FloatSlider(value=0.1, description="learning rate")})
    bundle = panel.widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("[interactive panel: learning rate;"), bundle["text/plain"]
    assert "ExperimentPanel" in repr(panel)


# ----------------------------------------------------- panels in a real kernel (the browser's view)

KERNEL_SETUP = """
import json
import types
import ipywidgets as widgets
from IPython.display import Markdown
from tqdm.auto import tqdm
from ptm_lib.viz import LivePlot, experiment_panel

def train(out, n):
    for _ in tqdm(range(n), desc="steps"):
        pass
    print("trained", n)
    LivePlot("loss", min_interval=0).finish(types.SimpleNamespace(step=[1, 2], loss=[1.0, 0.5], evals={}))
    if n == 13:
        raise ValueError("unlucky")
    return Markdown(f"**result {n}**")

def formula(out, a):
    return Markdown(f"a squared = {a * a}")

slider = widgets.IntSlider(value=3, description="steps")
panel = experiment_panel(train, {"n": slider})
live_slider = widgets.IntSlider(value=2, description="a")
live = experiment_panel(formula, {"a": live_slider}, live=True)
print(json.dumps({"button": panel.button.model_id, "log": panel.log.model_id, "out": panel.output.model_id,
                  "slider": slider.model_id, "live_slider": live_slider.model_id,
                  "live_log": live.log.model_id, "live_out": live.output.model_id}))
"""


def _kernel_env():
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "PTM_SMOKE")}
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120, env=_kernel_env())
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _messages(kc, parent_id, timeout=60):
    """Every iopub message caused by request `parent_id`, in order, until the kernel is idle again."""
    msgs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != parent_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs
        msgs.append(msg)


def _route(msgs, outputs):
    """Where JupyterLab puts each output: an Output widget whose `msg_id` equals the message's parent
    captures it (the innermost, i.e. most recently set, wins); otherwise it goes to the cell the
    request came from, which for a widget callback means JupyterLab's log console."""
    capturing = {}  # Output comm id -> msg_id it captures
    routed = {name: [] for name in outputs}
    routed["elsewhere"] = []
    order = []
    for msg in msgs:
        if msg["msg_type"] == "comm_msg":
            data = msg["content"]["data"]
            if data.get("method") == "update" and "msg_id" in data.get("state", {}):
                comm = msg["content"]["comm_id"]
                capturing.pop(comm, None)
                if data["state"]["msg_id"]:
                    capturing[comm] = data["state"]["msg_id"]
                order = [c for c in order if c != comm] + ([comm] if comm in capturing else [])
            continue
        if msg["msg_type"] not in ("display_data", "stream", "error", "execute_result", "clear_output",
                                   "update_display_data"):
            continue
        parent = msg["parent_header"]["msg_id"]
        target = next((c for c in reversed(order) if capturing[c] == parent), None)
        if msg["msg_type"] == "update_display_data":
            target = None  # JupyterLab routes updates by display id, to the output that has it
        name = next((n for n, comm in outputs.items() if comm == target), "elsewhere")
        routed[name].append(msg)
    return routed


def _send_comm(kc, comm_id, data):
    msg = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
    kc.shell_channel.send(msg)
    return msg["header"]["msg_id"]


def _kinds(msgs):
    out = []
    for m in msgs:
        c = m["content"]
        if m["msg_type"] == "stream":
            out.append(("stream", c["text"]))
        elif m["msg_type"] == "error":
            out.append(("error", c["ename"]))
        else:
            out.append((m["msg_type"], sorted(c.get("data", {}))))
    return out


@pytest.fixture(scope="module")
def kernel_panels(kernel):
    msg_id = kernel.execute(KERNEL_SETUP)
    msgs = _messages(kernel, msg_id)
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    assert not errors, errors
    ids = json.loads(next(m["content"]["text"] for m in msgs if m["msg_type"] == "stream"
                          and m["content"]["text"].startswith("{")))
    result_ids = [m["content"]["transient"]["display_id"] for m in msgs if m["msg_type"] == "display_data"
                  and "text/markdown" in m["content"]["data"]]
    return ids, msgs, result_ids


def test_kernel_first_run_draws_in_the_panel_and_leaves_one_result_in_the_cell(kernel_panels):
    ids, msgs, result_ids = kernel_panels
    routed = _route(msgs, {"log": ids["log"], "out": ids["out"]})
    cell = _kinds(routed["elsewhere"])
    markdown = [k for k in cell if k[0] == "display_data" and "text/markdown" in k[1]]
    assert len(markdown) == 2 and len(result_ids) == 2, "each panel shows its first result once, in the cell"
    assert not [k for k in cell if k[0] == "stream" and "trained" in k[1]], "prints stay in the panel"
    assert ("stream", "trained 3\n") in _kinds(routed["log"])
    assert any(k == ("display_data", ["image/png", "text/plain"]) for k in _kinds(routed["out"])), "live plot"


def test_kernel_click_sends_progress_and_plot_into_the_panel_and_updates_the_result(kernel, kernel_panels):
    ids, _, result_ids = kernel_panels
    click = _send_comm(kernel, ids["button"], {"method": "custom", "content": {"event": "click"}})
    routed = _route(_messages(kernel, click), {"log": ids["log"], "out": ids["out"]})
    log, out, elsewhere = _kinds(routed["log"]), _kinds(routed["out"]), routed["elsewhere"]
    assert ("display_data", ["application/vnd.jupyter.widget-view+json", "text/plain"]) in log, \
        "the tqdm.auto progress bar is in the panel, not in JupyterLab's log console"
    assert ("stream", "trained 3\n") in log
    assert ("display_data", ["image/png", "text/plain"]) in out, "the live plot is in the panel"
    assert [m["msg_type"] for m in elsewhere] == ["update_display_data"], _kinds(elsewhere)
    update = elsewhere[0]["content"]
    assert update["transient"]["display_id"] == result_ids[0], "the first result's output is updated in place"
    assert "**result 3**" in update["data"]["text/markdown"]


def test_kernel_error_in_a_click_is_shown_in_the_panel(kernel, kernel_panels):
    ids, _, result_ids = kernel_panels
    change = _send_comm(kernel, ids["slider"], {"method": "update", "state": {"value": 13}, "buffer_paths": []})
    assert _route(_messages(kernel, change), {})["elsewhere"] == [], "a Run panel does not run on a change"
    click = _send_comm(kernel, ids["button"], {"method": "custom", "content": {"event": "click"}})
    routed = _route(_messages(kernel, click), {"log": ids["log"], "out": ids["out"]})
    log_text = "".join(m["content"].get("text", "") for m in routed["log"] if m["msg_type"] == "stream")
    assert "ValueError: unlucky" in log_text and "Traceback" in log_text
    updates = [m["content"] for m in routed["elsewhere"] if m["msg_type"] == "update_display_data"]
    assert len(updates) == 1 and "run failed" in updates[0]["data"]["text/markdown"]
    assert updates[0]["transient"]["display_id"] == result_ids[0]
    # re-raised: ipywidgets reports it to the kernel's log (an `error` outside the panel)
    assert "error" in [m["msg_type"] for m in routed["elsewhere"]]


def test_kernel_live_panel_updates_its_result_on_a_change(kernel, kernel_panels):
    ids, _, result_ids = kernel_panels
    change = _send_comm(kernel, ids["live_slider"], {"method": "update", "state": {"value": 7}, "buffer_paths": []})
    routed = _route(_messages(kernel, change), {"log": ids["live_log"], "out": ids["live_out"]})
    updates = [m["content"] for m in routed["elsewhere"] if m["msg_type"] == "update_display_data"]
    assert [m["msg_type"] for m in routed["elsewhere"]] == ["update_display_data"]
    assert updates[0]["transient"]["display_id"] == result_ids[1]
    assert "a squared = 49" in updates[0]["data"]["text/markdown"]


# ------------------------------------------------------------------- a notebook executed headless

HEADLESS_CELLS = [
    "import ipywidgets as widgets\n"
    "from IPython.display import Markdown\n"
    "from matplotlib.figure import Figure\n"
    "from tqdm.auto import tqdm\n"
    "from ptm_lib.viz import experiment_panel",
    "def train(out, n):\n"
    "    for _ in tqdm(range(n)):\n"
    "        pass\n"
    "    print('progress', n)\n"
    "    return Markdown(f'trained with **n = {n}**')\n"
    "\n"
    "panel = experiment_panel(train, {'n': widgets.IntSlider(value=3, description='n')})",
    "def curve(out, a):\n"
    "    fig = Figure(figsize=(3, 2))\n"
    "    ax = fig.subplots()\n"
    "    ax.plot([0, 1], [0, a])\n"
    "    ax.set(xlabel='x', ylabel='y')\n"
    "    return fig\n"
    "\n"
    "live = experiment_panel(curve, {'a': widgets.FloatSlider(value=1.0, description='slope')}, live=True)",
    "panel.controls['n'].value = 4\n"
    "_ = panel.run()",
]


def test_headless_notebook_keeps_each_result_once_as_a_real_output(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in HEADLESS_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=_kernel_env())
    run_cell, live_cell, click_cell = nb.cells[1], nb.cells[2], nb.cells[3]

    def mimes(cell):
        return [sorted(o.get("data", {})) for o in cell.outputs]

    assert all(o.output_type != "error" for c in nb.cells for o in c.outputs)
    assert mimes(run_cell) == [["application/vnd.jupyter.widget-view+json", "text/plain"],
                               ["text/markdown", "text/plain"]], "the panel, then its result, nothing else"
    assert run_cell.outputs[0].data["text/plain"].startswith("[interactive panel: n;")
    # the later run (cell 4) updated the first cell's result in place, as a browser would see it
    assert "n = 4" in run_cell.outputs[1].data["text/markdown"]
    assert click_cell.outputs == []
    assert mimes(live_cell) == [["application/vnd.jupyter.widget-view+json", "text/plain"],
                                ["image/png", "text/plain"]], "a figure result is a real PNG output"
    assert all(o.output_type != "stream" for c in nb.cells for o in c.outputs), \
        "progress and prints of a run stay in the panel's run area"
