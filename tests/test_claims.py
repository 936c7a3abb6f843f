"""notebooks/claims.toml, the reviewed registry of every claim, checked against the notebooks' code."""
import ast

import nbformat
import pytest

from ptm_lib import course
from ptm_lib.report import load_registry, registry_path

NOTEBOOKS = course.list_notebooks()
REGISTRY = load_registry()   # validates every entry (see test_load_registry_rejects_malformed_entries)


def claim_calls(path) -> list[tuple[str | None, dict, int]]:
    """(name, {argument: literal value}, line) of every `<x>.claim(...)` call in the notebook's code.
    `name` is None when the claim's name is not a string literal; non-literal arguments are left out."""
    calls = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "claim"):
                continue
            args = dict(zip(("name", "value", "threshold"), node.args))
            args.update({k.arg: k.value for k in node.keywords if k.arg in ("name", "threshold", "op", "unit")})
            literal = {}
            for key, value in args.items():
                try:
                    literal[key] = ast.literal_eval(value)
                except ValueError:
                    pass
            name = literal.pop("name", None)
            calls.append((name if isinstance(name, str) else None, literal, node.lineno))
    return calls


def test_every_notebook_has_a_section_and_every_section_a_notebook():
    stems = {p.stem for p in NOTEBOOKS}
    assert stems - set(REGISTRY) == set(), "notebooks without claims in notebooks/claims.toml"
    assert set(REGISTRY) - stems == set(), "notebooks/claims.toml has sections for notebooks that do not exist"
    header = registry_path().read_text().split("\n[")[0]
    for key in ("op", "threshold", "unit", "anchor", "reason"):
        assert f"#   {key}" in header, f"the header of notebooks/claims.toml must document `{key}`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_claims_match_the_registry(path):
    registered = REGISTRY.get(path.stem, {})
    calls = claim_calls(path)
    assert calls, f"{path.name} makes no claims"
    dynamic = [line for name, _, line in calls if name is None]
    assert not dynamic, f"{path.name}: claim names must be string literals (lines {dynamic} of their cells)"
    made = {name for name, _, _ in calls}
    assert not made - set(registered), (f"{path.name} claims {sorted(made - set(registered))}: "
                                        f"add them to notebooks/claims.toml with their reasons")
    assert not set(registered) - made, (f"notebooks/claims.toml registers {sorted(set(registered) - made)} for "
                                        f"{path.name}, which never claims them (a claim must not silently vanish)")
    for name, given, _ in calls:
        entry = registered[name]
        for key in ("op", "unit"):
            if key in given and given[key] is not None:
                assert given[key] == entry[key], (
                    f"{path.name}: {name} passes {key}={given[key]!r}, registry {entry[key]!r}")
        if given.get("threshold") is not None:
            assert float(given["threshold"]) == entry["threshold"], (
                f"{path.name}: {name} passes threshold {given['threshold']}, registry {entry['threshold']}")


def test_claim_calls_sees_names_and_literal_arguments(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell('%matplotlib inline\n_ = report.claim("a", x, 0.5, op="<=",\n'
                                           '    note=f"{x}")\nreport.claim(NAME, x, LIMIT, unit="points")')])
    nbformat.write(nb, tmp_path / "t.ipynb")
    assert claim_calls(tmp_path / "t.ipynb") == [("a", {"threshold": 0.5, "op": "<="}, 2),
                                                 (None, {"unit": "points"}, 4)]


@pytest.mark.parametrize("entry, message", [
    ({"op": ">=", "threshold": 1, "unit": ""}, r"\[nb.c\]: give the threshold's `anchor`"),
    ({"op": ">=", "threshold": 1, "unit": "", "reason": "  "}, r"give the threshold's `anchor`"),
    ({"op": "==", "threshold": 1, "unit": "", "reason": "r"}, r"op must be one of \['>=', '>', '<=', '<'\], got '=='"),
    ({"op": ">=", "unit": "", "reason": "r"}, r"missing \['threshold'\]"),
    ({"op": ">=", "threshold": "1", "unit": "", "reason": "r"}, r"threshold must be a number, got '1'"),
    ({"op": ">=", "threshold": True, "unit": "", "reason": "r"}, r"threshold must be a number, got True"),
    ({"op": ">=", "threshold": float("nan"), "unit": "", "reason": "r"}, r"threshold must be a number, got nan"),
    ({"op": ">=", "threshold": 1, "unit": None, "reason": "r"}, r"unit must be a string"),
    ({"op": ">=", "treshold": 1, "threshold": 1, "unit": "", "reason": "r"}, r"unknown key\(s\) \['treshold'\]"),
    ("0.5", r"\[nb.c\] must be a table"),
])
def test_load_registry_rejects_malformed_entries(entry, message):
    with pytest.raises(ValueError, match=message):
        load_registry({"nb": {"c": entry}})


def test_load_registry_reads_toml_and_rejects_bad_toml(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text('[nb.c]\nop = "<"\nthreshold = 1e-6\nunit = ""\nanchor = "round-off"\n')
    assert load_registry(path) == {"nb": {"c": {"op": "<", "threshold": 1e-6, "unit": "", "anchor": "round-off"}}}
    path.write_text('[nb.c]\nop = "<"\nthreshold = \n')
    with pytest.raises(ValueError, match=r"claims.toml: not valid TOML"):
        load_registry(path)
    with pytest.raises(ValueError, match=r"\[nb\] must be a table of claims"):
        load_registry({"nb": 3})
