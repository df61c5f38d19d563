"""Reading audio files as 16 kHz mono float32, the one format whisper.cpp takes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..errors import AudioError

if TYPE_CHECKING:
    import numpy as np

# The one rate the pipeline works at: what webrtcvad and whisper take. config.py checks
# audio.sample_rate against it, which is why numpy is imported inside the functions below:
# reading (and rejecting) a configuration must not wait for numpy.
SAMPLE_RATE = 16000
MIN_SECONDS = 0.25  # shorter than this holds no word


def load_audio(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read WAV, FLAC or OGG at any rate and channel count as 16 kHz mono float32."""
    import soundfile

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: not a readable audio file ({_reason(e)})") from None
    audio = to_mono_16k(data, rate)
    if audio.size < MIN_SECONDS * SAMPLE_RATE:
        raise AudioError(
            f"{path}: too short ({audio.size / SAMPLE_RATE:.2f} s of audio; at least {MIN_SECONDS} s is needed)"
        )
    return audio


def to_mono_16k(data: np.ndarray, rate: int) -> np.ndarray:
    """Average channels, then resample with a band-limited (soxr) filter."""
    import numpy as np

    mono = data.mean(axis=1) if data.ndim == 2 else data
    return resample(np.ascontiguousarray(mono, dtype=np.float32), rate, SAMPLE_RATE)


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    import numpy as np

    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def int16_to_float(audio: np.ndarray) -> np.ndarray:
    import numpy as np

    return audio.astype(np.float32) / 32768.0


def float_to_int16(audio: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    # libsndfile prefixes its message with the path; the caller names the file already
    return text.split(": ", 1)[-1] if ": " in text else text
