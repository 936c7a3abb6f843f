import json

import pytest
import torch

from ptm_lib.report import (ClaimFailed, MissingClaims, Report, is_smoke, load_registry, registry_path,
                            results_dir)

REGISTRY = {"99_test": {
    "good": {"op": ">=", "threshold": 0.8, "unit": "", "reason": "test"},
    "bad": {"op": ">=", "threshold": 0.8, "unit": "points", "reason": "test"},
    "nan": {"op": ">=", "threshold": 0.0, "unit": "", "reason": "test"},
    "small": {"op": "<", "threshold": 2, "unit": "", "anchor": "test"},
}}


def report(smoke=False, seed=0, registry=REGISTRY):
    return Report("99_test", smoke=smoke, seed=seed, device="cpu", registry=registry)


def saved():
    return json.loads((results_dir() / "99_test.json").read_text())


def test_is_smoke(monkeypatch):
    monkeypatch.delenv("PTM_SMOKE", raising=False)
    assert is_smoke(False) is False and is_smoke(True) is True
    monkeypatch.setenv("PTM_SMOKE", "1")
    assert is_smoke(False) is True
    monkeypatch.setenv("PTM_SMOKE", "0")
    assert is_smoke(False) is False


def test_report_saves_numbers_and_claims():
    r = report(seed=3)
    r.record("acc", torch.tensor(0.75))
    r.record("curve", [torch.tensor(1.0), 2])
    r.record("seconds", 1.5, unit="s")
    assert r.claim("good", 0.9, 0.8) is True
    assert r.claim("bad", torch.tensor(0.9)) is True          # op, threshold, unit from the registry
    assert r.claim("nan", 1.0, op=">=") is True and r.claim("small", 1, 2.0, op="<", unit="") is True
    path = r.save()
    assert path == results_dir() / "99_test.json"
    out = saved()
    assert out["numbers"] == {"acc": 0.75, "curve": [1.0, 2], "seconds": {"value": 1.5, "unit": "s"}}
    assert out["claims"]["good"] == {"value": 0.9, "threshold": 0.8, "op": ">=", "holds": True, "unit": None,
                                     "note": "", "enforced": True}
    assert out["claims"]["bad"]["unit"] == "points" and out["claims"]["small"]["op"] == "<"
    assert out["mode"] == "full" and out["seed"] == 3 and out["torch"] == torch.__version__
    assert out["wall_s"] >= 0 and out["all_claims_hold"] is True and out["missing_claims"] == []


def test_failed_claim_raises_in_full_mode_after_saving():
    r = report()
    with pytest.raises(ClaimFailed, match=r"measured 0.5, needed >= 0.8 points"):
        r.claim("bad", 0.5)
    out = saved()
    assert out["claims"]["bad"]["holds"] is False and out["all_claims_hold"] is False
    with pytest.raises(ClaimFailed, match=r"measured nan, needed >= 0"):
        r.claim("nan", float("nan"))


def test_failed_claim_is_recorded_not_enforced_in_smoke_mode():
    r = report(smoke=True)
    assert r.claim("bad", 0.5) is False
    assert r.claim("nan", float("nan")) is False
    assert r.claim("small", 1.0) is True
    assert r.as_dict()["claims"]["bad"] == {"value": 0.5, "threshold": 0.8, "op": ">=", "holds": False,
                                            "unit": "points", "note": "", "enforced": False}
    r.save()                                                   # smoke: missing/failing claims not enforced
    assert saved()["missing_claims"] == ["good"] and saved()["all_claims_hold"] is False


def test_unregistered_claim_is_refused():
    r = report()
    with pytest.raises(ValueError, match=r"'typo' is not registered for 99_test .*add it to notebooks/claims.toml "
                                         r"with its reason"):
        r.claim("typo", 1.0, 0.5)
    with pytest.raises(ValueError, match="add it to notebooks/claims.toml"):
        Report("98_unknown", smoke=True, seed=0, registry=REGISTRY).claim("good", 1.0)
    assert r.claims == {}


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 0.5}, r"threshold 0.5 \(notebooks/claims.toml: 0.8\)"),
    ({"op": ">"}, r"op '>' \(notebooks/claims.toml: '>='\)"),
    ({"unit": "%"}, r"unit '%' \(notebooks/claims.toml: 'points'\)"),
    ({"threshold": 0.8, "unit": ""}, r"unit '' \(notebooks/claims.toml: 'points'\)"),
])
def test_a_notebook_cannot_change_a_registered_bar(kwargs, message):
    r = report(smoke=True)                                     # refused in smoke mode too
    with pytest.raises(ValueError, match=message):
        r.claim("bad", 0.9, **kwargs)
    assert "bad" not in r.claims
    with pytest.raises(ValueError, match="op must be one of"):
        r.claim("bad", 0.9, op="==")


def test_registered_threshold_for_prose():
    r = report()
    assert r.threshold("bad") == 0.8 and isinstance(r.threshold("small"), float)
    entry = r.registered("small")
    assert entry == {"op": "<", "threshold": 2.0, "unit": "", "anchor": "test"}
    entry["threshold"] = 0                                     # a copy: the registry stays as reviewed
    assert r.threshold("small") == 2.0
    with pytest.raises(ValueError, match="not registered"):
        r.threshold("typo")


def test_final_save_refuses_missing_claims_in_full_mode_after_writing():
    r = report()
    r.claim("good", 0.9)
    r.claim("small", 1.0)
    with pytest.raises(MissingClaims, match=r"never measured: bad, nan"):
        r.save()
    assert issubclass(MissingClaims, ClaimFailed)
    out = saved()
    assert out["missing_claims"] == ["bad", "nan"] and out["all_claims_hold"] is False
    assert "| `bad` | not measured | >= 0.8 points | NO |" in r._repr_markdown_()
    r.claim("bad", 1.0)
    r.claim("nan", 1.0)
    assert r.save() == results_dir() / "99_test.json" and saved()["all_claims_hold"] is True


def test_final_save_refuses_a_swallowed_failed_claim():
    r = report()
    for name in ("good", "nan", "small"):
        r.claim(name, 1.0)
    try:
        r.claim("bad", 0.1)
    except ClaimFailed:
        pass                                                   # a notebook that swallows the failure ...
    with pytest.raises(ClaimFailed, match=r"do not hold: bad") as info:
        r.save()                                               # ... still fails at its final save
    assert not isinstance(info.value, MissingClaims) and saved()["claims"]["bad"]["holds"] is False


def test_registry_from_a_toml_path_and_the_course_default(tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text('[99_test.good]\nop = "<="\nthreshold = 3\nunit = "s"\nreason = "because"\n')
    r = report(registry=path)
    assert r.registered("good") == {"op": "<=", "threshold": 3.0, "unit": "s", "reason": "because"}
    assert r.claim("good", 2.5) is True and r.claims["good"]["unit"] == "s"
    course = load_registry()
    assert registry_path().name == "claims.toml" and "00_start_here" in course
    default = Report("00_start_here", smoke=True, seed=0)      # notebooks/claims.toml
    for name, entry in course["00_start_here"].items():
        assert default.threshold(name) == entry["threshold"]


def test_load_results_reads_only_the_mode_asked_for(tmp_path):
    from ptm_lib.report import load_results

    (tmp_path / "a.json").write_text('{"mode": "full", "numbers": {"x": 1}}')
    (tmp_path / "b.json").write_text('{"mode": "smoke", "numbers": {}}')
    (tmp_path / "c.json").write_text('not json')
    assert load_results("a", folder=tmp_path)["numbers"] == {"x": 1}
    assert load_results("b", folder=tmp_path) is None                  # a smoke file is not a full result
    assert load_results("b", mode="smoke", folder=tmp_path)["mode"] == "smoke"
    assert load_results("b", mode=None, folder=tmp_path) is not None
    assert load_results("c", folder=tmp_path) is None                  # unreadable
    assert load_results("missing", folder=tmp_path) is None
    with pytest.raises(ValueError, match="mode must be"):
        load_results("a", mode="fast", folder=tmp_path)
