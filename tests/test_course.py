"""The course runner, the notebooks' contract with it, and the environment files."""
import json
import re
import shutil
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook
from packaging.requirements import Requirement

from ptm_lib import course
from ptm_lib.report import repo_root

ROOT = repo_root()
NOTEBOOKS = course.list_notebooks()


def test_there_are_notebooks_and_the_map_lists_them():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"
    stems = [stem for _, stem, _ in course.CHAPTERS]
    for nb in NOTEBOOKS:
        assert nb.stem in stems, f"{nb.name} is missing from course.CHAPTERS (the chapter map)"
    rows = {stem: line for stem in stems for line in course.chapter_map().splitlines() if f"`{stem}.ipynb`" in line}
    for stem, line in rows.items():
        assert ("(planned)" in line) != (ROOT / "notebooks" / f"{stem}.ipynb").exists(), line


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runner_parameters_exist_in_the_parameters_cell(path):
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged `parameters`"
    params = pm.inspect_notebook(str(path))
    for name in course.RUNNER_PARAMETERS:
        assert name in params, f"{path.name}: the runner injects {name} but the parameters cell lacks it"
    assert params["SMOKE"]["default"] == "False" and params["SEED"]["default"] == "0"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_fresh_and_from_a_full_run(path):
    reasons = course.stale_reasons(path)
    assert not reasons, f"{path.name}: {'; '.join(reasons)}. Run `make execute NOTEBOOKS={path.stem}` and commit."


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_structure(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("## Summary", "## Exercises"):
        assert heading in text, f"{path.name} lacks a '{heading}' section"
    number = path.stem.split("_")[0]                        # "03", or "06a" for a chapter's parts
    assert nb.cells[0].source.startswith(f"# {number} ·"), f"first cell: '# {number} · Title'"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'Report("{path.stem}"' in code, "the lesson must record its results under its own name"
    assert "with out:" not in code, "never run code inside `with out:` (ipywidgets swallows its errors)"
    assert not re.search(r";\s*$", code, re.M), "no trailing `;` to silence output (use `_ = ...`)"


def test_list_notebooks_by_name_and_unknown_name():
    assert course.list_notebooks(["00_start_here"]) == [NOTEBOOKS[0]]
    with pytest.raises(FileNotFoundError, match="no notebook 'nope'"):
        course.list_notebooks(["nope"])


def _pins():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_matches_pyproject_and_constraints():
    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("lab", "test"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    reqs = [r for r in reqs if r.marker is None or r.marker.evaluate()]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = {}
    for item in pip_section:
        if "==" in item:
            name, version = item.split("==")
            env_pins[name.lower().replace("_", "-")] = version
    assert "-e .[dev]" in pip_section
    pins = _pins()
    for req in reqs:
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not pinned in constraints.txt (run `make lock`)"
        assert env_pins.get(name) == pins[name], f"environment.yml pins {name}=={env_pins.get(name)}, constraints {pins[name]}"
        assert req.specifier.contains(pins[name]), f"pin {name}=={pins[name]} violates pyproject's {req}"
    assert pins["torch"] == "2.13.0" and "torch==2.13.0" in project["dependencies"]


def test_ci_runs_make_test_then_the_whole_course_in_full_mode():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")
                and not ln.startswith(("set ", "cd "))]
    assert commands == ["tools/install_chromium.sh", "make test", "make course"]  # Chromium: the browser test
    assert "set -euo pipefail" in script, ".ci/run must stop and fail when `make test` fails"
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ncourse:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert [ln.strip() for ln in recipe] == ["$(PY) -m ptm_lib.course run --seed $(SEED) $(NOTEBOOKS)"]
    assert re.search(r"^SEED\s*\?=\s*0$", makefile, re.M) and re.search(r"^NOTEBOOKS\s*\?=\s*$", makefile, re.M)
    readme = (ROOT / "README.md").read_text().splitlines()
    first_block = readme[readme.index("```bash") + 1: readme.index("```", readme.index("```bash") + 1)]
    commands = [ln.split("#")[0].strip() for ln in first_block]
    assert [c for c in commands if c] == ["make lab", "make test"]


def test_format_table():
    table = course.format_table([{"notebook": "00_start_here", "status": "ok", "wall_s": 1.25, "error": None},
                                 {"notebook": "01_x", "status": "failed", "wall_s": 3, "error": "boom"}])
    lines = table.splitlines()
    assert lines[0].split() == ["notebook", "status", "wall_s"]
    assert lines[2].split() == ["00_start_here", "ok", "1.2"] and lines[3].split() == ["01_x", "failed", "3.0"]
    assert lines[4].strip() == "boom"                       # the error goes under its notebook


KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def notebook(*cells):
    """A notebook with the runner's parameters cell, then `cells` (sources or cells)."""
    nb = new_notebook(cells=[new_code_cell("SMOKE = False\nSEED = 0", metadata={"tags": ["parameters"]}),
                             *[new_code_cell(c) if isinstance(c, str) else c for c in cells]])
    nb.metadata["kernelspec"] = KERNEL
    return nb


def test_kernel_inherits_environment_and_parameters(tmp_path, monkeypatch):
    nb = notebook("import os\nprint(os.environ['PTM_CANARY'], os.environ['PTM_SMOKE'], SEED, os.getcwd())")
    src = tmp_path / "nbdir" / "canary.ipynb"
    src.parent.mkdir()
    nbformat.write(nb, src)
    monkeypatch.setenv("PTM_CANARY", "tweet")
    row = course.run_notebook(src, tmp_path / "out.ipynb", parameters={"SMOKE": True, "SEED": 4},
                              results=tmp_path / "results", smoke=True, timeout=60)
    assert row["status"] == "ok", row
    text = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert text.split() == ["tweet", "1", "4", str(src.parent)]


def test_cells_tagged_raises_exception_may_fail_but_no_other(tmp_path):
    expected = new_code_cell("undefined_name", metadata={"tags": ["raises-exception"]})
    after = new_code_cell("import sys\nprint(type(sys.last_value).__name__)")
    nbformat.write(notebook(expected, after), tmp_path / "ok.ipynb")
    row = course.run_notebook(tmp_path / "ok.ipynb", tmp_path / "ok_out.ipynb", parameters=None,
                              results=tmp_path / "results", smoke=True, timeout=60)
    assert row["status"] == "ok", row
    out = nbformat.read(tmp_path / "ok_out.ipynb", as_version=4)
    assert out.cells[1].outputs[0]["ename"] == "NameError"          # the error is kept in the output
    assert out.cells[2].outputs[0]["text"].strip() == "NameError"   # and the next cells still ran
    nbformat.write(notebook(new_code_cell("undefined_name")), tmp_path / "bad.ipynb")
    row = course.run_notebook(tmp_path / "bad.ipynb", tmp_path / "bad_out.ipynb", parameters=None,
                              results=tmp_path / "results", smoke=True, timeout=60)
    assert row["status"] == "failed" and "NameError" in row["error"]


REGISTRY = {"tfull": {name: {"op": ">=", "threshold": 0.5, "unit": "", "reason": "test"} for name in ("a", "b")}}
HEAD = ("from ptm_lib.report import ClaimFailed, Report\n"
        f"report = Report('tfull', smoke=SMOKE, seed=SEED, registry={REGISTRY!r})")
GOOD = {"notebook": "tfull", "mode": "full", "seed": 3, "claims": {n: {"holds": True} for n in ("a", "b")}}


@pytest.mark.parametrize("smoke, cells, error", [
    (False, [HEAD, "report.claim('a', 1.0)\nreport.claim('b', 0.9)\n_ = report.save()"], None),
    (False, [HEAD, "report.claim('a', 1.0)\nreport.claim('b', 0.9)"],            # never saves (an old, good file
     "full run: no results file tfull.json: the notebook never called report.save()"),   # is there: ignored)
    (True, [HEAD, "report.claim('a', 1.0)"], None),                              # smoke: results not required
    (False, [HEAD, "try:\n    report.claim('a', 0.1)\nexcept ClaimFailed:\n    pass"],   # swallows the failure
     "full run: registered claim(s) never measured: b; claim(s) that do not hold: a (0.1 >= 0.5)"),
    (False, [HEAD, "report.claim('a', 1.0)\ntry:\n    report.save()\nexcept Exception:\n    pass"],
     "full run: registered claim(s) never measured: b"),
    (False, [HEAD.replace("smoke=SMOKE, seed=SEED", "smoke=True, seed=0"),     # ignores the runner's parameters
             "report.claim('a', 1.0)\nreport.claim('b', 1.0)\n_ = report.save()"],
     "full run: results come from 'smoke' mode, not a full run; results are for seed 0, the run asked for seed 3"),
], ids=["ok", "no-save", "smoke-no-save", "swallowed-failure", "missing-claim", "ignores-parameters"])
def test_full_runs_fail_without_results_showing_every_registered_claim_holding(tmp_path, smoke, cells, error):
    nbformat.write(notebook(*cells), tmp_path / "tfull.ipynb")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tfull.json").write_text(json.dumps(GOOD))            # left by an earlier run
    row = course.run_notebook(tmp_path / "tfull.ipynb", tmp_path / "out.ipynb", parameters={"SMOKE": smoke, "SEED": 3},
                              results=tmp_path / "results", smoke=smoke, timeout=60, registry=REGISTRY)
    assert (row["status"], row["error"]) == ("ok" if error is None else "failed", error)


def test_results_problems_reads_the_registry(tmp_path):
    path = tmp_path / "tfull.json"
    path.write_text(json.dumps({**GOOD, "claims": {"a": {"holds": True}}}))
    assert course.results_problems(path, "tfull", registry=REGISTRY) == ["registered claim(s) never measured: b"]
    assert course.results_problems(path, "tfull", registry={"tfull": {}}, seed=3) == []
    path.write_text("{")
    problems = course.results_problems(path, "tfull", registry=REGISTRY)
    assert len(problems) == 1 and problems[0].startswith("results file tfull.json is not valid JSON")


def widget_state_and_views(nb):
    state = nb.metadata["widgets"][course.WIDGET_STATE]["state"]
    views = [o["data"][course.WIDGET_VIEW]["model_id"] for c in nb.cells for o in c.get("outputs", [])
             if course.WIDGET_VIEW in o.get("data", {})]
    return state, views


def test_the_runner_stores_widget_state(tmp_path):
    nbformat.write(notebook("import ipywidgets as w\nw.IntSlider(value=7, description='k')"), tmp_path / "w.ipynb")
    row = course.run_notebook(tmp_path / "w.ipynb", tmp_path / "w_out.ipynb", parameters={"SMOKE": True, "SEED": 0},
                              results=tmp_path / "results", smoke=True, timeout=60)
    assert row["status"] == "ok", row
    state, views = widget_state_and_views(nbformat.read(tmp_path / "w_out.ipynb", as_version=4))
    assert len(views) == 1 and views[0] in state
    model = state[views[0]]
    assert model["model_name"] == "IntSliderModel" and model["state"]["value"] == 7
    assert model["state"]["description"] == "k" and model["state"]["layout"].removeprefix("IPY_MODEL_") in state


def test_hashes_ignore_the_injected_cell_and_cover_outputs():
    nb = notebook("x = 1")
    code, outputs = course.code_hash(nb), course.outputs_hash(nb)
    nb.cells.insert(1, new_code_cell("SEED = 3", metadata={"tags": ["injected-parameters"]}))
    assert course.code_hash(nb) == code and course.outputs_hash(nb) == outputs
    nb.cells[2].execution_count = 1
    assert course.outputs_hash(nb) != outputs and course.code_hash(nb) == code
    nb.cells[2].source = "x = 2"
    assert course.code_hash(nb) != code


TINY_CLAIMS = '\n[t1.works]\nop = ">="\nthreshold = 0.5\nunit = ""\nreason = "test"\n'
TINY = [("import ipywidgets as w\nfrom ptm_lib.report import Report\n"
         "report = Report('t1', smoke=SMOKE, seed=SEED)   # the course copy's notebooks/claims.toml\n"
         "w.IntSlider(value=7)"),
        "report.claim('works', 1.0)\nprint('hello')",
        "_ = report.save()"]


@pytest.fixture(scope="module")
def course_copy(tmp_path_factory):
    """A course folder in tmp: copies of ptm_lib/ (.py), data/ and notebooks/claims.toml (plus a section
    for the tiny notebook t1), and t1 executed there with `execute_in_place`. Tests restore what they edit."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "ptm_lib", root / "ptm_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "data", root / "data")
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("")
    (root / "notebooks" / "claims.toml").write_text((ROOT / "notebooks" / "claims.toml").read_text() + TINY_CLAIMS)
    path = root / "notebooks" / "t1.ipynb"
    nbformat.write(notebook(*TINY), path)
    row = course.execute_in_place(path, timeout=60, root=root)
    assert row["status"] == "ok", row
    return root, path


def test_execute_stamps_outputs_and_keeps_widget_state(course_copy):
    root, path = course_copy
    nb = nbformat.read(path, as_version=4)
    stamp = nb.metadata[course.STAMP_KEY]
    assert stamp["mode"] == "full" and stamp["torch"] == torch.__version__.split("+")[0]
    assert stamp["outputs_sha256"] == course.outputs_hash(nb) and stamp["code_sha256"] == course.code_hash(nb)
    assert {k: stamp[k] for k in course.STAMP_PARTS} == {k: v for k, v in course.input_stamp(nb, "t1", root).items()
                                                          if k in course.STAMP_PARTS}
    assert "papermill" not in nb.metadata and not any("papermill" in c.metadata for c in nb.cells)
    assert nb.cells[2].outputs[0]["text"] == "claim works: 1 >= 0.5 -> holds\nhello\n"
    state, views = widget_state_and_views(nb)
    assert len(views) == 1 and state[views[0]]["model_name"] == "IntSliderModel"
    assert json.loads((root / "build" / "results" / "t1.json").read_text())["all_claims_hold"] is True
    assert course.stale_reasons(path, root) == []


def test_stale_reasons_name_what_changed(course_copy, tmp_path):
    root, path = course_copy
    changed = "{} changed since the outputs were produced"

    def reasons_after_editing(file, text):
        before = file.read_bytes()
        file.write_bytes(before + text.encode())
        try:
            return course.stale_reasons(path, root)
        finally:
            file.write_bytes(before)

    assert reasons_after_editing(root / "ptm_lib" / "report.py", "\n# edited\n") == [changed.format("ptm_lib")]
    assert reasons_after_editing(root / "ptm_lib" / "nets" / "common.py", " ") == [changed.format("ptm_lib")]
    (root / "ptm_lib" / "text" / "new.py").write_text("")                       # a new module counts too
    assert course.stale_reasons(path, root) == [changed.format("ptm_lib")]
    (root / "ptm_lib" / "text" / "new.py").unlink()
    assert reasons_after_editing(root / "data" / "mini_bert.json", " ") == [changed.format("data/")]
    (root / "data" / "new.bin").write_bytes(b"\0")
    assert course.stale_reasons(path, root) == [changed.format("data/")]
    (root / "data" / "new.bin").unlink()
    (root / "data" / ".ipynb_checkpoints").mkdir()                              # hidden files do not count
    (root / "data" / ".ipynb_checkpoints" / "README-checkpoint.md").write_text("x")
    claims = root / "notebooks" / "claims.toml"
    text = claims.read_text()
    claims.write_text(text.replace(TINY_CLAIMS, TINY_CLAIMS.replace("0.5", "0.4")))
    assert course.stale_reasons(path, root) == [changed.format("its claims in notebooks/claims.toml")]
    claims.write_text(text + '[zz_other.x]\nop = "<"\nthreshold = 1\nunit = ""\nreason = "r"\n')   # another notebook's
    assert course.stale_reasons(path, root) == []                                # claims, and hidden files in data/
    claims.write_text(text)

    def reasons_of(edit):
        nb = nbformat.read(path, as_version=4)
        edit(nb)
        copy = tmp_path / "copies" / path.name                                  # same stem: same claims section
        copy.parent.mkdir(exist_ok=True)
        nbformat.write(nb, copy)
        return course.stale_reasons(copy, root)

    assert reasons_of(lambda nb: None) == []
    assert reasons_of(lambda nb: nb.cells[2].outputs[0].update(text="claim works: 1 >= 0.5 -> holds\nhi\n")) == [
        "outputs were edited after execution (they do not match the stamp)"]
    assert reasons_of(lambda nb: setattr(nb.cells[2], "execution_count", 9)) == [
        "outputs were edited after execution (they do not match the stamp)"]
    assert reasons_of(lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source + "\nx = 1")) == [
        changed.format("code cells")]
    assert reasons_of(lambda nb: nb.metadata[course.STAMP_KEY].update(torch="1.0.0")) == [
        f"outputs come from torch 1.0.0, this environment has torch {course.torch_version()}"]
    assert reasons_of(lambda nb: nb.metadata[course.STAMP_KEY].update(mode="smoke")) == [
        "outputs come from 'smoke' mode, not a full default run"]
    assert reasons_of(lambda nb: nb.metadata.pop("widgets")) == [
        "widget outputs lack their stored widget state (metadata.widgets was dropped, e.g. by saving in JupyterLab)"]
    assert reasons_of(lambda nb: [nb.metadata[course.STAMP_KEY].pop(k) for k in ("data_sha256", "outputs_sha256")]) == [
        "the stamp has no hash of data/, outputs (an older `make execute` wrote it)"]
    assert reasons_of(lambda nb: nb.metadata.pop(course.STAMP_KEY)) == ["never executed with `make execute` (no stamp)"]


def test_execute_refuses_to_stamp_when_inputs_change_during_the_run(course_copy):
    root, _ = course_copy
    path = root / "notebooks" / "t2.ipynb"
    nb = notebook("from ptm_lib.report import Report\nreport = Report('t2', smoke=SMOKE, seed=SEED)",
                  "_ = open('../data/README.md', 'a').write('edited while running')", "_ = report.save()")
    nbformat.write(nb, path)
    readme = (root / "data" / "README.md").read_bytes()
    try:
        row = course.execute_in_place(path, timeout=60, root=root)
    finally:
        (root / "data" / "README.md").write_bytes(readme)
    assert (row["status"], row["error"]) == (
        "failed", "data/ changed while the notebook ran; outputs not saved, run it again")
    assert course.STAMP_KEY not in nbformat.read(path, as_version=4).metadata
    assert course.stale_reasons(root / "notebooks" / "t1.ipynb", root) == []


def test_the_runner_never_writes_over_a_notebook(tmp_path):
    src = tmp_path / "notebooks" / "t.ipynb"
    src.parent.mkdir()
    nbformat.write(notebook("x = 1"), src)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="never overwrites a notebook"):
        course.run_notebook(src, src, parameters=None, results=tmp_path / "results", smoke=True)
    with pytest.raises(ValueError, match="never overwrites a notebook"):
        course.run([str(src)], smoke=True, build=tmp_path)      # build/notebooks would be the notebooks' folder
    assert src.read_bytes() == before


def test_execute_keeps_a_learners_edits_saved_while_it_ran(course_copy):
    """`make execute` writes outputs back on purpose, but never over a file saved in the meantime."""
    root, _ = course_copy
    path = root / "notebooks" / "t3.ipynb"
    nbformat.write(notebook("from ptm_lib.report import Report\nreport = Report('t3', smoke=SMOKE, seed=SEED)",
                            "_ = open('t3.ipynb', 'a').write('\\n')   # JupyterLab saves the learner's edit",
                            "_ = report.save()"), path)
    row = course.execute_in_place(path, timeout=60, root=root)
    edited = path.read_bytes()
    assert (row["status"], row["error"]) == ("failed", "t3.ipynb was saved while it ran (edited?); outputs not "
                                                       "written, so those edits are kept. Run it again")
    assert edited.endswith(b"}\n\n") and course.STAMP_KEY not in nbformat.read(path, as_version=4).metadata


ABSOLUTE = re.compile(r"""(?<![\w.~<>-])(/(home|Users|root|tmp|work|opt|usr|var|mnt|private)/|[A-Za-z]:\\\\)""")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_hold_no_absolute_paths(path):
    """Neither code nor committed outputs name a folder of the machine that ran them."""
    text = re.sub(r"\\u001b\[[0-9;]*m", " ", path.read_text())          # ANSI colours of tracebacks
    found = sorted({m.group(0) for m in ABSOLUTE.finditer(text)} |
                   {p for p in (str(ROOT), sys.prefix, str(Path.home())) if len(p) > 1 and p in text})
    assert not found, (f"{path.name} names absolute paths {found}: use paths relative to the notebook's folder; "
                       "outputs are cleaned by `make execute` (course.without_absolute_paths)")


def test_execute_writes_outputs_without_absolute_paths(course_copy):
    root, _ = course_copy
    path = root / "notebooks" / "t4.ipynb"
    failing = new_code_cell("import torch\ntorch.nn.Linear(2, 2)(torch.zeros(3))", metadata={"tags": ["raises-exception"]})
    nbformat.write(notebook("from ptm_lib.report import Report\nreport = Report('t4', smoke=SMOKE, seed=SEED)",
                            "import os\nprint(os.getcwd())", failing, "_ = report.save()"), path)
    row = course.execute_in_place(path, timeout=60, root=root)
    assert row["status"] == "ok", row
    text = path.read_text()
    assert str(root) not in text and sys.prefix not in text and not ABSOLUTE.search(text)
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[2].outputs[0]["text"] == "./notebooks\n"
    assert any("<python>/lib" in line for line in nb.cells[3].outputs[0]["traceback"])   # torch's files, relative
    assert course.stale_reasons(path, root) == []
