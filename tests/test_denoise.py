"""Spectral subtraction of the pre-roll's noise (assistant/denoise.py), on real speech and noise."""

from __future__ import annotations

import numpy as np

from asr import DATA, SPEECH
from assistant.audio import SAMPLE_RATE, load_audio
from assistant.audio.denoise import subtract_noise


def db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)


def noisy(snr_db: float = 10.0):
    """A real sentence after 0.3 s of real cafe noise (the VAD's pre-roll), noise under it all."""
    speech = load_audio(SPEECH / "goforward.wav")
    lead = int(0.3 * SAMPLE_RATE)
    clean = np.concatenate([np.zeros(lead, np.float32), speech])
    noise = np.resize(load_audio(DATA / "noise" / "cafe.flac"), clean.size)
    gain = np.sqrt(np.mean(speech ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return clean, (gain * noise).astype(np.float32), lead


def test_nothing_subtracted_gives_the_audio_back():
    clean, noise, _ = noisy()
    x = clean + noise
    y = subtract_noise(x, alpha=0.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 1e-4


def test_the_noise_falls_and_the_speech_stays():
    """Measured on this clip: the noise alone 3.9 dB down, what is left of it under the speech
    1.3 dB down, the speech's level within 0.1 dB (cafe babble: the hardest of the four noises)."""
    clean, noise, lead = noisy()
    y = subtract_noise(clean + noise)
    assert db(y[:lead]) < db(noise[:lead]) - 3.0
    assert db(y[lead:] - clean[lead:]) < db(noise[lead:]) - 1.0
    voiced = np.abs(clean) > 0.05
    assert abs(db(y[voiced]) - db(clean[voiced])) < 1.0


def test_audio_too_short_for_a_noise_lead_is_left_alone():
    x = np.random.default_rng(0).normal(0, 0.1, 3000).astype(np.float32)
    assert np.array_equal(subtract_noise(x), x)
