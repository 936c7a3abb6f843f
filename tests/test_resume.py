"""Interrupted training resumes exactly: `fit(checkpoint=..., checkpoint_every=N, resume=True)` ends
with the same weights, optimizer state and History, bit for bit on a CPU, as a run that was never
interrupted -- mid-epoch or at an epoch's end, with or without the loader's own generator, with
dropout, a warm-up schedule and pretraining's masking generator; also after a hard kill (SIGKILL)."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from torch.utils.data import DataLoader, TensorDataset

import ptm_lib as ptm
from ptm_lib.checkpoint import CheckpointMismatchError, load_state, save_state, state_path
from ptm_lib.text import pretrain as pt
from ptm_lib.train import fit, warmup_schedule

STEPS, EVERY = 30, 4
DIGITS = ptm.load_digits()


class Interrupt(KeyboardInterrupt):
    """What a learner's "stop" button raises."""


def digits_run(checkpoint=None, *, stop_at=None, resume=False, seed=3, own_generator=True, **kwargs):
    """An MLP with dropout on 150 digits (5 batches per epoch), AdamW + warm-up/cosine; `stop_at`
    interrupts it at that step. `seed` seeds everything: a resumed run gets another one on purpose."""
    ptm.seed_everything(seed)
    X, y = DIGITS.X_train[:150], DIGITS.y_train[:150]
    if own_generator:
        loader = ptm.make_loader(X, y, 32, seed=seed)
    else:                                   # shuffled from torch's global random state
        loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    model = ptm.MLP(ptm.MLPConfig(hidden=16, dropout=0.3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = warmup_schedule(optimizer, warmup=5, total=STEPS)
    calls = []

    def loss_fn(m, batch):
        calls.append(1)
        if len(calls) == stop_at:
            raise Interrupt
        return ptm.classification_loss(m, batch)

    history = fit(model, loss_fn, loader, steps=STEPS, optimizer=optimizer, scheduler=scheduler, device="cpu",
                  progress=False, live=False, eval_every=7, checkpoint=checkpoint, resume=resume,
                  eval_fn=lambda m: {"val_acc": ptm.accuracy(m, DIGITS.X_val, DIGITS.y_val)}, **kwargs)
    return model, optimizer, history, len(calls)


def assert_same_run(a, b):
    (model_a, opt_a, hist_a), (model_b, opt_b, hist_b) = a[:3], b[:3]
    assert hist_a.step == hist_b.step and hist_a.loss == hist_b.loss and hist_a.evals == hist_b.evals
    for name, tensor in model_a.state_dict().items():
        assert torch.equal(tensor, model_b.state_dict()[name]), name
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a["param_groups"] == state_b["param_groups"]
    for i, moments in state_a["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, state_b["state"][i][key]), (i, key)


@pytest.fixture(scope="module")
def uninterrupted():
    return {own: digits_run(own_generator=own) for own in (True, False)}


@pytest.mark.parametrize("stop_at, epoch, used", [(7, 1, 4), (15, 3, 2), (23, 4, 5)],
                         ids=["first-epoch", "mid-epoch", "at-epoch-end"])   # 5 batches per epoch
@pytest.mark.parametrize("own_generator", [True, False], ids=["loader-generator", "global-rng"])
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, uninterrupted, stop_at, epoch, used, own_generator):
    with pytest.raises(Interrupt):
        digits_run(tmp_path / "run", stop_at=stop_at, own_generator=own_generator, checkpoint_every=EVERY)
    saved = load_state(tmp_path / "run")
    assert saved["done"] == (stop_at - 1) // EVERY * EVERY       # the last checkpoint before the stop
    assert (saved["data"]["epoch"], saved["data"]["used"]) == (epoch, used)
    resumed = digits_run(tmp_path / "run", resume=True, seed=99, own_generator=own_generator, checkpoint_every=EVERY)
    assert resumed[3] == STEPS - saved["done"]                     # it did not start again
    assert_same_run(uninterrupted[own_generator], resumed)
    assert load_state(tmp_path / "run")["done"] == STEPS           # saved at the end too


def test_resuming_a_finished_run_trains_no_more(tmp_path, uninterrupted):
    digits_run(tmp_path / "run")                                   # no checkpoint_every: saved at the end only
    again = digits_run(tmp_path / "run", resume=True, seed=99)
    assert again[3] == 0
    assert_same_run(uninterrupted[True], again)


def test_resume_without_a_checkpoint_starts_afresh_and_refuses_another_run(tmp_path, uninterrupted):
    assert_same_run(uninterrupted[True], digits_run(tmp_path / "new", resume=True, checkpoint_every=EVERY))
    with pytest.raises(ValueError, match=r"saved by a run with \{'steps': 30.*this one has \{'steps': 31"):
        fit(ptm.MLP(ptm.MLPConfig(hidden=16)), ptm.classification_loss, [(DIGITS.X_train[:4], DIGITS.y_train[:4])],
            steps=31, eval_every=7, device="cpu", progress=False, checkpoint=tmp_path / "new", resume=True)
    model = ptm.MLP(ptm.MLPConfig(hidden=8))
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointMismatchError, match="does not fit this model or optimizer"):
        fit(model, ptm.classification_loss, [(DIGITS.X_train[:4], DIGITS.y_train[:4])], steps=STEPS, eval_every=7,
            optimizer=optimizer, scheduler=warmup_schedule(optimizer, warmup=5, total=STEPS), device="cpu",
            progress=False, checkpoint=tmp_path / "new", resume=True)
    with pytest.raises(ValueError, match="need a checkpoint path"):
        fit(model, ptm.classification_loss, [(DIGITS.X_train[:4], DIGITS.y_train[:4])], steps=2, resume=True)


@pytest.mark.parametrize("group_by_length", [False, True])
def test_pretraining_resumes_with_the_same_masks(tmp_path, lang, tok, group_by_length):
    """The masking generator lives inside the loss: `pretrain` hands it to `fit` to checkpoint; a
    length-grouped batch sampler's generator is checkpointed too."""
    ids, mask = pt.corpus_tensors(lang, tok, 96, seed=0, max_len=16)

    def run(stop_at=None, **kwargs):
        torch.manual_seed(0)
        model = pt.build_model("mlm", len(tok), d_model=16, n_layers=1, n_heads=2, max_len=16, dropout=0.1)
        loss_fn = pt.objective_loss  # wrapped to interrupt at `stop_at`
        calls = []

        def interrupting(objective, tokenizer, mask_p, generator):
            inner = loss_fn(objective, tokenizer, mask_p, generator)

            def counted(m, b):
                calls.append(1)
                if len(calls) == stop_at:
                    raise Interrupt
                return inner(m, b)
            return counted

        pt.objective_loss = interrupting
        try:
            history = pt.pretrain(model, ids, mask, tok, steps=12, batch_size=16, warmup=3, mask_p=0.3, seed=1,
                                  group_by_length=group_by_length, device="cpu", progress=False, live=False, **kwargs)
        finally:
            pt.objective_loss = loss_fn
        return model, history

    model_a, hist_a = run()
    with pytest.raises(Interrupt):
        run(stop_at=9, checkpoint=tmp_path / "mlm", checkpoint_every=4)
    model_b, hist_b = run(checkpoint=tmp_path / "mlm", checkpoint_every=4, resume=True)
    assert hist_a.loss == hist_b.loss and len(hist_b.loss) == 12
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))


KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import ptm_lib.train as train
from test_resume import digits_run
real_save = train.save_state
def save_then_maybe_die(state, path):
    real_save(state, path)
    if state["done"] == 12:
        os.kill(os.getpid(), signal.SIGKILL)      # a hard kill: no exception, no clean-up
train.save_state = save_then_maybe_die
digits_run({path!r}, checkpoint_every=4)
"""


def test_a_killed_process_resumes_to_the_same_result(tmp_path, uninterrupted):
    script = KILLED_RUN.format(tests=os.path.dirname(__file__), path=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_state(tmp_path / "run")["done"] == 12
    assert_same_run(uninterrupted[True], digits_run(tmp_path / "run", resume=True, seed=99, checkpoint_every=4))


def test_the_state_is_one_safetensors_file_with_a_json_header_and_nothing_pickled(tmp_path):
    state = {"step": 3, "lr": (1e-3, 0.5), "weights": torch.arange(4.0), "by_index": {0: torch.ones(2), 1: None},
             "nan": float("nan"), "nested": [{"a": "b"}]}
    path = save_state(state, tmp_path / "s")
    assert path == state_path(tmp_path / "s") == tmp_path / "s.safetensors" and os.listdir(tmp_path) == ["s.safetensors"]
    with safe_open(path, framework="pt") as f:
        header = json.loads(f.metadata()["state"])
        assert sorted(f.keys()) == ["state/by_index/0", "state/weights"]
    assert header["lr"] == {"$tuple": [1e-3, 0.5]} and header["weights"] == {"$tensor": "state/weights"}
    back = load_state(path)
    assert back["lr"] == (1e-3, 0.5) and back["by_index"][1] is None and torch.equal(back["by_index"][0], torch.ones(2))
    assert back["nan"] != back["nan"] and back["nested"] == [{"a": "b"}]
    with pytest.raises(TypeError, match=r"cannot save function at 'state/fn'.*never a pickled object"):
        save_state({"fn": lambda: 0}, tmp_path / "bad")
    assert not (tmp_path / "bad.safetensors").exists()
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_state(path)
    ptm.save_checkpoint(ptm.MLP(), tmp_path / "model")
    with pytest.raises(CheckpointMismatchError, match="is not a training state"):
        load_state(tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="no training state"):
        load_state(tmp_path / "nothing")
