"""whisper.cpp calls as the benchmarks make them."""

from __future__ import annotations

import numpy as np

from assistant.asr.engine import Engine, Transcript


def transcribe(engine: Engine, audio: np.ndarray, **options) -> Transcript:
    """Engine.transcribe_command, waiting for the engine (so never None)."""
    result = engine.transcribe_command(audio, **options)
    assert result is not None, "a blocking transcribe_command returned None"
    return result
