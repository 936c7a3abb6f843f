"""A speech synthesiser in a few lines of ctypes: eSpeak NG, as shipped by the PyPI package
``espeakng-loader`` (the shared library plus its data: about 100 languages and 100 voice variants).

    wave = synthesize("seven", voice="en+f3", rate=160, pitch=60)   # float32 (N,), 22,050 Hz, in [-1, 1]

How it works (the C API of ``speak_lib.h``):

1. ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)``: no sound card; ``espeak_Synth``
   returns only when the text is spoken, handing the samples to a callback as it goes;
2. ``espeak_SetSynthCallback(cb)``: ``cb(short *wav, int n, espeak_EVENT *events)`` receives the
   16-bit samples in chunks; we append them to a Python list;
3. ``espeak_SetVoiceByName("en+f3")``: language ``en``, voice variant ``f3``;
4. ``espeak_SetParameter(espeakRATE, words_per_minute, 0)`` and ``(espeakPITCH, 0..100, 0)``;
5. ``espeak_Synth(text, ...)``.

eSpeak NG is a formant synthesiser: it computes speech from rules. We seed its random generator
(``espeak_ng_SetRandSeed``) before every call, but the library also keeps internal state from one
call to the next (a static position in its pitch-flutter table, for instance) that neither the seed
nor ``espeak_Terminate`` resets: within one process the same request spoken twice differs a little.
For repeatable data, `ptm_lib.speech.data.synthesize_many` speaks a whole corpus in a fresh
process (``python espeak.py --serve``), in a fixed order: the same requests give the same samples
(a test checks this). It is fast: a spoken word takes about a millisecond. The library is one
process-wide state, so calls are serialised with a lock.
"""
from __future__ import annotations

import ctypes
import functools
import threading

import numpy as np

SAMPLE_RATE = 22_050       # eSpeak NG's output rate (checked against espeak_Initialize's answer)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4
_POS_CHARACTER, _CHARS_UTF8 = 1, 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()


class EspeakUnavailable(RuntimeError):
    """The eSpeak NG library or its data could not be loaded."""


class _Engine:
    """The loaded library, initialised once per process."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError:
            raise EspeakUnavailable(
                "the speech chapter needs the PyPI package `espeakng-loader` (eSpeak NG as a shared library "
                "plus its data); install the course's pins: `pip install -c constraints.txt -e .` "
                "(or `make lab`)") from None
        lib_path = espeakng_loader.get_library_path()
        try:
            data_path = espeakng_loader.get_data_path()
            self.lib = ctypes.CDLL(lib_path)
        except (OSError, RuntimeError) as e:
            raise EspeakUnavailable(f"cannot load eSpeak NG from {lib_path}: {e}. espeakng-loader ships wheels "
                                    "for Linux x86-64, macOS arm64 and Windows; on another platform install "
                                    "eSpeak NG yourself.") from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        self.set_seed = getattr(lib, "espeak_ng_SetRandSeed", None)   # espeak-ng >= 1.51
        if self.set_seed is not None:
            self.set_seed.argtypes, self.set_seed.restype = [ctypes.c_long], None
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate != SAMPLE_RATE:
            raise EspeakUnavailable(f"espeak_Initialize failed or gave {rate} Hz (expected {SAMPLE_RATE}); "
                                    f"data folder {data_path}")
        self.chunks: list[np.ndarray] = []

        def collect(wav, n, events):
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0   # 0 = continue synthesising

        self.callback = _CALLBACK(collect)   # keep a reference: ctypes must not free it
        lib.espeak_SetSynthCallback(self.callback)

    def speak(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, seed: int) -> np.ndarray:
        lib = self.lib
        if self.set_seed is not None:
            self.set_seed(seed)   # the synthesiser's only randomness (C rand(): pitch jitter, noise)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r}; use a language code such as 'en', 'de', 'fr', "
                             f"optionally with a variant: 'en+m3', 'de+f2' (see list_variants())")
        for param, value in ((_ESPEAK_RATE, rate), (_ESPEAK_PITCH, pitch), (_ESPEAK_RANGE, pitch_range),
                             (_ESPEAK_VOLUME, 100)):
            lib.espeak_SetParameter(param, int(value), 0)
        data = text.encode("utf-8") + b"\0"
        self.chunks = []
        err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return samples.astype(np.float32) / 32768.0


@functools.lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def available() -> bool:
    """True when eSpeak NG can be loaded on this machine."""
    try:
        _engine()
        return True
    except EspeakUnavailable:
        return False


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50, pitch_range: int = 50,
               trim: bool = True, seed: int = 0) -> np.ndarray:
    """Speak `text` -> float32 waveform (N,) at 22,050 Hz in [-1, 1].

    voice: "<language>[+<variant>]", e.g. "en", "en+f3", "de+m2" (eSpeak NG voice names).
    rate: words per minute (80..450); pitch, pitch_range: 0..100 (50 is the voice's default).
    trim: cut the leading and trailing silence (samples below 1 % of the peak).
    seed: seeds the synthesiser's own random numbers (C rand()): same arguments -> same samples.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be 80..450 words per minute, got {rate}")
    if not (0 <= pitch <= 100 and 0 <= pitch_range <= 100):
        raise ValueError(f"pitch and pitch_range must be in 0..100, got {pitch}, {pitch_range}")
    with _LOCK:
        wave = _engine().speak(text, voice, rate, pitch, pitch_range, int(seed))
    if trim and len(wave):
        loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())
        if len(loud):
            wave = wave[max(loud[0] - 110, 0): loud[-1] + 110]
    return wave


def list_variants() -> list[str]:
    """The voice variants shipped with the data ('m1', 'f3', 'klatt', ...), sorted."""
    import espeakng_loader
    from pathlib import Path

    return sorted(p.name for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir() if p.is_file())


def synthesize_requests(requests) -> list[np.ndarray]:
    """Speak each (text, voice, rate, pitch, seed) in order -> int16 waveforms."""
    return [(synthesize(text, voice, rate=rate, pitch=pitch, seed=seed) * 32767).astype(np.int16)
            for text, voice, rate, pitch, seed in requests]


def _serve() -> None:
    """`python espeak.py --serve`: JSON requests on stdin -> length-prefixed int16 clips on stdout
    (what `ptm_lib.speech.data.synthesize_many` runs in a fresh process)."""
    import json
    import struct
    import sys

    out = sys.stdout.buffer
    for wave in synthesize_requests(json.load(sys.stdin)):
        out.write(struct.pack("<q", len(wave)) + wave.tobytes())
    out.flush()


if __name__ == "__main__" and "--serve" in __import__("sys").argv:
    _serve()
