"""The course runner, the notebooks' contract with it, and the environment files."""
import json
import re
import sys

import nbformat
import pytest
from packaging.requirements import Requirement

from ptm_lib import course
from ptm_lib.report import repo_root

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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
    assert nb.cells[0].source.startswith(f"# {path.stem[:2]} ·"), "first cell: '# NN · Title'"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'Report("{path.stem}"' in code, "the lesson must record its results under its own name"
    assert "with out:" not in code, "never run code inside `with out:` (ipywidgets swallows its errors)"
    assert not re.search(r";\s*$", code, re.M), "no trailing `;` to silence output (use `_ = ...`)"


def test_stale_reasons_detect_changes(tmp_path):
    src = NOTEBOOKS[0]
    nb = nbformat.read(src, as_version=4)
    copy = tmp_path / src.name
    nbformat.write(nb, copy)
    assert course.stale_reasons(copy) == []
    first_code = next(c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    first_code.source += "\nx = 1"
    nb.metadata[course.STAMP_KEY]["mode"] = "smoke"
    nbformat.write(nb, copy)
    reasons = course.stale_reasons(copy)
    assert any("changed" in r for r in reasons) and any("smoke" in r for r in reasons)
    del nb.metadata[course.STAMP_KEY]
    nbformat.write(nb, copy)
    assert course.stale_reasons(copy) == ["never executed with `make execute` (no stamp)"]


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


def test_ci_runs_exactly_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in script.splitlines() if ln.strip() and not ln.startswith("#")
                and not ln.startswith(("set ", "cd "))]
    assert commands == ["make test"]
    readme = (ROOT / "README.md").read_text().splitlines()
    first_block = readme[readme.index("```bash") + 1: readme.index("```", readme.index("```bash") + 1)]
    commands = [ln.split("#")[0].strip() for ln in first_block]
    assert [c for c in commands if c] == ["make lab", "make test"]


def test_format_table():
    table = course.format_table([{"notebook": "00_start_here", "status": "ok", "wall_s": 1.25, "error": None},
                                 {"notebook": "01_x", "status": "failed", "wall_s": 3, "error": "boom"}])
    assert "00_start_here  ok         1.2" in table and "boom" in table
    json.dumps(table)


def test_kernel_inherits_environment_and_parameters(tmp_path, monkeypatch):
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("SMOKE = False\nSEED = 0", metadata={"tags": ["parameters"]}),
                             new_code_cell("import os\nprint(os.environ['PTM_CANARY'], os.environ['PTM_SMOKE'], SEED, os.getcwd())")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
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
    from nbformat.v4 import new_code_cell, new_notebook

    def notebook(*cells):
        nb = new_notebook(cells=[new_code_cell("SMOKE = False\nSEED = 0", metadata={"tags": ["parameters"]}), *cells])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        return nb

    expected = new_code_cell("undefined_name", metadata={"tags": ["raises-exception"]})
    after = new_code_cell("import sys\nprint(type(sys.last_value).__name__)")
    nbformat.write(notebook(expected, after), tmp_path / "ok.ipynb")
    row = course.run_notebook(tmp_path / "ok.ipynb", tmp_path / "ok_out.ipynb", parameters=None,
                              results=tmp_path / "results", timeout=60)
    assert row["status"] == "ok", row
    out = nbformat.read(tmp_path / "ok_out.ipynb", as_version=4)
    assert out.cells[1].outputs[0]["ename"] == "NameError"          # the error is kept in the output
    assert out.cells[2].outputs[0]["text"].strip() == "NameError"   # and the next cells still ran
    nbformat.write(notebook(new_code_cell("undefined_name")), tmp_path / "bad.ipynb")
    row = course.run_notebook(tmp_path / "bad.ipynb", tmp_path / "bad_out.ipynb", parameters=None,
                              results=tmp_path / "results", timeout=60)
    assert row["status"] == "failed" and "NameError" in row["error"]
