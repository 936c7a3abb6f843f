"""Bad input to the public API (what the notebooks call) fails early and clearly: a ValueError or
TypeError raised by ptm_lib's own guard, saying what was expected -- never a crash deep inside torch,
NumPy or scikit-learn.

A table of named mistakes (wrong shapes and dtypes, empty data, token ids outside the vocabulary,
labels outside the classes, NaN/inf, a budget larger than the pool, non-positive learning rates,
steps and warm-up, unknown strategy names) checks each message; then Hypothesis generates inputs
around and across those limits (the sum of FUZZ_EXAMPLES, derandomized: every run tries the same ones).
"""
import math
import re
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import ptm_lib
import ptm_lib as ptm
from ptm_lib import data
from ptm_lib.evaluate import confusion, labels_needed, per_class_accuracy
from ptm_lib.nets import lstm
from ptm_lib.nets.transformer import EncoderDecoder, TransformerClassifier, TransformerConfig, TransformerLM
from ptm_lib.seeding import seed_everything
from ptm_lib.text import LanguageConfig, SyntheticLanguage, WordTokenizer, budget_indices, make_agent_task, make_topic_task
from ptm_lib.text import finetune, pretrain
from ptm_lib.text.diagnostics import embedding_topic_purity
from ptm_lib.text.objectives import clm_loss, denoising_loss, mask_tokens, masked_lm_loss, mlm_loss, span_corrupt
from ptm_lib.train import fit, lr_factor, warmup_schedule
from ptm_lib.vision import shift

LIB = str(Path(ptm_lib.__file__).parent)


def call(fn, *args, **kwargs):
    """`fn(*args, **kwargs)`; it may fail only with a ValueError/TypeError that ptm_lib itself raised
    (the innermost frame is in ptm_lib), with a message. Returns the result or the error."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        assert frame.filename.startswith(LIB), (
            f"{type(e).__name__} raised inside {frame.filename}:{frame.lineno} ({frame.line}), not by a ptm_lib "
            f"guard: {e}")
        assert len(str(e)) >= 20, f"the message says too little: {e!r}"
        return e


# ------------------------------------------------------------------------ small models and data
LANG = SyntheticLanguage(LanguageConfig(seed=0, n_topics=3, subtopics=1, words_per_subtopic=8, shared_per_topic=4))
TOK = WordTokenizer.from_language(LANG)
V = len(TOK)
CFG = TransformerConfig(vocab_size=V, max_len=8, d_model=8, n_layers=1, n_heads=2)


def _models():
    torch.manual_seed(0)
    return {"lm": TransformerLM(CFG), "clf": TransformerClassifier(replace(CFG, n_classes=3)),
            "encdec": EncoderDecoder(CFG), "mlp": ptm.MLP(ptm.MLPConfig(in_dim=4, hidden=4, n_classes=3)),
            "ae": lstm.SequenceAutoencoder(lstm.LSTMConfig(vocab_size=V, emb_dim=4, hidden_dim=4)),
            "lstm_clf": lstm.LSTMClassifier(lstm.LSTMConfig(vocab_size=V, emb_dim=4, hidden_dim=4, n_classes=3))}


M = _models()
TASK = make_topic_task(LANG, pool_per_class=4, n_val_per_class=2, n_test_per_class=2)
ENCODED = finetune.encode_task(TASK, TOK, max_len=8)
IDS, MASK = TOK.encode_batch(LANG.corpus(6, seed=0), max_len=8)
DIGITS_X, DIGITS_Y = torch.rand(12, 64), torch.arange(12) % 3

# ------------------------------------------------------------------------ the table of mistakes
GOOD_IDS = IDS[:2]
BAD = [  # (what, call, expected message)
    ("MLP: images not flattened", lambda: M["mlp"](torch.zeros(2, 2, 2)), r"expects input of shape \(batch, 4\)"),
    ("MLP: integer pixels", lambda: M["mlp"](torch.zeros(2, 4, dtype=torch.long)), r"floating-point.*got torch.int64"),
    ("predict: NaN pixels", lambda: ptm.predict(M["mlp"], torch.full((2, 4), math.nan)), r"NaN or inf"),
    ("predict: no examples", lambda: ptm.predict(M["mlp"], torch.zeros(0, 4)), r"0 examples"),
    ("accuracy: labels of another length", lambda: ptm.accuracy(M["mlp"], torch.zeros(3, 4), torch.zeros(2).long()),
     r"labels y must have shape \(3,\)"),
    ("loss: label 3 of 3 classes", lambda: ptm.classification_loss(M["mlp"], (torch.zeros(2, 4), torch.tensor([0, 3]))),
     r"labels must be in \[0, 2\]"),
    ("loss: float labels", lambda: ptm.classification_loss(M["mlp"], (torch.zeros(2, 4), torch.tensor([0.0, 1.0]))),
     r"integer class ids"),
    ("fit: lr 0", lambda: fit(M["mlp"], ptm.classification_loss, [(torch.zeros(2, 4), torch.zeros(2).long())], steps=1,
                             lr=0.0, device="cpu", progress=False), r"lr must be > 0, got 0.0"),
    ("fit: lr NaN", lambda: fit(M["mlp"], ptm.classification_loss, [(torch.zeros(2, 4), torch.zeros(2).long())], steps=1,
                               lr=math.nan, device="cpu", progress=False), r"lr must be > 0, got nan"),
    ("fit: steps -1", lambda: fit(M["mlp"], ptm.classification_loss, [], steps=-1, device="cpu"), r"steps must be > 0"),
    ("fit: empty loader", lambda: fit(M["mlp"], ptm.classification_loss, [], steps=2, device="cpu", progress=False),
     r"the data loader is empty"),
    ("fit: NaN data", lambda: fit(M["mlp"], ptm.classification_loss, [(torch.full((2, 4), math.nan), torch.zeros(2).long())],
                                 steps=1, device="cpu", progress=False), r"loss became nan at step 1"),
    ("warm-up -1", lambda: lr_factor(0, warmup=-1), r"step and warmup must be >= 0"),
    ("schedule total < warm-up", lambda: warmup_schedule(torch.optim.SGD(M["mlp"].parameters(), lr=0.1), warmup=5, total=2),
     r"total must be >= warmup"),
    ("make_loader: X and y differ", lambda: ptm.make_loader(torch.zeros(3, 4), torch.zeros(2)), r"differ in length: 3 vs 2"),
    ("make_loader: no examples", lambda: ptm.make_loader(torch.zeros(0, 4), torch.zeros(0)), r"no examples"),
    ("budget > pool (digits)", lambda: ptm.per_class_subset(DIGITS_X, DIGITS_Y, 5), r"class 0 has only 4 examples"),
    ("budget > pool (text)", lambda: budget_indices(TASK.train_labels, 5), r"only 4 labelled examples, asked for 5"),
    ("budget 0", lambda: budget_indices(TASK.train_labels, 0), r"per_class must be an integer >= 1"),
    ("token id = vocab size", lambda: M["lm"](torch.tensor([[2, V]])), rf"token ids must be in \[0, {V}\)"),
    ("negative token id", lambda: M["ae"](torch.tensor([[2, -1]])), rf"token ids must be in \[0, {V}\)"),
    ("float token ids", lambda: M["lstm_clf"](GOOD_IDS.float()), r"ids must be a \(batch, time\) int64 tensor"),
    ("1-D token ids", lambda: M["clf"](GOOD_IDS[0]), r"ids must be a \(batch, time\) int64 tensor"),
    ("sequence > max_len", lambda: M["lm"](torch.ones(1, 9, dtype=torch.long)), r"sequence length 9 > max_len 8"),
    ("empty batch", lambda: M["encdec"](torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long)),
     r"empty batch"),
    ("mask of another shape", lambda: M["lstm_clf"](GOOD_IDS, MASK[:1]), r"attention_mask has shape"),
    ("additive -inf mask", lambda: M["lm"](GOOD_IDS[:1, :2], torch.tensor([[0.0, -math.inf]])), r"additive bias"),
    ("mask p 1.5", lambda: mask_tokens(GOOD_IDS, TOK, 1.5), r"p must be in \[0, 1\]"),
    ("mlm labels of another shape", lambda: mlm_loss(torch.zeros(2, 3, V), torch.zeros(2, 4).long()), r"disagree"),
    ("text labels outside the classes", lambda: ptm.classification_loss(M["clf"], (GOOD_IDS, MASK[:2],
                                                                                            torch.tensor([0, 7]))),
     r"labels must be in \[0, 2\]"),
    ("unknown strategy", lambda: finetune.run_strategy("finetune-all", M["lm"], ENCODED, 1, 0), r"strategy must be one of"),
    ("strategy budget > pool", lambda: finetune.run_strategy("probe", M["lm"], ENCODED, 9, 0), r"asked for 9 per class"),
    ("unknown strategy in a batch of jobs", lambda: finetune.run_many([("probe", 1, 0), ("linear", 1, 0)], M["lm"],
                                                                      ENCODED, progress=False), r"got 'linear'"),
    ("budget > pool in a batch of jobs", lambda: finetune.run_many([("probe", 1, 0), ("full", 5, 0)], M["lm"], ENCODED,
                                                                   progress=False), r"asked for 5 per class"),
    ("train_classifier: lr -1", lambda: finetune.train_classifier(M["clf"], ENCODED.train, steps=2, lr=-1.0),
     r"lr must be > 0, got -1.0"),
    ("train_classifier: warm-up -1", lambda: finetune.train_classifier(M["clf"], ENCODED.train, steps=2, lr=1e-3, warmup=-1),
     r"warmup must be >= 0"),
    ("pretrain: steps 0", lambda: pretrain.pretrain(M["lm"], IDS, MASK, TOK, steps=0), r"steps must be > 0, got 0"),
    ("pretrain: unknown objective", lambda: pretrain.pretrain(M["lm"], IDS, MASK, TOK, objective="gpt", steps=1, batch_size=4),
     r"objective must be 'mlm', 'clm' or 'denoise'"),
    ("pretrain: batch larger than the corpus", lambda: pretrain.pretrain(M["lm"], IDS, MASK, TOK, steps=1, batch_size=64),
     r"batch_size 64 > the 6 sentences"),
    ("shift: not square images", lambda: shift.rotate(torch.zeros(2, 10), 15), r"not a square number"),
    ("shift: NaN pixels", lambda: shift.translate(torch.full((2, 4), math.nan), 1), r"NaN or inf"),
    ("labels_needed: NaN accuracy", lambda: labels_needed([1, 2], [0.5, math.nan], 0.6), r"finite"),
    ("confusion: label 5 of 3 classes", lambda: confusion([0, 5], [0, 1], 3), r"class ids must be in \[0, 3\)"),
    ("purity: embeddings of another vocabulary", lambda: embedding_topic_purity(torch.zeros(5, 4), TOK, LANG),
     r"embeddings must be \(vocab_size"),
    ("seed -1", lambda: seed_everything(-1), r"seed must be a non-negative int"),
    ("task pool 0", lambda: make_topic_task(LANG, pool_per_class=0), r"must be >= 1"),
    ("decode id outside the vocabulary", lambda: TOK.decode([V]), rf"id {V} out of range"),
]


@pytest.mark.parametrize("what, fn, message", BAD, ids=[b[0] for b in BAD])
def test_each_mistake_gets_a_clear_error(what, fn, message):
    error = call(fn)
    assert isinstance(error, (ValueError, TypeError)), f"{what}: no error, returned {error!r}"
    assert re.search(message, str(error)), f"{what}: the message {str(error)!r} does not say {message!r}"


# ------------------------------------------------------------------------ Hypothesis
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
FUZZ_EXAMPLES = {}      # test name -> examples it asks for; their sum is reported in the README


def fuzz(n):
    def wrap(test):
        FUZZ_EXAMPLES[test.__name__] = n
        return settings(FUZZ, max_examples=n)(test)
    return wrap


FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
NUMBERS = st.one_of(st.floats(-2, 2), FLOATS, st.integers(-3, 3))
DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.uint8, np.bool_]


@st.composite
def tensors(draw, shape=None, dtypes=DTYPES, low=-2, high=2):
    """A tensor of a drawn dtype and shape (`shape`: a tuple, a strategy, or None for any 0-3-D one):
    floats anything, NaN and inf included; integers in [low, high]."""
    if shape is None:
        shape = st.lists(st.integers(0, 5), max_size=3).map(tuple)
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype.kind == "f":
        elements = st.one_of(st.floats(low, high, width=16), st.floats(width=16))
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(max(low, info.min), min(high, info.max))
    return torch.from_numpy(draw(arrays(dtype, shape, elements=elements)).copy())


def maybe(value_strategy, bad):
    """Mostly plausible values (3 in 4), sometimes one from `bad`."""
    return st.sampled_from("gggb").flatmap(lambda kind: value_strategy if kind == "g" else st.sampled_from(bad))


@st.composite
def token_batches(draw):
    """(ids, mask): usually (B, T) int64 within the vocabulary with a 0/1 mask, sometimes out of range,
    of another dtype or shape, empty, longer than max_len, with a mask of other values."""
    B, T = draw(st.integers(0, 3)), draw(st.integers(0, 10))
    ids = draw(tensors(shape=draw(st.sampled_from([(B, T), (B, T), (B, T), (T,), (B, T, 2)])),
                       dtypes=[np.int64] * 6 + [np.int32, np.float32], low=-1, high=V))
    mask_shape = draw(st.sampled_from([tuple(ids.shape), tuple(ids.shape), (B, T + 1), (B,)]))
    mask = draw(st.one_of(st.none(), tensors(shape=mask_shape, dtypes=[np.bool_, np.bool_, np.int64, np.float32],
                                             low=0, high=1), tensors(shape=mask_shape)))
    return ids, mask


@fuzz(250)
@given(batch=token_batches())
def test_fuzz_sequence_models(batch):
    ids, mask = batch
    for name in ("lm", "clf", "ae", "lstm_clf"):
        out = call(M[name], ids, mask)
        if isinstance(out, torch.Tensor):
            assert torch.isfinite(out).all(), f"{name}: non-finite outputs from finite inputs"
    call(M["lm"].encode, ids, mask)
    call(M["encdec"], ids, ids, mask, mask)
    call(M["encdec"], ids, ids[:1], mask, None)             # source and target batches of different sizes
    call(lstm.autoencoder_loss, M["ae"], (ids, mask))
    call(lstm.language_model_loss, M["ae"], (ids, mask))
    call(finetune.mean_features, M["lm"], ids, mask)


@fuzz(200)
@given(batch=token_batches(), p=maybe(st.floats(0, 1), [-0.1, 1.5, math.nan]),
       mean_span=maybe(st.floats(1, 4), [0.0, -1.0, math.nan]), seed=st.integers(0, 3))
def test_fuzz_objectives(batch, p, mean_span, seed):
    ids, mask = batch
    g = torch.Generator().manual_seed(seed)
    masked = call(mask_tokens, ids, TOK, p, generator=g)
    if isinstance(masked, tuple):
        inputs, labels = masked
        call(masked_lm_loss, M["lm"], inputs, labels, mask)
        call(mlm_loss, torch.zeros(*labels.shape, V), labels)
    call(clm_loss, torch.zeros(*ids.shape, V) if ids.dim() == 2 else torch.zeros(2, V), ids, mask)
    corrupted = call(span_corrupt, ids, mask, TOK, p, mean_span, generator=g)
    if isinstance(corrupted, dict):
        call(denoising_loss, M["encdec"], corrupted)


@fuzz(200)
@given(X=st.one_of(tensors(), tensors(shape=st.tuples(st.integers(0, 4), st.just(4))),
                   st.builds(lambda n, v: torch.full((n, 4), v), st.integers(0, 3), NUMBERS)),
       y=tensors(dtypes=[np.int64, np.int64, np.int32, np.float32, np.bool_], low=-1, high=4))
def test_fuzz_mlp_and_evaluation(X, y):
    out = call(M["mlp"], X)
    if isinstance(out, torch.Tensor):
        assert out.shape == (len(X), 3)
    call(ptm.predict, M["mlp"], X)
    call(ptm.accuracy, M["mlp"], X, y)
    call(ptm.classification_loss, M["mlp"], (X, y))
    call(data.check_labels, y, 3)
    call(confusion, y, y, 3)
    call(per_class_accuracy, y, y, 3)


@fuzz(150)
@given(X=tensors(shape=st.sampled_from([(6, 4)] * 4 + [(0, 4), (6, 3), (6,)]),
                 dtypes=[np.float32] * 3 + [np.float64, np.int64]),
       y=tensors(shape=(6,), dtypes=[np.int64] * 3 + [np.float32], low=-1, high=3),
       steps=maybe(st.integers(1, 3), [0, -1]), epochs=st.one_of(st.none(), st.integers(-1, 2)),
       lr=maybe(st.floats(1e-4, 1e-1), [0.0, -1e-3, math.nan, math.inf]),
       warmup=maybe(st.integers(0, 3), [-1]), batch_size=maybe(st.integers(1, 8), [0, -2]),
       grad_clip=st.one_of(st.none(), st.floats(-1, 2, allow_nan=False)))
def test_fuzz_training_loop(X, y, steps, epochs, lr, warmup, batch_size, grad_clip):
    loader = call(ptm.make_loader, X, y, batch_size, seed=0)
    if not isinstance(loader, torch.utils.data.DataLoader):
        return
    model = ptm.MLP(ptm.MLPConfig(in_dim=4, hidden=4, n_classes=3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr) if lr > 0 and math.isfinite(lr) else None
    scheduler = call(warmup_schedule, optimizer, warmup=warmup, total=steps) if optimizer else None
    if isinstance(scheduler, Exception):
        return
    call(fit, model, ptm.classification_loss, loader, steps=steps if epochs is None else None, epochs=epochs,
         lr=lr, optimizer=optimizer, scheduler=scheduler, grad_clip=grad_clip, device="cpu", progress=False,
         live=False)   # NaN/inf in the data: NonFiniteLossError (a ValueError) at the step that met it


@fuzz(150)
@given(X=tensors(), y=tensors(low=-1, high=4), n=st.integers(-1, 3), seed=st.integers(0, 2),
       budgets=st.lists(NUMBERS, max_size=4), accs=st.lists(NUMBERS, max_size=4), target=NUMBERS,
       n_classes=st.integers(-1, 4))
def test_fuzz_data_helpers(X, y, n, seed, budgets, accs, target, n_classes):
    call(ptm.per_class_subset, X, y, n, seed=seed)
    call(ptm.make_loader, X, y, 2)
    call(data.check_labels, y, n_classes)
    call(budget_indices, y.numpy(), n, seed)
    call(labels_needed, budgets, accs, target)
    call(confusion, y.numpy(), y.numpy(), n_classes)


@fuzz(150)
@given(X=st.one_of(tensors(), tensors(shape=st.sampled_from([(3, 16), (0, 16), (2, 64)]))),
       amount=NUMBERS, size=st.integers(-1, 4), seed=st.integers(0, 2))
def test_fuzz_shifts(X, amount, size, seed):
    for fn, args in [(shift.translate, (int(amount) if math.isfinite(amount) else 0, 1)), (shift.rotate, (amount,)),
                     (shift.gaussian_noise, (amount,)), (shift.blur, (size,)), (shift.invert, ()),
                     (shift.standard_shifts, ()), (shift.random_affine, (amount, amount, 0.1))]:
        out = call(fn, X, *args)
        if isinstance(out, torch.Tensor):
            assert out.shape == X.shape and out.dtype == X.dtype


@fuzz(120)
@given(strategy=maybe(st.sampled_from(finetune.STRATEGIES), ["", "Full", "finetune", "probe "]),
       per_class=st.integers(-1, 5), steps=maybe(st.integers(1, 2), [0, -1]),
       grid=maybe(st.just((1e-3,)), [(0.0,), (-1e-3,), (math.nan,), ()]), seed=st.integers(0, 1))
def test_fuzz_fine_tuning_strategies(strategy, per_class, steps, grid, seed):
    call(finetune.run_strategy, strategy, M["lm"], ENCODED, per_class, seed, grid=grid, steps=steps)


@fuzz(120)
@given(objective=maybe(st.sampled_from(["mlm", "clm", "denoise"]), ["bert", ""]),
       steps=maybe(st.integers(1, 2), [0, -3]), batch_size=maybe(st.integers(1, 6), [0, 7]),
       lr=maybe(st.floats(1e-4, 1e-2), [0.0, -1.0, math.nan]), warmup=maybe(st.integers(0, 2), [-1]),
       mask_p=maybe(st.floats(0.05, 0.5), [-0.2, 1.5]))
def test_fuzz_pretraining(objective, steps, batch_size, lr, warmup, mask_p):
    model = call(pretrain.build_model, objective if objective in ("mlm", "clm", "denoise") else "mlm", V, d_model=8,
                 n_layers=1, n_heads=2, max_len=8)
    call(pretrain.pretrain, model, IDS, MASK, TOK, objective=objective, steps=steps, batch_size=batch_size, lr=lr,
         warmup=warmup, mask_p=mask_p, device="cpu", progress=False, live=False)


@fuzz(150)
@given(vocab=st.integers(-1, 40), d_model=st.integers(-2, 16), n_heads=st.integers(-1, 4), layers=st.integers(-1, 2),
       max_len=st.integers(-1, 8), dropout=NUMBERS, pad_id=st.integers(-1, 3), hidden=st.integers(-1, 8),
       n_classes=st.integers(-1, 3))
def test_fuzz_model_configs(vocab, d_model, n_heads, layers, max_len, dropout, pad_id, hidden, n_classes):
    call(lambda: TransformerLM(TransformerConfig(vocab_size=vocab, d_model=d_model, n_heads=n_heads,
                                                 n_layers=layers, max_len=max_len, dropout=dropout, pad_id=pad_id)))
    call(lambda: TransformerClassifier(TransformerConfig(vocab_size=vocab, n_classes=n_classes)))
    call(lambda: lstm.LSTMClassifier(lstm.LSTMConfig(vocab_size=vocab, emb_dim=d_model, hidden_dim=hidden,
                                                     n_layers=layers, dropout=dropout, n_classes=n_classes)))
    call(lambda: ptm.MLP(ptm.MLPConfig(in_dim=d_model, hidden=hidden, depth=layers, n_classes=n_classes,
                                       dropout=dropout)))


@fuzz(150)
@given(pool=st.integers(-1, 3), n_val=st.integers(-1, 2), label_noise=NUMBERS, seed=st.integers(-1, 2),
       texts=st.lists(st.text(max_size=12), max_size=3), ids=st.lists(st.integers(-2, V + 1), max_size=4),
       max_len=st.integers(-1, 4), k=st.integers(-1, 30), step=st.integers(-2, 5), warmup=st.integers(-2, 5),
       total=st.one_of(st.none(), st.integers(-1, 6)), final=NUMBERS)
def test_fuzz_text_tasks_and_schedules(pool, n_val, label_noise, seed, texts, ids, max_len, k, step, warmup,
                                       total, final):
    call(make_topic_task, LANG, pool_per_class=pool, n_val_per_class=n_val, n_test_per_class=1,
         label_noise=label_noise, seed=seed)
    call(make_agent_task, LANG, pool_per_class=pool, n_val_per_class=1, n_test_per_class=1, label_noise=label_noise)
    call(TOK.encode_batch, texts, max_len=max_len)
    call(TOK.decode, ids)
    call(embedding_topic_purity, M["lm"].token_embeddings, TOK, LANG, k=k)
    call(lr_factor, step, warmup=warmup, total=total, final=final)
    call(seed_everything, seed)


@fuzz(120)
@given(n=st.integers(-2, 3), max_len=st.integers(-1, 9), n_classes=st.integers(-1, 3),
       pooling=maybe(st.sampled_from(["mean", "cls"]), ["max", ""]), seed=st.integers(0, 3),
       values=st.lists(NUMBERS, max_size=4), alpha=NUMBERS, n_topics=st.integers(-1, 13),
       words=st.integers(-1, 9), probability=NUMBERS)
def test_fuzz_corpus_transfer_and_helpers(n, max_len, n_classes, pooling, seed, values, alpha, n_topics, words,
                                          probability):
    call(LANG.corpus, n, seed=seed)
    call(pretrain.corpus_tensors, LANG, TOK, n, seed, max_len)
    call(finetune.encode_task, TASK, TOK, max_len)
    call(TransformerClassifier.from_lm, M["lm"], n_classes, pooling=pooling)
    call(lstm.LSTMClassifier.from_autoencoder, M["ae"], n_classes)
    call(finetune.random_encoder, M["lm"], seed)
    call(ptm.viz.ema, values, alpha)
    call(SyntheticLanguage, LanguageConfig(n_topics=n_topics, words_per_subtopic=words, mix_prob=probability,
                                           subtopics=1, shared_per_topic=4))


def test_the_fuzz_tries_over_a_thousand_cases():
    assert sum(FUZZ_EXAMPLES.values()) >= 1000, FUZZ_EXAMPLES


# ------------------------------------------------------------------------ chapters 6 and 8
from ptm_lib.bio import convlm as bio_convlm, dna as bio_dna                          # noqa: E402
from ptm_lib.speech import data as speech_data, wav2vec as speech_w2v                # noqa: E402
from ptm_lib.tabular import masked_features                                          # noqa: E402
from ptm_lib.text import qa, translation                                             # noqa: E402
from ptm_lib.trends import compute, search                                           # noqa: E402
from ptm_lib.vision import resnet, simclr                                            # noqa: E402

torch.manual_seed(0)
CONV = bio_convlm.ConvLM(bio_convlm.ConvLMConfig(vocab_size=V, d_model=4, n_layers=1, kernel=3))
CONV_CLF = bio_convlm.ConvLMClassifier.from_lm(CONV, 3)
SPAN = qa.SpanQA(CFG)
RESNET = resnet.ResNet(resnet.ResNetConfig(width=4, blocks=(1,), n_classes=3, proj_dim=4))
W2V = speech_w2v.Wav2Vec(speech_w2v.Wav2VecConfig(n_mels=8, d_model=8, n_layers=1, n_heads=2, max_frames=16,
                                                  n_groups=2, n_codes=4, proj_dim=4))


@fuzz(150)
@given(batch=token_batches(), context=st.one_of(st.none(), tensors(shape=st.sampled_from([(3, 5), (2, 4), (3,)]),
                                                                   dtypes=[np.bool_, np.bool_, np.int64])),
       max_answer_len=st.integers(-1, 5))
def test_fuzz_dna_and_qa_models(batch, context, max_answer_len):
    ids, mask = batch
    for model in (CONV, CONV_CLF):
        out = call(model, ids, mask)
        if isinstance(out, torch.Tensor):
            assert torch.isfinite(out).all()
    call(CONV_CLF.features, ids, mask)
    logits = call(SPAN, ids, mask, context)
    if isinstance(logits, torch.Tensor):
        call(qa.best_spans, logits, max_answer_len)
    call(qa.best_spans, ids.float().unsqueeze(-1) if ids.dim() == 2 else ids.float(), max_answer_len)


@fuzz(120)
@given(a=st.lists(st.text(alphabet="ab .,", max_size=6), max_size=3),
       b=st.lists(st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=5), max_size=3),
       c=st.lists(st.lists(st.sampled_from(["a", "b", "c"]), max_size=5), max_size=3),
       max_n=st.integers(-1, 5), k=st.integers(-1, 5), n=st.integers(-1, 4), seed=st.integers(0, 2))
def test_fuzz_text_scores_and_dna_data(a, b, c, max_n, k, n, seed):
    for x, y in zip(a, reversed(a)):
        for fn in (qa.exact_match, qa.token_f1):
            out = call(fn, x, y)
            if not isinstance(out, Exception):
                assert 0.0 <= out <= 1.0
    call(translation.corpus_bleu, b, c, max_n)
    call(translation.exact_match_rate, b, c)
    call(bio_dna.kmer_counts, ["".join(w) for w in c], k)
    call(bio_dna.promoter_corpus, n, seed)


@fuzz(150)
@given(X=st.one_of(tensors(), tensors(shape=st.sampled_from([(3, 64), (0, 64), (2, 8, 8), (2, 1, 8, 8), (3, 63)]))),
       strength=NUMBERS, temperature=NUMBERS, seed=st.integers(0, 2))
def test_fuzz_vision_contrastive(X, strength, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    out = call(simclr.augment, X, strength, generator=g)
    if isinstance(out, torch.Tensor):
        assert out.shape == X.shape
    call(RESNET, X)
    call(simclr.features, RESNET, X)
    z = torch.randn(4, 3)
    for z1, z2 in [(z, z), (z, z[:3]), (X, X), (z[:1], z[:1])]:
        call(simclr.nt_xent, z1, z2, temperature)


@fuzz(150)
@given(waves=st.one_of(tensors(shape=st.sampled_from([(2, 400), (0, 400), (400,), (2, 3)])),
                       st.lists(st.sampled_from([np.zeros(300, np.float32), np.ones(5, np.float32)]), max_size=2)),
       mel=tensors(shape=st.sampled_from([(2, 8, 16), (2, 8, 20), (2, 7, 16), (8, 16), (0, 8, 16)])),
       batch=st.integers(-1, 3), frames=st.integers(-1, 20), p_start=NUMBERS, span=st.integers(-1, 6),
       temperature=NUMBERS)
def test_fuzz_speech(waves, mel, batch, frames, p_start, span, temperature):
    call(speech_data.log_mel, waves)
    call(W2V, mel)
    call(speech_w2v.span_mask, batch, frames, p_start, span)
    call(speech_w2v.augment, mel)
    call(speech_w2v.info_nce, torch.randn(3, 4), torch.randn(3, 4), temperature)


@fuzz(120)
@given(X=st.one_of(tensors(shape=st.sampled_from([(12, 5), (0, 5), (12,), (3, 5)]), dtypes=[np.float32, np.float64]),
                   st.just(np.zeros((6, 3)))),
       code=st.integers(-1, 4), steps=maybe(st.integers(1, 2), [0, -1]), mask_p=NUMBERS)
def test_fuzz_tabular(X, code, steps, mask_p):
    X = X.numpy() if isinstance(X, torch.Tensor) else X
    out = call(masked_features.masked_feature_pretrain, X, code=code, hidden=4, steps=steps, mask_p=mask_p)
    if isinstance(out, torch.nn.Module):
        call(masked_features.encode, out, X)
        call(masked_features.encode, out, X[:, :2] if X.ndim == 2 else X)


@fuzz(150)
@given(x=st.lists(NUMBERS, max_size=5), loss=st.lists(NUMBERS, max_size=5), n_params=NUMBERS,
       world=st.integers(-1, 8), stage=st.integers(-1, 4), micro=st.integers(-1, 5),
       points=st.one_of(tensors(shape=st.sampled_from([(4, 2), (0, 2), (3,), (3, 3)])), st.lists(NUMBERS, max_size=3)))
def test_fuzz_compute_and_search(x, loss, n_params, world, stage, micro, points):
    call(compute.fit_power_law, x, loss)
    call(compute.training_memory_gb, n_params, world, stage)
    batch = (torch.randn(4, 4), torch.arange(4) % 3)
    call(compute.accumulated_gradients, M["mlp"], ptm.classification_loss, batch, micro)
    out = call(search.pareto_front, points.numpy() if isinstance(points, torch.Tensor) else points)
    if isinstance(out, np.ndarray) and len(out):
        assert out.max() < len(np.asarray(points))
