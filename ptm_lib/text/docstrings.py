"""Real English that every course machine has: the docstring summaries of its scientific packages.

    texts, labels, topics, sources = docstring_corpus()     # about 2,450 lines, 8 topics
    task = make_docstring_task(seed=0)                       # a LabelledTask: pool / val / test

The first sentence of the docstring of every public function, class, method and callable object of
numpy, scipy, torch, scikit-learn and matplotlib that lives in one of the namespaces of `HARVEST`,
read with `inspect` from the installed packages when you call it (nothing is copied into the
course), labelled with the topic of the module that *defines* it (``obj.__module__``):

    "Compute the eigenvalues of a complex Hermitian or real symmetric matrix."  -> linear algebra
    "Applies a 1D convolution over an input signal composed of several input planes." -> nn layers

Rules, so that a label says what the line is about and not where it was found:

* the defining module decides (`topic_of_module`): ``scipy.linalg._decomp`` is ``scipy.linalg``
  (private parts dropped) -> linear algebra. An object found in one namespace but defined in
  another (a re-export) is labelled by where it is defined, or skipped if that has no topic
  (``torch.nn.Parameter`` lives in ``torch.nn.parameter``). Only compiled functions without a
  Python module (numpy ufuncs, ``torch._C`` builtins) take the namespace where they were found;
* each object is read once; a line that occurs under two topics is dropped (ambiguous), and one
  that occurs twice under the same topic is kept once (numpy.fft and scipy.fft share many);
* lines shorter than `MIN_WORDS` words or `MIN_CHARS` characters are dropped, and so are docstrings
  without a summary (one that starts with a ``Parameters`` section) and "Alias for ..." lines; reST
  markup (``:func:`~numpy.fft.fft```, backticks, ``*emphasis*``) is reduced to its text;
* the order is sorted (topic, then text), so the corpus is the same on every call and machine with
  the pinned package versions. Warnings raised while importing the namespaces are silenced.

The corpus is built once per process (about 2 s after torch is imported, most of it importing
scipy, sklearn and matplotlib sub-packages) and cached. Its size depends on the package versions
(pinned in constraints.txt); `corpus_info()` records them with the class counts. With the pins of
this course: 2,454 lines; linear algebra 159, signal & Fourier 308, probability & statistics 479,
optimisation 155, plotting 599, special functions & integration 361, neural-network layers 239,
model evaluation 154.

Calibration (test: 60 lines per topic, C of a logistic regression chosen on validation, 5 seeds):
TF-IDF (word 1-2-grams) rises from 25 % at 1 label per topic to 83 % at 64; a logistic-regression
probe on MiniLM's mean-pooled embeddings (`ptm_lib.text.minilm`) from 41 % to 86 %; the same probe
on the randomly initialised MiniLM from 19 % to 70 %. Near-duplicate lines (numpy.fft's and
torch.fft's "discrete Fourier transform") can fall into both the pool and the test split: as in
real data, nothing is done about it.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from collections import Counter

import numpy as np

from .tasks import LabelledTask

__all__ = ["TOPICS", "TOPIC_MODULES", "HARVEST", "MIN_WORDS", "MIN_CHARS", "topic_of_module", "summary_line",
           "docstring_corpus", "corpus_info", "make_docstring_task"]

TOPICS = ("linear algebra", "signal & Fourier", "probability & statistics", "optimisation", "plotting",
          "special functions & integration", "neural-network layers", "model evaluation")

# topic -> the (public) modules whose objects carry that label; a module inside one counts too.
TOPIC_MODULES: dict[str, tuple[str, ...]] = {
    "linear algebra": ("numpy.linalg", "scipy.linalg", "torch.linalg"),
    "signal & Fourier": ("numpy.fft", "scipy.fft", "scipy.signal", "torch.fft"),
    "probability & statistics": ("scipy.stats", "numpy.random"),
    "optimisation": ("scipy.optimize", "torch.optim"),
    "plotting": ("matplotlib",),
    "special functions & integration": ("scipy.special", "scipy.integrate"),
    "neural-network layers": ("torch.nn.modules",),
    "model evaluation": ("sklearn.metrics", "sklearn.model_selection"),
}
assert tuple(TOPIC_MODULES) == TOPICS

# The public namespaces whose names are read (what a learner would type after `import`).
HARVEST = (
    "numpy.linalg", "scipy.linalg", "torch.linalg",
    "numpy.fft", "scipy.fft", "scipy.signal", "scipy.signal.windows", "torch.fft",
    "scipy.stats", "scipy.stats.qmc", "scipy.stats.mstats", "scipy.stats.contingency", "numpy.random",
    "scipy.optimize", "scipy.optimize.elementwise", "torch.optim", "torch.optim.lr_scheduler",
    "torch.optim.swa_utils",
    *(f"torch.optim.{name}" for name in ("adadelta", "adagrad", "adam", "adamax", "adamw", "asgd", "lbfgs",
                                         "nadam", "optimizer", "radam", "rmsprop", "rprop", "sgd", "sparse_adam")),
    "matplotlib.pyplot",
    "scipy.special", "scipy.integrate",
    "torch.nn",
    "sklearn.metrics", "sklearn.metrics.pairwise", "sklearn.metrics.cluster", "sklearn.model_selection",
)
MIN_WORDS = 3       # "Implements Adam algorithm." stays; "Forward pass." goes
MIN_CHARS = 12

SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(->.*)?$", re.S)       # "erf(z, out=None)", "linalg.solve(A, B) -> Tensor"
ROLE = re.compile(r":[\w:+-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")     # :func:`~numpy.fft.fft` -> numpy.fft.fft
SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]`'\"]\.)\s+(?=[A-Z(])")   # ". " before a capital


def topic_of_module(module: str | None) -> str | None:
    """The topic of a defining module, or None: its public part (up to the first ``_private``
    component) matched against `TOPIC_MODULES`, the longest prefix winning.

    >>> topic_of_module("scipy.linalg._decomp_svd"), topic_of_module("torch.nn.parameter")
    ('linear algebra', None)
    """
    if not isinstance(module, str) or not module:
        return None
    public = []
    for part in module.split("."):
        if part.startswith("_"):
            break
        public.append(part)
    name = ".".join(public)
    best, best_len = None, -1
    for topic, prefixes in TOPIC_MODULES.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = topic, len(prefix)
    return best


def summary_line(doc: str | None) -> str | None:
    """The summary of a docstring: its first sentence, after a leading call signature (compiled
    functions start with one) and reST directives (``.. deprecated:: 3.10``), with markup reduced
    to text and whitespace collapsed. None when there is no docstring, when it starts with a
    section (``Parameters`` over a line of dashes: no summary), or when it only says "Alias for ..."."""
    if not isinstance(doc, str) or not doc.strip():
        return None
    lines = inspect.cleandoc(doc).splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith(".. ")):
        lines.pop(0)                                      # blank lines and directives before the summary
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
    while paragraphs and SIGNATURE.match(paragraphs[0]):
        paragraphs.pop(0)
    if not paragraphs:
        return None
    first = paragraphs[0].splitlines()
    if len(first) > 1 and re.fullmatch(r"\s*[-=~]{3,}\s*", first[1]):
        return None                                       # "Parameters\n----------": a section, not a summary
    text = " ".join(paragraphs[0].split()).replace("\\ ", "")
    text = ROLE.sub(lambda m: m.group(1).split(".")[-1] if "." in m.group(1) and " " not in m.group(1)
                     else m.group(1), text)
    text = text.replace("`", "").replace("*", "")
    text = SENTENCE_END.split(text, maxsplit=1)[0].strip()
    if not text or text.startswith("Alias for "):
        return None
    return text


def _defining_module(obj, found_in: str) -> str | None:
    """Where `obj` is defined. Compiled objects with no Python home (numpy ufuncs, ``torch._C``
    builtins) count as defined in the public namespace they were found in."""
    module = getattr(obj, "__module__", None)
    compiled = isinstance(obj, np.ufunc) or inspect.isbuiltin(obj)
    if compiled and (not isinstance(module, str) or module.startswith("torch._C")):
        return found_in
    return module if isinstance(module, str) else None


def own_members(cls) -> list[tuple[str, object]]:
    """Public methods and properties defined in the body of `cls` (not inherited), by name."""
    out = []
    for name, value in sorted(vars(cls).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        compiled_method = inspect.ismethoddescriptor(value) and type(value).__module__ == "builtins"
        if inspect.isfunction(value) or inspect.isbuiltin(value) or compiled_method:   # not other descriptors,
            out.append((name, value))                               # whose __doc__ describes the descriptor
    return out


def _harvest() -> list[tuple[str, str, str]]:
    """(topic, summary line, source "defining.module.Name[.method]") for every object, in `HARVEST` order."""
    rows, seen = [], set()
    for namespace in HARVEST:
        module = importlib.import_module(namespace)
        for name in sorted(dir(module)):
            if name.startswith("_") or name == "test":     # `test`: numpy/scipy's pytest runner
                continue
            try:
                obj = getattr(module, name)
            except Exception:            # noqa: BLE001  (a lazy attribute that fails to import: not ours)
                continue
            if inspect.ismodule(obj) or not callable(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            home = _defining_module(obj, namespace)
            topic = topic_of_module(home)
            if topic is None:
                continue
            # where to find it: Python functions and classes where they are defined (pyplot.draw_all is
            # matplotlib._pylab_helpers.Gcf.draw_all), other objects where they were found.
            python_level = inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismethod(obj)
            qualname = getattr(obj, "__qualname__", "<>") if python_level else "<>"
            source = f"{namespace}.{name}" if "<" in qualname else f"{home}.{qualname}"
            rows.append((topic, summary_line(getattr(obj, "__doc__", None)), source))
            if inspect.isclass(obj):
                for member, fn in own_members(obj):
                    if id(fn) not in seen:
                        seen.add(id(fn))
                        rows.append((topic, summary_line(getattr(fn, "__doc__", None)), f"{source}.{member}"))
    return rows


@functools.lru_cache(maxsize=1)
def _corpus() -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...], dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # deprecation notices of scipy/sklearn/torch sub-modules
        rows = _harvest()
    by_text: dict[str, dict] = {}
    short = 0
    for topic, text, source in rows:
        if text is None or len(text) < MIN_CHARS or len(text.split()) < MIN_WORDS:
            short += 1
            continue
        key = " ".join(text.casefold().split())
        entry = by_text.setdefault(key, {"text": text, "topics": set(), "sources": []})
        entry["topics"].add(topic)
        entry["sources"].append(source)
    kept = [(TOPICS.index(next(iter(e["topics"]))), e["text"], min(e["sources"]))
            for e in by_text.values() if len(e["topics"]) == 1]
    kept.sort()
    ambiguous = sum(len(e["topics"]) > 1 for e in by_text.values())
    info = {"objects": len(rows), "dropped_short": short, "dropped_ambiguous": ambiguous,
            "duplicates_merged": len(rows) - short - len(by_text),
            "class_counts": dict(Counter(TOPICS[c] for c, _, _ in kept)), "versions": _versions()}
    return (tuple(t for _, t, _ in kept), tuple(c for c, _, _ in kept), tuple(s for _, _, s in kept), info)


def _versions() -> dict[str, str]:
    from importlib import metadata
    return {name: metadata.version(name) for name in ("numpy", "scipy", "torch", "scikit-learn", "matplotlib")}


def docstring_corpus() -> tuple[list[str], np.ndarray, list[str], list[str]]:
    """The corpus: texts (N,) str, labels (N,) int64 in [0, 8), topics (8,) names, sources (N,) the
    object each line documents (``"scipy.linalg._basic.solve"``; for a line shared by several objects
    of one topic, the first in sorted order). Sorted by (label, text); fresh lists on every call."""
    texts, labels, sources, _ = _corpus()
    return list(texts), np.asarray(labels, dtype=np.int64), list(TOPICS), list(sources)


def corpus_info() -> dict:
    """How the corpus was made: objects read, lines dropped (short, ambiguous), duplicates merged,
    class counts, and the versions of the packages it was read from."""
    info = _corpus()[3]
    return {**info, "class_counts": dict(info["class_counts"]), "versions": dict(info["versions"])}


def make_docstring_task(seed: int = 0, n_test_per_class: int = 60, n_val_per_class: int = 16,
                        min_pool_per_class: int = 64) -> LabelledTask:
    """Docstring line -> topic, as a `LabelledTask` (see `ptm_lib.text.tasks`): class-balanced test
    (`n_test_per_class` of every topic) and validation (`n_val_per_class`) splits; every other line
    is the labelled pool (unbalanced: plotting has far more lines than optimisation). The split is
    stratified and depends only on `seed`; labels are the true ones (no label noise); there is no
    "unseen" split. Raises a ValueError, with the counts, if a topic has fewer than
    n_test + n_val + min_pool_per_class lines (so that budgets up to `min_pool_per_class` work)."""
    for name, value in (("n_test_per_class", n_test_per_class), ("n_val_per_class", n_val_per_class),
                        ("min_pool_per_class", min_pool_per_class)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    texts, labels, topics, sources = docstring_corpus()
    counts = np.bincount(labels, minlength=len(topics))
    need = n_test_per_class + n_val_per_class + min_pool_per_class
    if counts.min() < need:
        short = {topics[c]: int(counts[c]) for c in np.flatnonzero(counts < need)}
        raise ValueError(f"too few lines for n_test_per_class={n_test_per_class} + n_val_per_class="
                         f"{n_val_per_class} + min_pool_per_class={min_pool_per_class} = {need} per topic: {short}")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in range(len(topics)):
        idx = rng.permutation(np.flatnonzero(labels == c))
        parts["test"].append(idx[:n_test_per_class])
        parts["val"].append(idx[n_test_per_class:n_test_per_class + n_val_per_class])
        parts["train"].append(idx[n_test_per_class + n_val_per_class:])
    split = {name: np.sort(np.concatenate(p)) for name, p in parts.items()}
    take = {name: ([texts[i] for i in idx], labels[idx]) for name, idx in split.items()}
    info = {"seed": seed, "class_counts": {topics[c]: int(counts[c]) for c in range(len(topics))},
            "pool_counts": {topics[c]: int((take["train"][1] == c).sum()) for c in range(len(topics))},
            "sources": {name: [sources[i] for i in idx] for name, idx in split.items()},
            "needs_word_order": False, "label_noise": 0.0}
    return LabelledTask("docstrings", topics, *take["train"], *take["val"], *take["test"],
                        [], np.zeros(0, np.int64), info=info)
