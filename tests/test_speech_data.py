"""Chapter 6c's data: eSpeak NG synthesis by ctypes, the voice split, the keyword task, log-mel."""
import numpy as np
import pytest
import torch

from ptm_lib.speech import data, espeak

pytestmark = pytest.mark.skipif(not espeak.available(), reason="eSpeak NG (espeakng-loader) not loadable here")


def test_same_requests_give_identical_samples_in_fresh_processes():
    requests = [("seven", "en-us+m3", 150, 40, 1), ("hallo welt", "de+f2", 180, 60, 2), ("seven", "en-us+m3", 150, 40, 1)]
    a, b = data.synthesize_many(requests), data.synthesize_many(requests)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.dtype == np.float32 and len(x) > 2000 and np.abs(x).max() <= 1 for x in a)


def test_synthesis_refuses_unknown_voices_and_bad_settings():
    with pytest.raises(ValueError, match="no voice"):
        espeak.synthesize("one", voice="xx-nonexistent")
    with pytest.raises(ValueError, match="rate"):
        espeak.synthesize("one", rate=10)
    with pytest.raises(ValueError, match="non-empty"):
        espeak.synthesize("  ")


def test_held_out_voices_are_disjoint_and_never_in_the_unlabelled_corpus():
    split = data.voice_split()
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (28, 7, 13)
    variants = {s: {v.split("+")[1] for v in split[s]} for s in ("train", "val", "test")}
    assert not variants["train"] & variants["test"] and not variants["train"] & variants["val"]
    assert not variants["val"] & variants["test"]
    assert data.voice_split() == split            # the same for every run


def test_keyword_task_shapes_labels_and_budgets():
    task = data.keyword_task(reps={"train": 1, "val": 1, "test": 1}, words=["yes", "no"], fresh_process=False)
    n = data.SAMPLE_RATE
    assert task.waves["train"].shape == (28 * 2, n) and task.waves["test"].shape == (13 * 2, n)
    assert set(task.voices["test"]).isdisjoint(task.voices["train"])
    assert sorted(set(task.labels["train"].tolist())) == [0, 1]
    idx = task.budget(1, seed=3)
    assert len(idx) == 2 and sorted(task.labels["train"][idx].tolist()) == [0, 1]
    assert set(task.budget(1, seed=3)) <= set(np.concatenate([task.budget(1, seed=3)]))
    with pytest.raises(ValueError, match="budget"):
        task.budget(100, seed=0)


def test_log_mel_shape_and_a_tone_lands_in_the_right_band():
    t = np.arange(data.SAMPLE_RATE) / data.SAMPLE_RATE
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    mel = data.log_mel(np.stack([tone, 0.5 * tone, np.zeros_like(tone)]))
    assert mel.shape == (3, 40, 101) and mel.dtype == torch.float32 and torch.isfinite(mel).all()
    fb = data.mel_filterbank()
    centre = int(fb.argmax(1)[mel[0].mean(1).argmax()])          # FFT bin at the loudest band's peak
    assert abs(centre * data.SAMPLE_RATE / data.N_FFT - 1000) < 120
    # half the amplitude = a quarter of the power = log(4) lower in every loud band
    assert torch.allclose((mel[0] - mel[1]).mean(1)[mel[0].mean(1) > 0], torch.tensor(np.log(4.0), dtype=torch.float32), atol=0.05)
    assert data.mean_std_features(mel).shape == (3, 80)
    with pytest.raises(ValueError, match="samples"):
        data.log_mel(np.zeros(100))
