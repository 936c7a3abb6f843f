"""The course's widgets in a real browser: JupyterLab in headless Chromium, driven by Playwright.

For one widget panel per chapter (00-06, 08; 07 has none), the test opens a copy of the notebook
in JupyterLab, runs its cells with Run > Run All Cells, moves one slider of the panel with the
keyboard, clicks the panel's button (live panels rerun on the change itself), and checks that what
the panel shows changed (its result figure, its loss plot, or, for a panel that shows a table, its
text) and that no cell, and no widget, shows an error or anything written to stderr. Screenshots of
each panel's outputs before and after go to build/browser/ (and of the page, when a check fails).

What it runs on: the server runs on 127.0.0.1, a free port, token auth, in smoke mode
(PTM_SMOKE=1, so every chosen notebook runs in seconds), over a temporary folder holding copies of
the notebooks cut after the panel's cell (nothing a learner wrote is touched), with JupyterLab's
configuration, settings, workspaces and runtime files in temporary folders too.

The browser is the system's Chromium (Debian: ``apt-get install chromium``, or ``make browser``),
or the one named by $PTM_CHROMIUM; Playwright only drives it (``playwright install`` is never
needed). Without Chromium or the playwright package the test is skipped, saying how to get them.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from ptm_lib.report import repo_root

ROOT = repo_root(Path(__file__).parent)
SHOTS = ROOT / "build" / "browser"
HOW_TO_GET_CHROMIUM = ("install Chromium (Debian/Ubuntu: `sudo apt-get install chromium`, or `make browser`) "
                       "or set PTM_CHROMIUM to a Chromium/Chrome executable")
# Chromium's own background traffic (updates, sync, field trials) is off: the tests run offline.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 240   # smoke mode: seconds on an idle machine; generous for a busy one
PANEL_RUN_TIMEOUT_S = 120
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@dataclass(frozen=True)
class Panel:
    """One experiment panel: its notebook, a piece of its cell's code, the slider to move, the button
    to click (None: a live panel reruns when a control changes), and what must change: the panel's
    "result" (the output below it, which every run updates) or the "plot" its run draws inside the
    panel (the live loss plot), shown as an "image" or as "text" (Markdown)."""
    notebook: str
    cell_code: str          # in the panel's cell and in no earlier cell
    slider: str             # the slider's description
    button: str | None
    watch: str = "result"
    shows: str = "image"

    def __str__(self):
        return f"{self.notebook}:{self.slider}"

    @property
    def watched(self) -> str:
        return "the loss plot in the panel" if self.watch == "plot" else f"the panel's result ({self.shows})"


PANELS = [
    Panel("00_start_here", "experiment_panel(run_panel", "learning rate", "Run", watch="plot"),  # result: a line of text
    Panel("01_why_pretrain", "experiment_panel(budget_panel", "labels/class", "Run"),
    Panel("02_concepts", "experiment_panel(family_sizes", "layers", None, shows="text"),
    Panel("03_pipeline", "experiment_panel(pretrain_live", "mask rate", "Pretrain"),          # the loss curves
    Panel("04_maths", "experiment_panel(softmax_panel", "logit z0", None),
    Panel("05_essay_code_fixed", "experiment_panel(pretraining_knobs", "labels/topic", "Pretrain + fine-tune"),
    Panel("06b_vision", "experiment_panel(show_views", "strength", None),
    Panel("08b_adaptation", "experiment_panel(live_run", "log10 lr", "Run"),                  # the loss curve
    Panel("09_faq", "experiment_panel(try_recipe", "log10 lr", "Run"),                        # the recipe's curves
]


# ------------------------------------------------------------------------------ what is needed

def chromium_path() -> str:
    """$PTM_CHROMIUM, else `chromium` on the PATH (Debian's /usr/bin/chromium); skips without one."""
    named = os.environ.get("PTM_CHROMIUM")
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            pytest.fail(f"PTM_CHROMIUM={named!r} is not an executable file: point it at Chromium or Chrome, "
                        "or unset it to use `chromium` from the PATH")
        return named
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(f"no Chromium for the browser test: {HOW_TO_GET_CHROMIUM}")
    return found


def notebook_copy(panel: Panel, folder: Path) -> Path:
    """The notebook cut after the panel's cell, without outputs, saved into `folder`."""
    nb = nbformat.read(ROOT / "notebooks" / f"{panel.notebook}.ipynb", as_version=4)
    index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and panel.cell_code in c.source), None)
    assert index is not None, f"{panel.notebook}: no code cell contains {panel.cell_code!r} (update PANELS)"
    nb.cells = nb.cells[:index + 1]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    path = folder / f"{panel.notebook}.ipynb"
    nbformat.write(nb, path)
    return path


def deliberate_errors(panel: Panel) -> int:
    """How many code cells of the notebook copy (up to the panel) are tagged raises-exception."""
    nb = nbformat.read(ROOT / "notebooks" / f"{panel.notebook}.ipynb", as_version=4)
    cells = nb.cells[:next(i for i, c in enumerate(nb.cells) if panel.cell_code in c.source)]
    return sum("raises-exception" in c.metadata.get("tags", []) for c in cells if c.cell_type == "code")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(settings: Path) -> None:
    """JupyterLab settings for the test: every cell in the page (no windowing), no news, no autosave."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@dataclass
class Lab:
    """The running server: its address, token, and the kernel shutdowns still in progress."""
    url: str
    token: str
    shutdowns: list = field(default_factory=list)

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """Shut every kernel down, in the background (a kernel takes seconds to exit)."""
        for kernel in self.api("GET", "kernels"):
            thread = threading.Thread(target=self.api, args=("DELETE", f"kernels/{kernel['id']}"), daemon=True)
            thread.start()
            self.shutdowns.append(thread)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server in smoke mode over copies of the chosen notebooks (one per module)."""
    chromium_path()   # skip before starting anything when there is no browser
    pytest.importorskip("playwright", reason=f"the browser test needs the playwright package "
                                             f"(pip install -c constraints.txt -e '.[dev]'), and Chromium: {HOW_TO_GET_CHROMIUM}")
    tmp = tmp_path_factory.mktemp("lab")
    notebooks = tmp / "notebooks"
    notebooks.mkdir()
    for panel in PANELS:
        notebook_copy(panel, notebooks)
    jupyter = {name: tmp / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython", "results")}
    for folder in jupyter.values():
        folder.mkdir()
    _write_settings(jupyter["settings"])
    # no news or update checks; no language-server lookup (jupyter_lsp runs npm, which logs into $HOME)
    (jupyter["config"] / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
        "ServerApp": {"jpserver_extensions": {"jupyter_lsp": False}}}))
    env = dict(os.environ, PTM_SMOKE="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1",
               PTM_RESULTS_DIR=str(jupyter["results"]),
               JUPYTER_CONFIG_DIR=str(jupyter["config"]), JUPYTER_DATA_DIR=str(jupyter["data"]),
               JUPYTER_RUNTIME_DIR=str(jupyter["runtime"]), IPYTHONDIR=str(jupyter["ipython"]),
               JUPYTERLAB_SETTINGS_DIR=str(jupyter["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(jupyter["workspaces"]))
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp / "jupyterlab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=notebooks, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.time() + 90
        while True:
            try:
                server.api("GET", "status")
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"JupyterLab did not start; its log:\n{(tmp / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.3)
        yield server
        for thread in server.shutdowns:
            thread.join(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    """Headless Chromium (a fresh profile; its home, for the files it keeps there, is temporary too)."""
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_CACHE_HOME=str(home / ".cache"))
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS, env=env)
        yield chromium
        chromium.close()


# ------------------------------------------------------------------------------ page helpers

KERNEL_STATE = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.sessionContext || !panel.content || !panel.content.model) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code');
  return {path: panel.context ? panel.context.path : null, status: kernel ? kernel.status : 'none',
          executed: cells.filter(c => c.executionCount !== null).length, code_cells: cells.length,
          running: panel.content.widgets.filter(w => w.model.type === 'code' && w.promptNode &&
                                                   w.promptNode.textContent.includes('*')).length};
}"""


def kernel_state(page) -> dict | None:
    return page.evaluate(KERNEL_STATE)


ERRORS_SHOWN = """(selector) => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const found = {unexpected: [], expected: 0};
  if (!panel || !panel.content || !panel.content.widgets) return found;
  for (const cell of panel.content.widgets) {
    const texts = Array.from(cell.node.querySelectorAll(selector), node => node.innerText);
    if ((cell.model.getMetadata('tags') || []).includes('raises-exception')) found.expected += texts.length;
    else found.unexpected.push(...texts);
  }
  return found;
}"""


def errors_shown(page) -> list[str]:
    """The text of every stderr/error output in the notebook (cell outputs and widgets), except in
    cells tagged raises-exception (the course's deliberate errors, e.g. the essay's buggy code)."""
    return page.evaluate(ERRORS_SHOWN, STDERR)["unexpected"]


def expected_errors_shown(page) -> int:
    """How many error outputs the cells tagged raises-exception show."""
    return page.evaluate(ERRORS_SHOWN, STDERR)["expected"]


def wait_until(page, condition, timeout_s: float, what: str) -> None:
    """Poll `condition()` until true; fail with `what` (and any error shown) after `timeout_s`."""
    deadline = time.time() + timeout_s
    while not condition():
        errors = errors_shown(page)
        if errors:
            pytest.fail(f"{what}: an error/stderr output appeared:\n" + "\n---\n".join(errors)[:4000])
        if time.time() > deadline:
            pytest.fail(f"{what}: still not done after {timeout_s:.0f} s (kernel: {kernel_state(page)})")
        page.wait_for_timeout(250)


WATCHED = """(cell, [watch, shows]) => {
  // The cell's own outputs: [the panel (a widget view), the result]; the panel holds its run area and plot.
  const area = cell.querySelector('.jp-Cell-outputArea');
  const outputs = area ? Array.from(area.children).filter(c => c.classList.contains('jp-OutputArea-child')) : [];
  if (outputs.length !== 2) return null;
  const node = watch === 'plot' ? outputs[0] : outputs[1];
  if (shows === 'text') return node.innerText.trim() || null;
  const images = Array.from(node.querySelectorAll('img'), img => img.src);
  return images.length ? images.join(' ') : null;
}"""


def watched(cell, panel: Panel) -> str | None:
    """What must change when the panel reruns (image sources or text), None while it shows nothing."""
    return cell.evaluate(WATCHED, [panel.watch, panel.shows])


def watch_mutations(locator) -> None:
    """Record in the page when anything in `locator` last changed (see `quiet_for`)."""
    locator.evaluate("""(node) => { window.ptmLastChange = Date.now();
      new MutationObserver(() => { window.ptmLastChange = Date.now(); })
        .observe(node, {subtree: true, childList: true, attributes: true, characterData: true}); }""")


def quiet_for(page, seconds: float) -> bool:
    """True when what `watch_mutations` watches has not changed for `seconds` (rendering is done)."""
    return page.evaluate("(ms) => Date.now() - window.ptmLastChange > ms", seconds * 1000)


# ------------------------------------------------------------------------------ the test

@pytest.mark.parametrize("panel", PANELS, ids=str)
def test_panel_reruns_in_the_browser(lab, browser, panel):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(60_000)
    passed = False
    try:
        open_and_run_all(page, lab, panel.notebook)
        # the cells ran; the error check does see errors: cells tagged raises-exception (05: the essay's bugs) show theirs
        deliberate = deliberate_errors(panel)
        assert expected_errors_shown(page) >= deliberate, \
            f"{panel.notebook}: {deliberate} cells are tagged raises-exception, but fewer error outputs are shown"

        cell = page.locator(".jp-Notebook .jp-CodeCell").last   # the copy ends with the panel's cell
        outputs = cell.locator(".jp-Cell-outputWrapper")
        outputs.scroll_into_view_if_needed()
        before = watched(cell, panel)
        assert before, f"{panel}: after Run All Cells, {panel.watched} shows nothing"
        outputs.screenshot(path=SHOTS / f"{panel.notebook}-before.png")

        moved_to = move_slider(page, cell, panel)
        watch_mutations(outputs)
        button = None
        if panel.button is not None:
            buttons = cell.locator("button.jupyter-button", has_text=panel.button)
            assert buttons.count() == 1, f"{panel}: no {panel.button!r} button in the panel"
            button = buttons.element_handle()
            button.click()

        def rerun_done():
            # while the panel runs, its button reads "Running…" and the kernel is busy; the watched
            # output changes during the run, and the page may still be drawing it when the kernel is idle
            state = kernel_state(page)
            ready = button is None or (button.is_enabled() and button.inner_text().strip() == panel.button)
            now = watched(cell, panel)
            return bool(state and state["status"] == "idle" and ready and now and now != before
                        and quiet_for(page, 1.0))
        action = f"moving {panel.slider!r} to {moved_to}" + (f" and clicking {panel.button!r}" if button else "")
        wait_until(page, rerun_done, PANEL_RUN_TIMEOUT_S, f"{panel}: after {action}, {panel.watched} did not change")
        outputs.screenshot(path=SHOTS / f"{panel.notebook}-after.png")

        errors = errors_shown(page)
        assert not errors, f"{panel.notebook}: error/stderr output in the notebook:\n" + "\n---\n".join(errors)[:4000]
        passed = True
    finally:
        if not passed:
            page.screenshot(path=SHOTS / f"{panel.notebook}-failed.png")
        page.close()
        lab.shutdown_kernels()


def open_and_run_all(page, lab: Lab, notebook: str) -> None:
    """Open the notebook (in a workspace of its own, so nothing of an earlier test is reopened),
    wait for its kernel, click Run > Run All Cells, and wait until every cell ran."""
    page.goto(f"{lab.url}/lab/workspaces/{notebook}/tree/{notebook}.ipynb?token={lab.token}", timeout=90_000)

    def opened():
        state = kernel_state(page)
        return state and state["path"] == f"{notebook}.ipynb" and state["status"] == "idle" and state["code_cells"] > 0
    wait_until(page, opened, 90, f"{notebook}: open the notebook and start its kernel")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    def all_ran():
        state = kernel_state(page)
        return state and state["status"] == "idle" and state["executed"] == state["code_cells"] and not state["running"]
    wait_until(page, all_ran, RUN_ALL_TIMEOUT_S, f"{notebook}: Run All Cells")


def move_slider(page, cell, panel: Panel) -> str:
    """Move the panel's slider one step right with the keyboard (as a learner can); its new value."""
    slider = cell.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text=panel.slider))
    assert slider.count() == 1, f"{panel}: expected one slider {panel.slider!r} in the panel, found {slider.count()}"
    readout = slider.locator(".widget-readout")
    value = readout.inner_text()
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")
    wait_until(page, lambda: readout.inner_text() != value, 10, f"{panel}: the slider did not move from {value}")
    return readout.inner_text()
