import ast
import json
import os
import pickle
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

import ptm_lib as ptm
import ptm_lib.checkpoint as ck
from ptm_lib.checkpoint import CheckpointMismatchError, load_checkpoint, read_config, save_checkpoint
from ptm_lib.nets import registry

ROOT = Path(ck.__file__).resolve().parents[1]


def _mlp(seed=0, **config):
    torch.manual_seed(seed)
    return ptm.MLP(ptm.MLPConfig(**config))


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def test_roundtrip_and_rebuild_from_config(tmp_path):
    model = _mlp(hidden=16, depth=2)
    w, c = save_checkpoint(model, tmp_path / "mlp", meta={"steps": 3})
    assert (w, c) == (tmp_path / "mlp.safetensors", tmp_path / "mlp.json")
    assert sorted(os.listdir(tmp_path)) == ["mlp.json", "mlp.safetensors"]  # no temporary file left
    record = json.loads(c.read_text())
    assert record["arch"] == "mlp" and record["config"]["hidden"] == 16 and record["meta"] == {"steps": 3}
    rebuilt = load_checkpoint(tmp_path / "mlp")  # builds MLP(hidden=16, depth=2) from JSON
    assert rebuilt.config == model.config and _same_weights(rebuilt, model)
    same = load_checkpoint(tmp_path / "mlp.safetensors", ptm.MLP(ptm.MLPConfig(hidden=16, depth=2)))
    assert _same_weights(same, model)
    assert _same_weights(load_checkpoint(tmp_path / "mlp.json"), model)


def test_dotted_names_do_not_collide(tmp_path):
    first, second = _mlp(seed=1), _mlp(seed=2)
    assert save_checkpoint(first, tmp_path / "run.1")[0] == tmp_path / "run.1.safetensors"
    save_checkpoint(second, tmp_path / "run.2")
    assert sorted(os.listdir(tmp_path)) == ["run.1.json", "run.1.safetensors", "run.2.json", "run.2.safetensors"]
    assert _same_weights(load_checkpoint(tmp_path / "run.1"), first)
    assert _same_weights(load_checkpoint(tmp_path / "run.2.safetensors"), second)


def test_map_location_moves_a_given_model_too(tmp_path):
    save_checkpoint(_mlp(), tmp_path / "mlp")
    loaded = load_checkpoint(tmp_path / "mlp", ptm.MLP(), map_location="meta")
    assert {p.device.type for p in loaded.parameters()} == {"meta"}
    assert {p.device.type for p in load_checkpoint(tmp_path / "mlp", map_location="meta").parameters()} == {"meta"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_map_location_cuda_and_back(tmp_path):
    model = _mlp()
    save_checkpoint(model, tmp_path / "mlp")
    on_gpu = load_checkpoint(tmp_path / "mlp", ptm.MLP(), map_location="cuda")
    assert {p.device.type for p in on_gpu.parameters()} == {"cuda"} and _same_weights(on_gpu, model)
    on_cpu = load_checkpoint(tmp_path / "mlp", ptm.MLP().cuda(), map_location="cpu")
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"} and _same_weights(on_cpu, model)


def test_other_architecture_refuses_to_load(tmp_path):
    save_checkpoint(ptm.MLP(), tmp_path / "mlp")

    class Other(torch.nn.Module):
        arch = "other"

    with pytest.raises(CheckpointMismatchError, match="holds a 'mlp' model, but you are loading it into a 'other'"):
        load_checkpoint(tmp_path / "mlp", Other())


def test_other_config_refuses_to_load(tmp_path):
    save_checkpoint(ptm.MLP(ptm.MLPConfig(hidden=32)), tmp_path / "mlp")
    with pytest.raises(CheckpointMismatchError, match="hidden: checkpoint=32 model=64"):
        load_checkpoint(tmp_path / "mlp", ptm.MLP(ptm.MLPConfig(hidden=64)))


def test_tampered_weights_and_pinned_hash(tmp_path):
    w, _ = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    digest = read_config(tmp_path / "mlp")["weights_sha256"]
    load_checkpoint(tmp_path / "mlp", expected_sha256=digest)
    with pytest.raises(ValueError, match="does not match the pinned hash"):
        load_checkpoint(tmp_path / "mlp", expected_sha256="0" * 64)
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match its JSON config.*truncated, corrupt or were replaced"):
        load_checkpoint(tmp_path / "mlp")


def test_hash_and_json_are_checked_before_any_model_is_built(tmp_path, monkeypatch):
    w, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    monkeypatch.setattr(ck, "build", lambda *a: pytest.fail("a model was built from an unchecked checkpoint"))
    with pytest.raises(ValueError, match="pinned hash"):
        load_checkpoint(tmp_path / "mlp", expected_sha256="0" * 64)
    record = json.loads(c.read_text())
    c.write_text(json.dumps({**record, "config": {**record["config"], "hidden": 10**9}, "weights_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="does not match its JSON config"):
        load_checkpoint(tmp_path / "mlp")
    c.write_text(json.dumps({**record, "config": {**record["config"], "colour": "red"}}))
    with pytest.raises(CheckpointMismatchError, match=r"unknown fields \['colour'\]"):
        load_checkpoint(tmp_path / "mlp")


def test_truncated_or_corrupt_weights(tmp_path):
    w, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match="does not match its JSON config.*truncated"):
        load_checkpoint(tmp_path / "mlp")
    record = json.loads(c.read_text())  # even with a matching hash, a truncated file is refused clearly
    c.write_text(json.dumps({**record, "weights_sha256": ck.sha256_file(w)}))
    with pytest.raises(ValueError, match="is not a readable safetensors file .*truncated or corrupt"):
        load_checkpoint(tmp_path / "mlp")
    w.unlink()
    with pytest.raises(FileNotFoundError, match=r"weights .*mlp.safetensors are missing \(its .json is there\)"):
        load_checkpoint(tmp_path / "mlp")


@dataclass
class TinyConfig:
    width: int  # required


class Tiny(torch.nn.Module):
    arch, config_class = "tiny-test", TinyConfig

    def __init__(self, config):
        super().__init__()
        self.config, self.lin = config, torch.nn.Linear(config.width, 1)


@pytest.mark.parametrize("edit, error, message", [
    (lambda r: {**r, "config": {}}, CheckpointMismatchError, r"missing required fields \['width'\]"),
    (lambda r: {**r, "config": {"width": 2, "depth": 3}}, CheckpointMismatchError, r"unknown fields \['depth'\]"),
    (lambda r: {**r, "arch": "nope"}, CheckpointMismatchError, "unknown architecture 'nope'"),
    (lambda r: {k: v for k, v in r.items() if k != "weights_sha256"}, ValueError, r"lacks the fields \['weights_sha256'\]"),
    (lambda r: {**r, "format": "pickle"}, CheckpointMismatchError, "not a ptm-course/1 checkpoint"),
])
def test_json_with_bad_fields_is_refused(tmp_path, monkeypatch, edit, error, message):
    monkeypatch.setitem(registry.ARCHITECTURES, Tiny.arch, Tiny)
    _, c = save_checkpoint(Tiny(TinyConfig(2)), tmp_path / "tiny")
    assert load_checkpoint(tmp_path / "tiny").config == TinyConfig(2)
    c.write_text(json.dumps(edit(json.loads(c.read_text()))))
    with pytest.raises(error, match=message):
        load_checkpoint(tmp_path / "tiny")


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="plus a .json file"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="x.json is not valid JSON"):
        load_checkpoint(tmp_path / "x")
    with pytest.raises(TypeError, match="no `arch`/`config`"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "lin")


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Writing straight to the destination would leave a half-written file here."""
    old = _mlp(seed=1)
    save_checkpoint(old, tmp_path / "mlp")

    def half_write_then_crash(model, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{")  # the start of a safetensors header
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_model", half_write_then_crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_mlp(seed=2), tmp_path / "mlp")
    assert sorted(os.listdir(tmp_path)) == ["mlp.json", "mlp.safetensors"]
    assert _same_weights(load_checkpoint(tmp_path / "mlp"), old)


def test_a_crash_before_the_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    old = _mlp(seed=1)
    save_checkpoint(old, tmp_path / "mlp")
    def power_cut(src, dst):
        raise OSError("power cut")

    with monkeypatch.context() as m, pytest.raises(OSError, match="power cut"):
        m.setattr(os, "replace", power_cut)
        save_checkpoint(_mlp(seed=2), tmp_path / "mlp")
    assert sorted(os.listdir(tmp_path)) == ["mlp.json", "mlp.safetensors"]
    assert _same_weights(load_checkpoint(tmp_path / "mlp"), old)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="maps file descriptors to paths via /proc")
def test_files_are_flushed_to_disk_then_renamed_in_their_folder(tmp_path, monkeypatch):
    events, fsync, replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(src), str(dst))), replace(src, dst)))
    w, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    renames = [e for e in events if e[0] == "replace"]
    assert [dst for _, _, dst in renames] == [str(w), str(c)]
    for _, src, dst in renames:
        assert os.path.dirname(src) == os.path.dirname(dst) and src != dst  # a temporary file beside it
        assert events.index(("fsync", src)) < events.index(("replace", src, dst))  # durable before visible


def test_read_only_folder_gives_a_clear_error(tmp_path, monkeypatch):
    def refuse(**kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ck.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match=r"cannot write the checkpoint .*mlp.safetensors: Permission denied "
                                              r"\(the folder is read-only for you\)"):
        save_checkpoint(ptm.MLP(), tmp_path / "mlp")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into read-only folders")
def test_really_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match="read-only for you"):
            save_checkpoint(ptm.MLP(), folder / "mlp")
    finally:
        folder.chmod(0o755)


# --- faults injected: malicious files, killed saves, edited JSON --------------------------------

class CreatesAFile:
    """A pickle payload: unpickling it calls open(path, "w"), creating the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path, writer):
    evidence = tmp_path / "pwned.txt"
    payload = CreatesAFile(evidence)
    w, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    if writer == "pickle":
        w.write_bytes(pickle.dumps(payload))
    else:
        torch.save({"net.0.weight": payload}, w)          # the zip format torch.load reads
    assert pickle.loads(pickle.dumps(payload)) and evidence.exists()   # the payload works ...
    evidence.unlink()
    record = json.loads(c.read_text())
    c.write_text(json.dumps({**record, "weights_sha256": ck.sha256_file(w)}))   # even with a matching hash
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        load_checkpoint(tmp_path / "mlp")
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        ck.load_state(w)                                   # training states are read the same way
    assert not evidence.exists()                           # ... but never ran


def test_nothing_in_ptm_lib_can_unpickle_a_file():
    """A static check of the library's source: no torch.load without weights_only=True, no pickle/
    joblib/dill loads, no np.load(allow_pickle=True)."""
    problems = []
    for path in sorted((ROOT / "ptm_lib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            kwargs = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if (name.endswith(("pickle.load", "pickle.loads", "joblib.load", "dill.load", "Unpickler"))
                    or (name.endswith("torch.load") and kwargs.get("weights_only") != "True")
                    or (name.endswith("np.load") and kwargs.get("allow_pickle") == "True")):
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not problems, problems


def _tiny_lm(vocab_size):
    torch.manual_seed(0)
    return ptm.nets.transformer.TransformerLM(ptm.nets.transformer.TransformerConfig(
        vocab_size=vocab_size, d_model=8, n_layers=1, n_heads=2, max_len=8))


def test_another_vocabulary_size_is_refused_clearly(tmp_path):
    save_checkpoint(_tiny_lm(40), tmp_path / "lm")
    with pytest.raises(CheckpointMismatchError, match="vocab_size: checkpoint=40 model=50"):
        load_checkpoint(tmp_path / "lm", _tiny_lm(50))
    assert load_checkpoint(tmp_path / "lm").config.vocab_size == 40


@pytest.mark.parametrize("edit, message", [
    ({"hidden": 10**9}, r"do not fit its JSON config \(net.0.bias: stored \(64,\), config implies \(1000000000,\)"),
    ({"depth": 0}, r"do not fit its JSON config \(.*net.3.bias: stored \(10,\), config implies no such tensor"),
    ({"depth": 3}, r"net.3.weight: stored \(10, 64\), config implies \(64, 64\)"),
    ({"n_classes": 10**6, "hidden": 10**6}, "do not fit its JSON config"),
    ({"hidden": "64"}, r"cannot be loaded by this version of ptm_lib: MLPConfig.hidden must be an integer >= 1, got '64'"),
    ({"depth": -10**12}, r"MLPConfig.depth must be an integer >= 0, got -1000000000000"),
])
def test_an_edited_config_is_refused_before_any_memory_is_allocated(tmp_path, monkeypatch, edit, message):
    """The JSON's hash covers the weights, not the config: an edited config still matches it.
    Its shapes are checked on the meta device, so a huge config never allocates."""
    _, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    record = json.loads(c.read_text())
    c.write_text(json.dumps({**record, "config": {**record["config"], **edit}}))
    devices, real_build = [], ck.build

    def spy(*args):
        devices.append(torch.get_default_device().type)
        return real_build(*args)

    monkeypatch.setattr(ck, "build", spy)
    with pytest.raises(CheckpointMismatchError, match=message or "do not fit its JSON config"):
        load_checkpoint(tmp_path / "mlp")
    assert set(devices) <= {"meta"}, "a model was built in real memory from an unchecked config"


def _die_in_a_child(action) -> None:
    """Run `action` in a forked child process that is expected to kill itself with SIGKILL."""
    pid = os.fork()
    if pid == 0:                         # the child: no clean-up of any kind runs after the kill
        try:
            action()
        finally:
            os._exit(3)                  # reached only if the kill did not happen
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the child was not killed ({status})"


def _kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def _half_written_weights(model, filename, metadata=None):
    save_model(model, filename, metadata=metadata)
    with open(filename, "r+b") as f:
        f.truncate(os.path.getsize(filename) // 2)
    _kill_self()


def _killed_at_fsync(n):
    calls, real = [], os.fsync

    def fsync(fd):
        calls.append(fd)
        if len(calls) == n:
            _kill_self()
        real(fd)
    return fsync


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("where", ["writing the weights", "flushing the weights", "flushing the JSON"])
def test_a_process_killed_in_the_middle_of_a_save_keeps_the_previous_checkpoint(tmp_path, where):
    old = _mlp(seed=1)
    save_checkpoint(old, tmp_path / "mlp")

    def save_and_die():
        if where == "writing the weights":
            ck.save_model = _half_written_weights
        else:
            os.fsync = _killed_at_fsync(1 if where == "flushing the weights" else 2)
        save_checkpoint(_mlp(seed=2), tmp_path / "mlp")

    _die_in_a_child(save_and_die)
    assert _same_weights(load_checkpoint(tmp_path / "mlp"), old)
    leftovers = sorted(set(os.listdir(tmp_path)) - {"mlp.json", "mlp.safetensors"})
    assert all(name.endswith(".tmp") for name in leftovers), leftovers   # only temporary files, never loaded


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_kill_between_the_two_renames_is_reported_never_loaded_silently(tmp_path):
    """The one window where weights and JSON disagree (two renames in a row): loading says so."""
    save_checkpoint(_mlp(seed=1), tmp_path / "mlp")
    real_replace = os.replace

    def save_and_die():
        def replace_then_die(src, dst):
            real_replace(src, dst)
            _kill_self()
        os.replace = replace_then_die
        save_checkpoint(_mlp(seed=2, hidden=32), tmp_path / "mlp")

    _die_in_a_child(save_and_die)
    with pytest.raises(ValueError, match="does not match its JSON config"):
        load_checkpoint(tmp_path / "mlp")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_process_killed_while_saving_a_training_state_keeps_the_previous_one(tmp_path):
    ck.save_state({"step": 1, "w": torch.ones(3)}, tmp_path / "run")

    def save_and_die():
        os.fsync = _killed_at_fsync(1)
        ck.save_state({"step": 2, "w": torch.zeros(3)}, tmp_path / "run")

    _die_in_a_child(save_and_die)
    state = ck.load_state(tmp_path / "run")
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
