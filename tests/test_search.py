"""ptm_lib.trends.search: the search space, the budget, Optuna studies and the Pareto front."""
import numpy as np
import optuna
import pytest

from ptm_lib.text.pretrain import corpus_tensors
from ptm_lib.trends import compute, search


def test_pareto_front_keeps_only_undominated_points():
    points = [[1, 5], [2, 3], [3, 4], [4, 1], [2, 3.5], [5, 1]]
    assert search.pareto_front(points).tolist() == [0, 1, 3]
    assert search.pareto_front([[1, 1]]).tolist() == [0]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        search.pareto_front([1, 2, 3])


def test_pareto_front_agrees_with_optuna():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 20, size=(40, 2)).astype(float)
    study = optuna.create_study(directions=["minimize", "minimize"])
    for p in points:
        study.add_trial(optuna.trial.create_trial(values=list(map(float, p)), params={}, distributions={}))
    ours = set(search.pareto_front(points).tolist())
    # optuna keeps every copy of a duplicated front point; so does the hand-written front
    assert ours == {t.number for t in study.best_trials}


def test_non_embedding_params_match_the_model():
    from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
    model = TransformerLM(TransformerConfig(vocab_size=500, d_model=32, n_layers=3, n_heads=4, d_ff=64, max_len=20))
    assert search.non_embedding_params(32, 3, 64) == model.num_params(non_embedding=True)


def test_budget_and_heads_are_enforced_before_training():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        try:
            arch = search.architecture_from(trial, budget=20_000)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        assert trial.user_attrs["params"] <= 20_000 and arch["d_model"] % arch["n_heads"] == 0
        study.tell(trial, 0.0)
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)


def test_search_runs_prunes_and_counts_steps(lang, tok):
    ids, mask = corpus_tensors(lang, tok, 200, 0, 12)
    held = compute.fixed_masks(*corpus_tensors(lang, tok, 32, 1, 12), tok)
    study = search.search("tpe", (ids, mask, tok, held), n_trials=6, budget=30_000, steps=12, eval_every=4, prune=True)
    trained = [t for t in study.trials if t.user_attrs.get("steps", 0) > 0]
    assert trained and search.trained_steps(study) == sum(t.user_attrs["steps"] for t in trained)
    assert all(t.user_attrs["params"] <= 30_000 for t in trained)
    assert np.isfinite(study.best_value)
    with pytest.raises(ValueError, match="sampler"):
        search.search("grid", (ids, mask, tok, held), n_trials=1, budget=None, steps=1, eval_every=1)
