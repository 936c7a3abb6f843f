import json

import pytest
import torch

from ptm_lib.report import ClaimFailed, Report, is_smoke, results_dir


def test_is_smoke(monkeypatch):
    monkeypatch.delenv("PTM_SMOKE", raising=False)
    assert is_smoke(False) is False and is_smoke(True) is True
    monkeypatch.setenv("PTM_SMOKE", "1")
    assert is_smoke(False) is True
    monkeypatch.setenv("PTM_SMOKE", "0")
    assert is_smoke(False) is False


def test_report_saves_numbers_and_claims():
    r = Report("99_test", smoke=False, seed=3, device="cpu")
    r.record("acc", torch.tensor(0.75))
    r.record("curve", [torch.tensor(1.0), 2])
    r.record("seconds", 1.5, unit="s")
    assert r.claim("good", 0.9, 0.8) is True
    path = r.save()
    assert path == results_dir() / "99_test.json"
    saved = json.loads(path.read_text())
    assert saved["numbers"] == {"acc": 0.75, "curve": [1.0, 2], "seconds": {"value": 1.5, "unit": "s"}}
    assert saved["claims"]["good"]["holds"] is True and saved["claims"]["good"]["enforced"] is True
    assert saved["mode"] == "full" and saved["seed"] == 3 and saved["torch"] == torch.__version__
    assert saved["wall_s"] >= 0 and saved["all_claims_hold"] is True


def test_failed_claim_raises_in_full_mode_after_saving():
    r = Report("99_test", smoke=False, seed=0)
    with pytest.raises(ClaimFailed, match=r"measured 0.5, needed >= 0.8 points"):
        r.claim("bad", 0.5, 0.8, unit="points")
    saved = json.loads((results_dir() / "99_test.json").read_text())
    assert saved["claims"]["bad"]["holds"] is False and saved["all_claims_hold"] is False


def test_failed_claim_is_recorded_not_enforced_in_smoke_mode():
    r = Report("99_test", smoke=True, seed=0)
    assert r.claim("bad", 0.5, 0.8) is False
    assert r.claim("nan", float("nan"), 0.0) is False
    assert r.claim("small", 1.0, 2.0, op="<") is True
    assert r.as_dict()["claims"]["bad"] == {"value": 0.5, "threshold": 0.8, "op": ">=", "holds": False,
                                            "unit": None, "note": "", "enforced": False}
    with pytest.raises(ValueError, match="op must be one of"):
        r.claim("x", 1, 1, op="==")
