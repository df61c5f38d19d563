"""Levels and speech bounds of 16 kHz float clips, and building streams from them.

`speech_bounds` is the one definition of where speech starts and ends: every latency the
benchmarks report is measured from its end, and tests/test_vad.py and tests/test_wake.py check
the VAD and the wake detector against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import soundfile as sf

from assistant.audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100  # 10 ms
ABOVE_BACKGROUND_DB = 20.0  # speech: this far above the clip's background ...
DEEPEST_DB = 40.0  # ... but never deeper than this under its loudest frame ...
SHALLOWEST_DB = 20.0  # ... and always every frame within this of it
ACTIVE_DB = 30.0  # active speech (for SNR): frames within this of the loudest


def frame_db(x: np.ndarray) -> np.ndarray:
    """Level of each whole 10 ms frame in dBFS (float audio); digital silence is -100."""
    n = len(x) // FRAME
    frames = np.asarray(x[: n * FRAME], np.float64).reshape(n, FRAME)
    return 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)


def level(x: np.ndarray) -> np.ndarray:
    """frame_db smoothed over 30 ms, so one loud or quiet frame moves no bound."""
    return np.convolve(np.pad(frame_db(x), 1, mode="edge"), np.ones(3) / 3, mode="valid")


def speech_bounds(x: np.ndarray) -> Tuple[float, float]:
    """(start, end) of the speech in a clip, in seconds: the first and the last 10 ms frame
    (level()) that is more than 20 dB above the clip's background, its 10th-percentile frame,
    with that threshold kept between 40 and 20 dB under the loudest frame.

    Digital silence is the background of synthetic speech, so there everything within 40 dB
    of the peak is speech and weak final consonants count. In a recording, 20 dB over its own
    noise keeps breaths and noise bursts out; where the noise is less than 40 dB under the
    speech, the frames within 20 dB of the peak are speech whatever the noise."""
    db = level(x)
    if db.size == 0:
        raise ValueError("a clip shorter than 10 ms has no speech bounds")
    peak = float(db.max())
    background = float(np.percentile(db, 10))
    threshold = min(max(background + ABOVE_BACKGROUND_DB, peak - DEEPEST_DB), peak - SHALLOWEST_DB)
    speech = np.flatnonzero(db > threshold)
    return speech[0] * FRAME / SAMPLE_RATE, (speech[-1] + 1) * FRAME / SAMPLE_RATE


def active_power(x: np.ndarray) -> float:
    """Mean power of the 10 ms frames within 30 dB of the loudest: the speech's level for an SNR."""
    n = len(x) // FRAME
    power = (np.asarray(x[: n * FRAME], np.float64).reshape(n, FRAME) ** 2).mean(axis=1)
    return float(power[power >= power.max() * 10 ** (-ACTIVE_DB / 10)].mean())


def noise_gain(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> float:
    """The gain that puts noise (its mean power) snr_db under the speech's active power."""
    noise_power = float(np.mean(np.asarray(noise, np.float64) ** 2))
    return float(np.sqrt(active_power(speech) / (noise_power * 10 ** (snr_db / 10))))


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise (as long as it) at snr_db (noise_gain)."""
    return (speech + noise_gain(speech, noise, snr_db) * noise).astype(np.float32)


def add_floor(x: np.ndarray, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """x over a Gaussian noise floor at dbfs (a quiet microphone), clipped to [-1, 1]."""
    return np.clip(x + rng.normal(0, 10 ** (dbfs / 20), x.size), -1, 1).astype(np.float32)


def normalise(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    """x scaled to this peak (0.5 = -6 dBFS)."""
    return (x * (peak / max(1e-6, float(np.abs(x).max())))).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Clip:
    """Audio with the speech bounds inside it (seconds)."""

    audio: np.ndarray
    start: float
    end: float

    @property
    def speech_s(self) -> float:
        return self.end - self.start


def trim(x: np.ndarray, before_s: float, after_s: float, bounds: Optional[Tuple[float, float]] = None) -> Clip:
    """The clip from before_s before its speech to after_s after it, with the speech bounds
    measured on the whole of x (a trimmed clip has too little background to measure)."""
    start, end = speech_bounds(x) if bounds is None else bounds
    a = max(0, int((start - before_s) * SAMPLE_RATE))
    b = min(len(x), int((end + after_s) * SAMPLE_RATE))
    return Clip(np.array(x[a:b], np.float32), start - a / SAMPLE_RATE, end - a / SAMPLE_RATE)


def fade(x: np.ndarray, seconds: float = 0.01) -> np.ndarray:
    """x with linear fades in and out, so clips laid end to end do not click at the joins."""
    out = np.array(x, np.float32)
    n = min(int(seconds * SAMPLE_RATE), len(out) // 4)
    if n:
        out[:n] *= np.linspace(0, 1, n, dtype=np.float32)
        out[-n:] *= np.linspace(1, 0, n, dtype=np.float32)
    return out


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio as int16; a mixture that would clip is scaled down whole instead."""
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.99:
        x = x * (0.99 / peak)
    return np.round(np.asarray(x) * 32767).astype(np.int16)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    """16-bit PCM at 16 kHz; float audio is clipped to [-1, 1] (to_int16 first to scale instead)."""
    data = audio if audio.dtype == np.int16 else np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    sf.write(str(path), data, SAMPLE_RATE, subtype="PCM_16")
    return path
