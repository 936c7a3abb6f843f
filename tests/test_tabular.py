"""ptm_lib.tabular: the breast-cancer splits and masked-feature pretraining."""
import numpy as np
import pytest

from ptm_lib.tabular.masked_features import breast_cancer_splits, encode, masked_feature_pretrain


def test_splits_are_disjoint_stratified_and_standardised_on_the_pool():
    s = breast_cancer_splits(seed=0)
    sizes = {k: len(v[1]) for k, v in s.items()}
    assert sum(sizes.values()) == 569 and sizes["val"] == 60
    X_pool = s["pool"][0]
    assert np.allclose(X_pool.mean(0), 0, atol=1e-5) and np.allclose(X_pool.std(0), 1, atol=1e-3)
    rows = {k: {tuple(np.round(r, 5)) for r in v[0]} for k, v in s.items()}
    assert not rows["pool"] & rows["test"] and not rows["val"] & rows["test"]
    for _, y in s.values():
        assert 0.5 < y.mean() < 0.75                     # 357 benign of 569 in every split
    assert not np.array_equal(breast_cancer_splits(seed=1)["test"][0], s["test"][0])


def test_pretraining_is_seeded_trains_and_refuses_bad_input():
    X = breast_cancer_splits(seed=0)["pool"][0]
    enc_short = masked_feature_pretrain(X, steps=1, seed=0)
    enc = masked_feature_pretrain(X, steps=300, seed=0)
    assert encode(enc, X).shape == (len(X), 32)
    assert np.array_equal(encode(enc, X), encode(masked_feature_pretrain(X, steps=300, seed=0), X))
    assert not np.array_equal(encode(enc_short, X), encode(enc, X))
    with pytest.raises(ValueError, match="mask_p"):
        masked_feature_pretrain(X, mask_p=1.5)
    with pytest.raises(ValueError, match="finite"):
        masked_feature_pretrain(np.full((4, 3), np.nan))
