"""The baseline the benchmarks compare whisper.cpp with: faster-whisper int8 at its fixed 30 s
window, beam 1, on the CTranslate2 tiny.en that whisper.cpp's ggml file was converted from."""

from __future__ import annotations

import time
from typing import Tuple

import numpy as np

from assistant.asr.models import ct2_folder


class FasterWhisper:
    def __init__(self, threads: int):
        import faster_whisper

        self.model = faster_whisper.WhisperModel(str(ct2_folder("tiny.en")), device="cpu",
                                                 compute_type="int8", cpu_threads=threads)

    def text(self, audio: np.ndarray, **options) -> str:
        """Float audio -> text (language en, beam 1; options go to WhisperModel.transcribe)."""
        segments, _ = self.model.transcribe(audio, language="en", beam_size=1, **options)
        return " ".join(s.text.strip() for s in segments)

    def timed(self, audio: np.ndarray) -> Tuple[float, str]:
        """(ms, text) of one decode without timestamps: what a RealtimeSTT-style assistant runs
        once the VAD has decided the utterance is over."""
        start = time.perf_counter()
        text = self.text(audio, without_timestamps=True)
        return (time.perf_counter() - start) * 1000, text
