"""The transcription engine: one loaded whisper.cpp model, safe to share between threads.

Two ways in:
- `transcribe_command()` for short utterances: the encoder window (audio_ctx) is sized to
  the audio, greedy, one segment, no timestamps. This is the real-time path.
- `transcribe()` for any length: windows of about 30 s cut at the quietest point, each
  decoded with timestamps, segments shifted to global time.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import numpy as np

from .audio import SAMPLE_RATE

FRAMES_PER_SECOND = 50  # whisper's encoder: one frame per 20 ms of audio
FULL_AUDIO_CTX = 1500  # 30 s


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: List[Segment]
    audio_ctx: int  # encoder frames used (1500 = the full 30 s window)
    decode_ms: float
    duration: float  # seconds of audio


class Aborted(Exception):
    """An in-flight decode was aborted by its caller."""


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class Engine:
    """A whisper.cpp model. Every call passes every decode parameter that matters:
    pywhispercpp keeps parameters on the model, so one call's audio_ctx would leak into the next."""

    def __init__(
        self,
        model_path: os.PathLike,
        threads: int = 0,
        use_gpu: bool = True,
        language: str = "en",
        audio_ctx_floor: int = 128,
        audio_ctx_margin: int = 64,
        window_s: float = 30.0,
    ):
        from pywhispercpp.model import Model

        self.model_path = Path(model_path)
        self.threads = threads or default_threads()
        self.language = language
        self.audio_ctx_floor = audio_ctx_floor
        self.audio_ctx_margin = audio_ctx_margin
        self.window_s = min(window_s, 30.0)
        self._lock = threading.Lock()
        self._model = Model(
            str(self.model_path),
            redirect_whispercpp_logs_to=None,
            context_params={"use_gpu": use_gpu},
            n_threads=self.threads,
            print_progress=False,
            print_realtime=False,
            print_timestamps=False,
        )

    @classmethod
    def from_config(cls, asr, model_path: os.PathLike) -> "Engine":
        return cls(model_path, asr.threads, asr.use_gpu, asr.language,
                   asr.audio_ctx_floor, asr.audio_ctx_margin, asr.window_s)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def audio_ctx_for(self, n_samples: int) -> int:
        """Encoder frames for this much audio: its own length plus a margin, above a floor
        below which tiny models lose words (see the benchmark)."""
        frames = int(np.ceil(n_samples / SAMPLE_RATE * FRAMES_PER_SECOND)) + self.audio_ctx_margin
        return int(min(FULL_AUDIO_CTX, max(self.audio_ctx_floor, frames)))

    def transcribe_command(
        self,
        audio: np.ndarray,
        prompt: Optional[str] = None,
        abort: Optional[Callable[[], bool]] = None,
        blocking: bool = True,
        audio_ctx: Optional[int] = None,
    ) -> Optional[Transcript]:
        """Transcribe one short utterance (at most 30 s). With blocking=False, returns None at
        once when the engine is busy (partials must never delay a final)."""
        audio = _as_float(audio)[: int(30 * SAMPLE_RATE)]
        ctx = audio_ctx if audio_ctx is not None else self.audio_ctx_for(audio.size)
        if not self._lock.acquire(blocking=blocking):
            return None
        try:
            start = time.perf_counter()
            segments = self._decode(_pad(audio), ctx, timestamps=False, prompt=prompt, abort=abort)
            decode_ms = (time.perf_counter() - start) * 1000
        finally:
            self._lock.release()
        if abort is not None and abort():
            raise Aborted()
        text = " ".join(s.text for s in segments).strip()
        duration = audio.size / SAMPLE_RATE
        # without timestamps whisper.cpp's segment times are meaningless: the utterance is the segment
        segments = [Segment(0.0, duration, text)] if text else []
        return Transcript(text, segments, ctx, decode_ms, duration)

    def warm_up(self) -> None:
        """The first decode allocates whisper.cpp's buffers (about a second); do it before a user waits."""
        self.transcribe_command(np.zeros(SAMPLE_RATE, np.float32))

    def transcribe(
        self,
        audio: np.ndarray,
        prompt: Optional[str] = None,
        progress: Optional[Callable[[float, float], None]] = None,
        max_chars: int = 0,
    ) -> Transcript:
        """Transcribe audio of any length with timestamps. progress(done_s, total_s) after each window.
        max_chars > 0 asks whisper.cpp for segments of at most that many characters (subtitles)."""
        audio = _as_float(audio)
        total = audio.size / SAMPLE_RATE
        segments: List[Segment] = []
        start_time = time.perf_counter()
        for start, window in windows(audio, self.window_s):
            offset = start / SAMPLE_RATE
            length = window.size / SAMPLE_RATE
            with self._lock:
                found = self._decode(_pad(window), FULL_AUDIO_CTX, timestamps=True,
                                     prompt=prompt, max_chars=max_chars)
            for s in found:
                # whisper can put an end past the audio it was given; keep times inside it
                s_start = min(max(s.start, 0.0), length)
                s_end = min(max(s.end, s_start), length)
                segments.append(Segment(round(offset + s_start, 3), round(offset + s_end, 3), s.text))
            if progress is not None:
                progress(offset + length, total)
        decode_ms = (time.perf_counter() - start_time) * 1000
        text = " ".join(s.text for s in segments).strip()
        return Transcript(text, segments, FULL_AUDIO_CTX, decode_ms, total)

    def _decode(self, audio, audio_ctx, timestamps, prompt=None, abort=None, max_chars=0) -> List[Segment]:
        raw = self._model.transcribe(
            audio,
            abort_callback=abort,
            n_threads=self.threads,
            language=self.language,
            audio_ctx=0 if audio_ctx >= FULL_AUDIO_CTX else audio_ctx,
            no_timestamps=not timestamps,
            single_segment=not timestamps,
            no_context=True,
            initial_prompt=prompt or "",
            token_timestamps=max_chars > 0,
            max_len=max_chars,
            split_on_word=max_chars > 0,
            suppress_blank=True,
            suppress_nst=True,
            temperature=0.0,
            print_progress=False,
        )
        out = []
        for s in raw:
            text = s.text.strip()
            if text:
                out.append(Segment(s.t0 / 100.0, s.t1 / 100.0, text))
        return out


def windows(audio: np.ndarray, window_s: float = 30.0) -> Iterator[tuple]:
    """Split long audio into windows of at most window_s, cut at the quietest 100 ms in the
    window's last third so a cut rarely falls inside a word. Yields (start_sample, window)."""
    size = int(window_s * SAMPLE_RATE)
    step = SAMPLE_RATE // 10
    start = 0
    while start < audio.size:
        end = start + size
        if end >= audio.size:
            yield start, audio[start:]
            return
        search_from = start + (2 * size) // 3
        tail = audio[search_from:end]
        n = tail.size // step
        energy = np.square(tail[: n * step].reshape(n, step)).mean(axis=1)
        cut = search_from + int(np.argmin(energy)) * step + step // 2
        yield start, audio[start:cut]
        start = cut


def _as_float(audio: np.ndarray) -> np.ndarray:
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    return np.ascontiguousarray(audio, dtype=np.float32)


def _pad(audio: np.ndarray) -> np.ndarray:
    # whisper.cpp refuses input under 100 ms and is unreliable just above; pad to 1 s with silence
    if audio.size >= SAMPLE_RATE:
        return audio
    return np.concatenate([audio, np.zeros(SAMPLE_RATE - audio.size, np.float32)])
