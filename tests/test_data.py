import hashlib

import pytest
import torch

from ptm_lib import data


def test_per_class_subset_is_balanced():
    X, y = torch.arange(40), torch.arange(40) % 4  # X holds each example's index
    X_sub, y_sub = data.per_class_subset(X, y, 3, seed=1)
    assert len(X_sub) == 12 and torch.bincount(y_sub).tolist() == [3, 3, 3, 3]
    assert torch.equal(y_sub, y[X_sub])  # the labels still belong to their examples
    assert len(set(X_sub.tolist())) == 12  # no example picked twice
    with pytest.raises(ValueError, match="class 0 has only 10 examples, fewer than n_per_class=11"):
        data.per_class_subset(X, y, 11)
    with pytest.raises(ValueError, match="n_per_class must be >= 1, got 0"):
        data.per_class_subset(X, y, 0)
    with pytest.raises(ValueError, match="X and y differ in length: 40 vs 39"):
        data.per_class_subset(X, y[:-1], 2)


def test_per_class_subset_depends_on_its_seed_and_only_on_it():
    X, y = torch.arange(200), torch.arange(200) % 4
    torch.manual_seed(0)
    first = data.per_class_subset(X, y, 5, seed=1)[0]
    torch.manual_seed(123)  # the global random state does not matter
    assert torch.equal(data.per_class_subset(X, y, 5, seed=1)[0], first)
    chosen = {seed: frozenset(data.per_class_subset(X, y, 5, seed=seed)[0].tolist()) for seed in range(5)}
    assert len(set(chosen.values())) == 5  # different seeds choose different examples, not just another order


def test_make_loader_is_reproducible():
    X, y = torch.arange(20.).reshape(10, 2), torch.arange(10)
    first = [b[1].tolist() for b in data.make_loader(X, y, 4, seed=3)]
    again = [b[1].tolist() for b in data.make_loader(X, y, 4, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(10))
    with pytest.raises(ValueError, match="X and y differ in length: 10 vs 5"):
        data.make_loader(X, y[:5])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        data.make_loader(X, y, 0)
    assert [len(b[0]) for b in data.make_loader(X, y, 4, shuffle=False)] == [4, 4, 2]


def test_check_labels_messages():
    data.check_labels(torch.tensor([0, 9]), 10)
    with pytest.raises(ValueError, match=r"labels must be 1-D \(N,\), got shape \(2, 1\)"):
        data.check_labels(torch.tensor([[0], [1]]), 10)
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
    with pytest.raises(ValueError, match="sha256 mismatch .*nothing was saved"):  # wrong hash: nothing saved
        data.fetch(src.as_uri(), tmp_path / "other.bin", "0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "remote.bin"]  # no partial or temporary file
    dest.write_bytes(b"tampered")  # a cache hit is verified too
    with pytest.raises(ValueError, match="sha256 mismatch for .*file.bin.*delete it"):
        data.fetch(src.as_uri(), dest, digest)


def test_length_grouped_sampler_uses_every_example_once_and_groups_lengths():
    from ptm_lib.data import LengthGroupedSampler

    lengths = torch.randint(1, 60, (203,), generator=torch.Generator().manual_seed(0))
    sampler = LengthGroupedSampler(lengths, 16, group=4, generator=torch.Generator().manual_seed(1))
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 13
    assert sorted(i for b in first for i in b) == list(range(203))        # every example once per pass
    assert first != second                                                 # new batches every pass
    # padding: each batch pads to its longest; grouped batches waste far less than random ones
    waste = lambda batches: sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)
    rand = torch.randperm(203, generator=torch.Generator().manual_seed(2)).split(16)
    assert waste(first) < 0.5 * waste([r.tolist() for r in rand])
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        LengthGroupedSampler(lengths, 0)
    with pytest.raises(ValueError, match="lengths is empty"):
        LengthGroupedSampler([], 4)


def test_length_grouped_sampler_drop_last_keeps_only_full_batches():
    from ptm_lib.data import LengthGroupedSampler

    sampler = LengthGroupedSampler(torch.arange(1, 51), 8, group=2, drop_last=True,
                                   generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    assert all(len(b) == 8 for b in batches) and len(batches) == len(sampler) == 6   # groups of 16: 3 x 2 batches; 2 left over
    with pytest.raises(ValueError, match="no full batch"):
        LengthGroupedSampler(torch.ones(3), 8, drop_last=True)
