"""Spectral subtraction of the background noise from one utterance, before whisper hears it.

The noise is what the utterance's first `lead_s` hold: the VAD's pre-roll, audio from before
the speech began (vad.preroll_ms is 300). Each 32 ms frame keeps the part of its power above
that noise spectrum, and never less than `floor` of its amplitude (a floor keeps the musical
noise of plain subtraction, which whisper hears as sounds, down to a murmur).

Measured on the intents benchmark's 135 spoken commands in real noise at 10 dB SNR (cafe,
dishes, exercise bike, traffic), held to the intents' grammar: with the grammar's beam search
(width 4) 114-116 right without, 118 with; with a greedy walk 102 without, 106-108 with (alpha
1-2, floor 0.1-0.5). Clean commands: unchanged with the search, 128 -> 130 greedy
(benchmarks/README-intents.md).
"""

from __future__ import annotations

import numpy as np

from . import SAMPLE_RATE

FRAME = 512  # 32 ms: the noise spectrum's resolution (31 Hz)
HOP = FRAME // 2
# sqrt-Hann analysis and synthesis windows at 50 % overlap add up to one: without a change to
# the spectrum the audio comes back as it was
_WINDOW = np.sqrt(np.hanning(FRAME + 1)[:FRAME]).astype(np.float32)


def subtract_noise(audio: np.ndarray, lead_s: float = 0.25, alpha: float = 1.0, floor: float = 0.3) -> np.ndarray:
    """audio (float32, 16 kHz) with the spectrum of its first lead_s subtracted alpha times from
    every frame's power; each bin keeps at least `floor` of its amplitude. Audio too short to
    hold both a noise lead and speech comes back unchanged."""
    audio = np.asarray(audio, dtype=np.float32)
    n_lead = int(lead_s * SAMPLE_RATE) // HOP
    if n_lead < 2 or audio.size < 2 * n_lead * HOP:
        return audio
    padded = np.concatenate([np.zeros(HOP, np.float32), audio, np.zeros(FRAME, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP] * _WINDOW
    spectrum = np.fft.rfft(frames, axis=1)
    power = np.abs(spectrum) ** 2
    noise = power[:n_lead].mean(axis=0)
    gain = np.sqrt(np.maximum(1.0 - alpha * noise / np.maximum(power, 1e-12), floor ** 2))
    out_frames = np.fft.irfft(spectrum * gain, n=FRAME, axis=1).astype(np.float32) * _WINDOW
    out = np.zeros(padded.size + FRAME, np.float32)
    for i, frame in enumerate(out_frames):  # overlap-add
        out[i * HOP:i * HOP + FRAME] += frame
    return out[HOP:HOP + audio.size]
