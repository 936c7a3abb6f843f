import hashlib

import pytest
import torch

from ptm_lib import data


def test_digits_split_is_fixed_and_documented():
    s = data.load_digits()
    assert (len(s.X_train), len(s.X_val), len(s.X_test)) == (1077, 360, 360)
    assert s.X_train.shape[1] == 64 and s.X_train.dtype == torch.float32
    assert 0.0 <= float(s.X_train.min()) and float(s.X_train.max()) == 1.0
    assert s.y_train.dtype == torch.int64 and set(s.y_test.tolist()) == set(range(10))
    again = data.load_digits()
    assert torch.equal(s.X_test, again.X_test) and torch.equal(s.y_val, again.y_val)
    # stratified: every class is 9-11 % of the test set
    counts = torch.bincount(s.y_test, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_digits_sha256_is_pinned_in_data_readme():
    from ptm_lib.report import repo_root

    readme = (repo_root() / "data" / "README.md").read_text()
    assert data.DIGITS_SHA256 in readme
    assert data.sha256_file(data.digits_path()) == data.DIGITS_SHA256


def test_per_class_subset_balanced_and_seeded():
    s = data.load_digits()
    X, y = data.per_class_subset(s.X_train, s.y_train, 3, seed=1)
    assert len(X) == 30 and torch.bincount(y, minlength=10).tolist() == [3] * 10
    X2, _ = data.per_class_subset(s.X_train, s.y_train, 3, seed=1)
    X3, _ = data.per_class_subset(s.X_train, s.y_train, 3, seed=2)
    assert torch.equal(X, X2) and not torch.equal(X, X3)
    with pytest.raises(ValueError, match="fewer than n_per_class"):
        data.per_class_subset(s.X_train, s.y_train, 10_000)


def test_make_loader_is_reproducible():
    X, y = torch.arange(20.).reshape(10, 2), torch.arange(10)
    first = [b[1].tolist() for b in data.make_loader(X, y, 4, seed=3)]
    again = [b[1].tolist() for b in data.make_loader(X, y, 4, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    with pytest.raises(ValueError, match="differ in length"):
        data.make_loader(X, y[:5])


def test_check_labels_messages():
    data.check_labels(torch.tensor([0, 9]), 10)
    with pytest.raises(ValueError, match="out of range.*10 classes"):
        data.check_labels(torch.tensor([0, 10]), 10)
    with pytest.raises(ValueError, match="integer class ids"):
        data.check_labels(torch.tensor([0.0, 1.0]), 10)


def test_fetch_checks_hash_on_download_and_on_cache_hit(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"hello course" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "file.bin"
    assert data.fetch(src.as_uri(), dest, digest) == dest
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ValueError, match="sha256 mismatch"):  # wrong hash: nothing saved
        data.fetch(src.as_uri(), tmp_path / "other.bin", "0" * 64)
    assert not (tmp_path / "other.bin").exists()
    assert not list((tmp_path).glob("*.tmp"))
    dest.write_bytes(b"tampered")  # a cache hit is verified too
    with pytest.raises(ValueError, match="sha256 mismatch"):
        data.fetch(src.as_uri(), dest, digest)
