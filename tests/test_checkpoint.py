import json

import pytest
import torch

import ptm_lib as ptm
from ptm_lib.checkpoint import CheckpointMismatchError, load_checkpoint, read_config, save_checkpoint


def test_roundtrip_and_rebuild_from_config(tmp_path):
    ptm.seed_everything(0)
    model = ptm.MLP(ptm.MLPConfig(hidden=16, depth=2))
    w, c = save_checkpoint(model, tmp_path / "mlp", meta={"steps": 3})
    assert w.name == "mlp.safetensors" and c.name == "mlp.json"
    record = json.loads(c.read_text())
    assert record["arch"] == "mlp" and record["config"]["hidden"] == 16 and record["meta"] == {"steps": 3}
    x = torch.randn(5, 64)
    rebuilt = load_checkpoint(tmp_path / "mlp")  # builds MLP(hidden=16, depth=2) from JSON
    assert torch.equal(rebuilt(x), model(x))
    same = load_checkpoint(tmp_path / "mlp.safetensors", ptm.MLP(ptm.MLPConfig(hidden=16, depth=2)))
    assert torch.equal(same(x), model(x))
    assert not list(tmp_path.glob("*.tmp"))


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
    with pytest.raises(ValueError, match="pinned hash"):
        load_checkpoint(tmp_path / "mlp", expected_sha256="0" * 64)
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="does not match its JSON config"):
        load_checkpoint(tmp_path / "mlp")


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="plus a .json file"):
        load_checkpoint(tmp_path / "nothing")
    (tmp_path / "x.json").write_text('{"format": "pickle"}')
    with pytest.raises(CheckpointMismatchError, match="not a ptm-course/1 checkpoint"):
        load_checkpoint(tmp_path / "x")
    with pytest.raises(TypeError, match="no `arch`/`config`"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "lin")


def test_never_unpickles(tmp_path):
    """A pickle disguised as weights (with a matching hash) is rejected and its code never runs."""
    import pickle

    import ptm_lib.checkpoint as ck

    class Payload:
        def __reduce__(self):
            return (exec, ("import builtins; builtins.PTM_PWNED = True",))

    w, c = save_checkpoint(ptm.MLP(), tmp_path / "mlp")
    w.write_bytes(pickle.dumps(Payload()))
    record = json.loads(c.read_text())
    record["weights_sha256"] = ck.sha256_file(w)
    c.write_text(json.dumps(record))
    with pytest.raises(Exception):
        load_checkpoint(tmp_path / "mlp")
    import builtins

    assert not hasattr(builtins, "PTM_PWNED")
