"""ptm_lib.vision.digits: the pinned, fixed split of the 8x8 digits."""
import pytest
import torch

from ptm_lib.data import sha256_file
from ptm_lib.vision import digits


def test_digits_split_is_fixed_and_documented():
    s = digits.load_digits()
    assert (len(s.X_train), len(s.X_val), len(s.X_test)) == (1077, 360, 360)
    assert s.X_train.shape == (1077, 64) and s.X_train.dtype == torch.float32
    assert float(s.X_train.min()) == 0.0 and float(s.X_train.max()) == 1.0  # 0..16 scaled to [0, 1]
    assert s.y_train.dtype == torch.int64 and set(s.y_test.tolist()) == set(range(10)) and s.n_classes == 10
    again = digits.load_digits()
    assert torch.equal(s.X_test, again.X_test) and torch.equal(s.y_val, again.y_val)
    counts = torch.bincount(s.y_test, minlength=10)  # stratified: every class is 9-11 % of the test set
    assert counts.min() >= 34 and counts.max() <= 38
    assert repr(s) == "Split(X_train=(1077, 64), X_val=(360, 64), X_test=(360, 64), n_classes=10)"


def test_split_fractions_are_checked():
    s = digits.load_digits(val_fraction=0.1, test_fraction=0.3)
    assert (len(s.X_train), len(s.X_val), len(s.X_test)) == (1077, 180, 540)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction < 1"):
        digits.load_digits(val_fraction=0.5, test_fraction=0.5)


def test_digits_sha256_is_pinned_in_data_readme():
    from ptm_lib.report import repo_root

    readme = (repo_root() / "data" / "README.md").read_text()
    assert digits.DIGITS_SHA256 in readme
    assert sha256_file(digits.digits_path()) == digits.DIGITS_SHA256


def test_a_changed_digits_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "digits.csv.gz"
    original = digits.digits_path().read_bytes()
    fake.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit differs
    monkeypatch.setattr(digits, "digits_path", lambda: fake)
    with pytest.raises(ValueError, match="sha256 mismatch for .*digits.csv.gz: expected 09f66e6d"):
        digits.load_digits()
