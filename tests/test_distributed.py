"""Data-parallel pretraining: torchrun with 2 CPU processes (gloo) against one process."""
import json
import os
import subprocess
import sys

import pytest
import torch

from ptm_lib.trends.distributed import ShardBatches, parameters_sha256, pretrain_data_parallel

STEPS = 12


def torchrun(out, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ptm_lib.trends.distributed", "--steps", str(STEPS), "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    return torchrun(tmp_path_factory.mktemp("ddp"))


def test_torchrun_replicas_hold_identical_weights(ddp_run):
    rank0, rank1 = ddp_run
    assert (rank0["rank"], rank1["rank"]) == (0, 1)
    assert rank0["world_size"] == rank1["world_size"] == 2 and rank0["distributed"]
    assert rank0["parameters_sha256"] == rank1["parameters_sha256"]
    assert rank0["losses"] == rank1["losses"]           # the all-reduced global loss
    assert rank0["losses"][-1] < rank0["losses"][0] - 0.3  # it learns


def test_torchrun_matches_one_process_with_the_same_global_batch(ddp_run):
    one = pretrain_data_parallel(steps=STEPS, emulate=2)
    assert not one["distributed"] and one["world_size"] == 2
    assert one["losses"] == pytest.approx(ddp_run[0]["losses"], abs=1e-5)
    assert one["parameters_sha256"] == ddp_run[0]["parameters_sha256"]
    # the check can fail: another split of the same global batch trains other weights
    other = pretrain_data_parallel(steps=STEPS, emulate=1)
    assert other["parameters_sha256"] != ddp_run[0]["parameters_sha256"]


def test_shards_partition_each_global_batch():
    data = torch.utils.data.TensorDataset(torch.arange(40))
    shards = [ShardBatches(data, world_size=2, rank=r, batch_per_rank=4, seed=3) for r in (0, 1)]
    seen = []
    for _ in range(5):                                   # one epoch: 5 global batches of 8
        a, b = (s.next()[0].tolist() for s in shards)
        assert not set(a) & set(b)
        seen += a + b
    assert sorted(seen) == list(range(40))
    next_epoch = [s.next()[0].tolist() for s in shards]
    assert next_epoch[0] + next_epoch[1] != seen[:8]       # set_epoch: a new shuffle


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="multiple of the 3 ranks"):
        pretrain_data_parallel(steps=1, global_batch=32, emulate=3)
    with pytest.raises(ValueError, match="cannot fill one batch"):
        ShardBatches(torch.utils.data.TensorDataset(torch.arange(6)), world_size=2, rank=0, batch_per_rank=4, seed=0)
    with pytest.raises(ValueError, match="steps"):
        pretrain_data_parallel(steps=0)


def test_fingerprint_sees_one_changed_weight():
    model = torch.nn.Linear(3, 2)
    before = parameters_sha256(model)
    with torch.no_grad():
        model.weight[0, 0] += 1e-7
    assert parameters_sha256(model) != before
