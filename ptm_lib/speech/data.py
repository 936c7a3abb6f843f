"""Spoken data made on the spot: a keyword task with held-out voices, an unlabelled multilingual
corpus, and log-mel features.

* **Voices.** A voice is an English accent of eSpeak NG ("en-us", "en-gb-scotland", ...) with one of
  its voice variants ("m3", "f2", "klatt4", ...). `VOICES` splits the variants into disjoint sets:
  28 training voices, 7 validation voices and 13 **held-out test voices**, whose variants are never
  heard in training: not in the labelled pool, not in the unlabelled corpus.
* **Keyword task** (`keyword_task`): the ten English digit words "zero" .. "nine", each utterance
  with a random speaking rate and pitch, placed at a random time in a 1-second window, with a random
  gain and white noise at a random signal-to-noise ratio.
* **Unlabelled corpus** (`unlabelled_corpus`): short phrases in 10 languages, spoken by the
  training voice variants (no label, no digit word): made of random syllables read by each
  language's rules, plus everyday English words.
* **Features** (`log_mel`): a log-mel spectrogram computed with ``torch.stft``: 25 ms windows
  every 10 ms, 40 mel bands from 60 Hz to 8 kHz: (B, 40, 101) for 1-second clips.

Synthesis is deterministic given the seed: eSpeak NG keeps a little state from one call to the
next (its pitch "flutter" counter, which even ``espeak_Terminate`` does not reset), so a corpus is
always synthesised in a **fresh process** in a fixed order (`synthesize_many`), where that state
starts from zero; the random rate, pitch, gain, noise and timing come from a NumPy generator seeded
by the caller.
"""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch

from . import espeak
from .espeak import SAMPLE_RATE

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd"]
UNLABELLED_LANGUAGES = ["en", "de", "fr", "es", "it", "pl", "ru", "hi", "sw", "fi"]
ENGLISH_WORDS = ("hello yes no stop go left right up down on off open close water house table green "
                 "morning river window paper people music garden yellow happy quickly follow simple "
                 "number little because children thank please sorry maybe never always again").split()
CLIP_SECONDS = 1.0
N_TRAIN_VOICES, N_VAL_VOICES, N_TEST_VOICES = 28, 7, 13


def _variants() -> list[str]:
    """eSpeak NG's voice variants, fixed order (from the pinned data; names with spaces left out)."""
    from .espeak import list_variants

    return [v for v in list_variants() if " " not in v]


def voice_split(seed: int = 0) -> dict[str, list[str]]:
    """{"train", "val", "test", "unused"}: voice names "accent+variant". Each variant is in one split only;
    the accents go round-robin. The same for every run (seed 0 by default)."""
    variants = _variants()
    order = np.random.default_rng(seed).permutation(len(variants))
    names = [f"{ACCENTS[i % len(ACCENTS)]}+{variants[j]}" for i, j in enumerate(order)]
    a, b, c = N_TRAIN_VOICES, N_TRAIN_VOICES + N_VAL_VOICES, N_TRAIN_VOICES + N_VAL_VOICES + N_TEST_VOICES
    return {"train": names[:a], "val": names[a:b], "test": names[b:c], "unused": names[c:]}


# --- synthesis in a fresh process --------------------------------------------------------------

def synthesize_many(requests: list[tuple], fresh_process: bool = True) -> list[np.ndarray]:
    """Speak each (text, voice, rate, pitch, seed) -> float32 waveforms at 22,050 Hz.

    fresh_process: synthesise in a new Python process, where eSpeak NG starts from a clean state,
    so the same requests give the same samples wherever and whenever they are made."""
    if not requests:
        return []
    if not fresh_process:
        waves = espeak.synthesize_requests(requests)
    else:   # espeak.py imports only NumPy: run as a script, the new process starts in a fraction of a second
        proc = subprocess.run([sys.executable, espeak.__file__, "--serve"],
                              input=json.dumps([list(r) for r in requests]).encode(), capture_output=True,
                              timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"speech synthesis failed in its process:\n{proc.stderr.decode()[-2000:]}")
        data, pos, waves = proc.stdout, 0, []
        while pos < len(data):
            (n,) = struct.unpack_from("<q", data, pos)
            waves.append(np.frombuffer(data, np.int16, n, pos + 8))
            pos += 8 + 2 * n
        if len(waves) != len(requests):
            raise RuntimeError(f"speech synthesis returned {len(waves)} clips for {len(requests)} requests")
    return [w.astype(np.float32) / 32767 for w in waves]


def place(wave: np.ndarray, rng: np.random.Generator, seconds: float = CLIP_SECONDS, gain_db=(-12.0, 0.0),
          snr_db=(5.0, 30.0)) -> np.ndarray:
    """Put `wave` at a random time in a clip of `seconds` (cropping a random part if longer), scale it
    by a random gain and add white noise at a random signal-to-noise ratio (in dB, of the speech)."""
    n = int(round(seconds * SAMPLE_RATE))
    clip = np.zeros(n, np.float32)
    if len(wave) >= n:
        start = int(rng.integers(0, len(wave) - n + 1))
        clip[:] = wave[start:start + n]
    else:
        start = int(rng.integers(0, n - len(wave) + 1))
        clip[start:start + len(wave)] = wave
    clip *= 10 ** (rng.uniform(*gain_db) / 20)
    power = float(np.mean(wave ** 2) * 10 ** (rng.uniform(*gain_db) / 10)) if len(wave) else 1e-4
    noise_std = math.sqrt(max(power, 1e-8) / 10 ** (rng.uniform(*snr_db) / 10))
    return clip + rng.normal(0.0, noise_std, n).astype(np.float32)


def _prosody(rng: np.random.Generator) -> tuple[int, int]:
    """A random speaking rate (words per minute) and pitch (0..100)."""
    return int(rng.integers(120, 221)), int(rng.integers(20, 81))


# --- the labelled keyword task -----------------------------------------------------------------

@dataclass
class KeywordTask:
    """Spoken digit words, split by voice.

    waves[s]: float32 (N_s, 22050) clips of split s in {"train", "val", "test"}; labels[s]: int64 (N_s,)
    digit ids; voices[s]: the voice of each clip. Training clips come from the training voices only,
    validation and test clips from their own, disjoint voices.
    """

    waves: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    voices: dict[str, list[str]]
    classes: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def budget(self, per_class: int, seed: int) -> np.ndarray:
        """Indices of `per_class` training clips per word, nested: the first k of a seed's order are
        part of the first 2k. Raises ValueError if the pool has fewer."""
        y = self.labels["train"]
        rng = np.random.default_rng(seed)
        picks = []
        for c in range(self.n_classes):
            idx = np.flatnonzero(y == c)
            if per_class > len(idx):
                raise ValueError(f"budget {per_class} per word > the {len(idx)} training clips of {self.classes[c]!r}")
            picks.append(rng.permutation(idx)[:per_class])
        return np.sort(np.concatenate(picks))


def keyword_task(reps: dict[str, int] | None = None, seed: int = 0, words: list[str] | None = None,
                 fresh_process: bool = True) -> KeywordTask:
    """The keyword task: every word spoken `reps[split]` times by every voice of the split
    (default train 2, val 2, test 4: 560 / 140 / 520 clips), each time with its own rate, pitch,
    position, gain and noise drawn from `seed`."""
    reps = {"train": 2, "val": 2, "test": 4, **(reps or {})}
    words = words or DIGITS
    split = voice_split()
    rng = np.random.default_rng(seed)
    requests, meta = [], []
    for s in ("train", "val", "test"):
        for voice in split[s]:
            for c, word in enumerate(words):
                for _ in range(reps[s]):
                    requests.append((word, voice, *_prosody(rng), int(rng.integers(2**31))))
                    meta.append((s, c, voice))
    waves = synthesize_many(requests, fresh_process)
    out = {s: ([], [], []) for s in ("train", "val", "test")}
    for wave, (s, c, voice) in zip(waves, meta):
        out[s][0].append(place(wave, rng))
        out[s][1].append(c)
        out[s][2].append(voice)
    return KeywordTask(waves={s: np.stack(v[0]) for s, v in out.items()},
                       labels={s: np.array(v[1], dtype=np.int64) for s, v in out.items()},
                       voices={s: v[2] for s, v in out.items()}, classes=list(words))


# --- the unlabelled corpus ---------------------------------------------------------------------

def _phrase(language: str, rng: np.random.Generator) -> str:
    """1-3 words: made of random syllables (any language), or everyday English words (English)."""
    if language == "en" and rng.random() < 0.5:
        return " ".join(rng.choice(ENGLISH_WORDS, size=int(rng.integers(1, 4))))
    onsets, vowels = list("ptkbdgmnlrsfvzhjw") + ["sh", "ch", "st", "pr", "tr", "kl"], list("aeiou")
    words = ["".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(int(rng.integers(1, 4))))
             for _ in range(int(rng.integers(1, 4)))]
    return " ".join(words)


def unlabelled_corpus(n: int = 2500, seed: int = 0, languages: list[str] | None = None,
                      fresh_process: bool = True) -> tuple[np.ndarray, list[str]]:
    """`n` unlabelled 1-second clips: phrases in `languages` (default the 10 of UNLABELLED_LANGUAGES),
    spoken by the *training* voice variants only, with random rate, pitch, gain and noise.
    Returns (waves float32 (n, 22050), the text of each clip)."""
    languages = languages or UNLABELLED_LANGUAGES
    variants = [v.split("+")[1] for v in voice_split()["train"]]
    rng = np.random.default_rng(10_000 + seed)
    requests = []
    for i in range(n):
        language = languages[i % len(languages)]
        requests.append((_phrase(language, rng), f"{language}+{variants[int(rng.integers(len(variants)))]}",
                         *_prosody(rng), int(rng.integers(2**31))))
    waves = synthesize_many(requests, fresh_process)
    return np.stack([place(w, rng) for w in waves]), [r[0] for r in requests]


# --- features ------------------------------------------------------------------------------------

N_FFT, HOP, N_MELS, F_MIN, F_MAX = 512, 220, 40, 60.0, 8000.0


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """Triangular filters evenly spaced on the mel scale (HTK: mel = 2595 log10(1 + f/700)):
    (n_mels, n_fft // 2 + 1)."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))            # (n_mels + 2,)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)                 # (F,)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.maximum(0, np.minimum((freqs - lower) / (centre - lower), (upper - freqs) / (upper - centre)))
    return torch.tensor(fb, dtype=torch.float32)


_FB = None


def log_mel(waves, eps: float = 1e-6) -> torch.Tensor:
    """Waveforms (B, N) or (N,) -> log-mel spectrograms (B, 40, 1 + N // 220) float32.

    ``torch.stft`` with a 512-sample Hann window (23 ms) every 220 samples (10 ms), power spectrum,
    40 mel filters (60 Hz - 8 kHz), natural log of (energy + eps)."""
    global _FB
    try:
        x = torch.as_tensor(np.asarray(waves) if not isinstance(waves, torch.Tensor) else waves, dtype=torch.float32)
    except (ValueError, TypeError) as e:
        raise ValueError(f"waves must be one waveform (N,) or equal-length waveforms (B, N) of numbers: {e}") from None
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2 or x.shape[1] < N_FFT or len(x) == 0:
        raise ValueError(f"waves must be (B, N) or (N,) with N >= {N_FFT} samples, got {tuple(x.shape)}")
    if _FB is None:
        _FB = mel_filterbank()
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)   # (B, F, T)
    power = spec.real ** 2 + spec.imag ** 2
    return torch.log(_FB @ power + eps)                                     # (B, n_mels, T)


def mean_std_features(mels: torch.Tensor) -> np.ndarray:
    """The baseline's features: each band's mean and standard deviation over time, (B, 2 * n_mels)."""
    return torch.cat([mels.mean(-1), mels.std(-1)], dim=1).numpy()
