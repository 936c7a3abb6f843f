"""benchmarks/: every code path in a tiny configuration (seconds). Structure and equal losses only;
speed is what the benchmark prints, never asserted here."""
import json

import pytest
import torch

pytest.importorskip("transformers")

from benchmarks import __main__ as bench_cli  # noqa: E402
from benchmarks import course_times, mlm, report  # noqa: E402

TINY = mlm.sizes(quick=True)["tiny"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results_dir = tmp_path_factory.mktemp("results")
    (results_dir / "03_pipeline.json").write_text(json.dumps({"mode": "smoke", "wall_s": 8.5}))
    results = bench_cli.run(out, threads=1, quick=True, results_dir=results_dir)
    return out, results


def test_a_quick_run_writes_json_and_a_markdown_table(quick_run):
    out, results = quick_run
    for name in ("machine", "course", "mlm", "inference", "results"):
        assert json.loads((out / f"{name}.json").read_text())
    machine = results["machine"]
    assert machine["threads"] == 1 and machine["peak_gflops"] > 0 and len(machine["loadavg"]) == 3
    assert machine["torch"] == torch.__version__
    text = (out / "README.md").read_text()
    assert "| model | step ms | tokens/s | CPU ms a step | GFLOP/step | MFU |" in text
    assert "GFLOP/s" in text and "Load average" in text and "| 03_pipeline | 8.5 | missing |" in text


def test_every_variant_is_timed_and_counted(quick_run):
    tiny = quick_run[1]["mlm"]["tiny"]
    assert set(tiny["variants"]) == set(mlm.VARIANTS)
    for row in tiny["variants"].values():
        assert row["step_ms"] > 0 and row["tokens_per_s"] > 0 and row["cpu_ms_per_step"] > 0 and row["gflop_per_step"] >= 0
    assert set(tiny["speedup_vs_bert"]) == {"equal_work", "default", "equal_work_cpu_time", "default_cpu_time"}


def test_ptm_lib_and_megatron_bert_compute_the_same_loss_before_and_after_a_step():
    check = mlm.equal_loss(TINY)
    assert check["equal"] and check["max_abs_diff"] < 1e-5
    assert check["before_step"]["ptm_lib"] != check["after_step"]["ptm_lib"]       # the step changed something


def test_the_equal_loss_check_can_fail(monkeypatch):
    real = mlm.to_transformers

    def off_by_a_little(model):
        hf = real(model)
        with torch.no_grad():
            hf.bert.encoder.layer[0].attention.self.value.weight[0, 0] += 0.5
        return hf
    monkeypatch.setattr(mlm, "to_transformers", off_by_a_little)
    assert not mlm.equal_loss(TINY)["equal"]


def test_the_head_at_masked_positions_does_less_work_and_the_formula_counts_about_right():
    size = {**TINY, "vocab_size": 500, "max_len": 16, "d_model": 32}
    batch = mlm.masked_batch(size)
    flops = {v: mlm.counted_flops(mlm.train_step(v, mlm.build(v, size), batch)) for v in ("ptm_lib", "ptm_lib_all")}
    assert flops["ptm_lib"] < 0.8 * flops["ptm_lib_all"]
    formula = mlm.ptm_model(size).flops_per_token(size["max_len"], training=True)
    per_token = flops["ptm_lib_all"] / (size["batch"] * size["max_len"])
    assert 0.8 < formula / per_token < 1.25


def test_inference_compares_fp32_and_int8_at_both_batch_sizes(quick_run):
    inference = quick_run[1]["inference"]
    for key in ("batch_1", "batch_32"):
        row = inference[key]
        assert row["fp32_ms"] > 0 and row["int8_ms"] > 0 and 0.9 <= row["top1_agreement"] <= 1.0
    assert inference["size_mb"]["int8"] < inference["size_mb"]["fp32"]


def test_course_times_read_each_mode_and_name_the_missing_runs(tmp_path):
    (tmp_path / "03_pipeline.json").write_text(json.dumps({"mode": "full", "wall_s": 120.0}))
    (tmp_path / "04_maths.json").write_text(json.dumps({"mode": "smoke", "wall_s": 4.0}))
    (tmp_path / "05_essay_code_fixed.json").write_text("{not json")
    times = course_times.course_wall_times(tmp_path)
    assert times["notebooks"]["03_pipeline"]["full"] == 120.0 and times["notebooks"]["03_pipeline"]["smoke"] is None
    assert times["notebooks"]["04_maths"]["smoke"] == 4.0
    assert "03_pipeline (smoke)" in times["missing"] and "05_essay_code_fixed (full)" in times["missing"]
    assert "04_maths (smoke)" not in times["missing"]
    assert times["total_s"] == {"smoke": 4.0, "full": 120.0}


def test_the_table_says_when_the_machine_was_busy():
    assert "under load" in report._load_note({"loadavg": [3.2, 2.0, 1.0], "threads": 2}, {"loadavg_end": [0.1, 0, 0]})
    assert "under load" in report._load_note({"loadavg": [0.1, 0, 0], "threads": 2}, {"loadavg_end": [3.5, 0, 0]})
    assert "quiet" in report._load_note({"loadavg": [0.1, 0, 0], "threads": 2}, {"loadavg_end": [2.2, 0, 0]})


def test_the_pretraining_profile_splits_a_step_into_its_parts():
    from benchmarks.profile_pretrain import profile_pretraining

    out = profile_pretraining(steps=2, profile_steps=2, n_sentences=512)
    assert out["ms_per_step"] > 0 and 0.0 < out["padding_share"] < 1.0
    assert abs(sum(out["parts"].values()) - 1.0) < 1e-9
    assert out["parts"]["matrix products (linear layers, LM head)"] > 0.1     # the linear layers do the work
