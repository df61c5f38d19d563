"""Sound out: the output device (Output) and one callback stream per sound (Player).

    output = Output(config.speaker.device)   # a SpeakerError now if there is no such device
    player = Player(output, 22050)
    player.feed(chunk); player.start()        # plays as soon as it has audio
    player.feed(more); player.end()           # completes once what was fed has played
    player.cut()                              # or: silence now, from any thread
    player.finished.wait(); player.close()

The speaker (assistant/pipeline/speaker.py) plays its replies through these, the wake word's
acknowledgement (assistant/wake/chime.py) its beep. Samples are float32 mono at the rate given;
a device that does not take that rate gets them resampled (soxr, streaming).

Why a PortAudio callback stream rather than a blocking write: cut() aborts the stream from the
calling thread, which drops what the device holds. Measured through PulseAudio null sinks: cut()
returns in ~1 ms and the recording is silent from then on. `started_at` is when the device began to
play (the first callback after the buffer was filled), not when audio was handed over. A
PulseAudio null sink that nobody records at low latency renders in 2 s blocks, so there a sound
starts up to 2 s late, and started_at says so.

All times are time.monotonic() seconds.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Deque, Optional, Union

import numpy as np

from ..errors import SpeakerError

BLOCK_MS = 20  # output callback period

Device = Union[str, int, None]


class Output:
    """The output device, checked once at start-up so a missing one is a SpeakerError."""

    def __init__(self, device: Device = None):
        try:
            import sounddevice as sd
        except OSError as e:  # the PortAudio library itself is missing
            raise SpeakerError(f"PortAudio not found ({e}): apt-get install libportaudio2") from None
        except ImportError:
            raise SpeakerError("sounddevice is not installed: pip install sounddevice") from None
        self.sd = sd
        self.device = device
        try:
            info = sd.query_devices(device, "output")
        except (ValueError, sd.PortAudioError) as e:
            which = "no default output device" if device is None else f"output device {device!r} not found"
            raise SpeakerError(f"{which} ({_one_line(e)}); set speaker.device, check PulseAudio/ALSA, "
                               "or set speaker.engine: none") from None
        self.default_rate = int(info["default_samplerate"])

    def rate_for(self, rate: int) -> int:
        """The sound's own rate when the device takes it, else the device's default (resampled)."""
        try:
            self.sd.check_output_settings(self.device, channels=1, dtype="float32", samplerate=rate)
            return rate
        except Exception:  # noqa: BLE001 - PortAudio says no in several ways
            return self.default_rate


class Player:
    """One callback output stream for one sound, fed with float32 chunks by one thread.

    The callback owns the read position; the feeding thread only appends chunks and sets flags,
    so the audio thread takes no lock. cut() aborts the stream from any thread: PortAudio allows
    Pa_AbortStream on a callback stream from outside the callback, and it drops what the device
    holds at once. A stop flag read by the callback alone is not enough: a PulseAudio null sink
    that nobody records calls back in bursts up to 2 s apart (measured 0.9 s from flag to
    silence callback, against 1 ms for abort())."""

    def __init__(self, output: Output, rate: int):
        sd = output.sd
        self._abort, self._complete = sd.CallbackAbort, sd.CallbackStop
        self._chunks: Deque[np.ndarray] = collections.deque()
        self._head = np.zeros(0, np.float32)
        self._pos = 0
        self._ended = False
        self._cut = False
        self._lock = threading.Lock()  # start/abort/close of the stream
        self._running = False
        self._closed = False
        self._fed = 0  # samples fed so far
        self._first_audio: Optional[float] = None  # the callback that first wrote audio
        self._last_call = 0.0
        self.was_cut = False
        self.started_at: Optional[float] = None
        self.started = threading.Event()
        self.finished = threading.Event()
        out_rate = output.rate_for(rate)
        self._block_s = BLOCK_MS / 1000.0
        self._resampler = None
        if out_rate != rate:
            import soxr

            self._resampler = soxr.ResampleStream(rate, out_rate, 1, dtype="float32")
        self._stream = sd.OutputStream(
            samplerate=out_rate, device=output.device, channels=1, dtype="float32",
            blocksize=out_rate * BLOCK_MS // 1000, callback=self._callback,
            finished_callback=self._finished,
        )

    def feed(self, audio: np.ndarray) -> None:
        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if self._resampler is not None:
            audio = self._resampler.resample_chunk(audio)
        if audio.size:
            self._chunks.append(audio)
            self._fed += audio.size

    @property
    def fed_s(self) -> float:
        """Seconds of audio fed so far."""
        return self._fed / self._stream.samplerate

    def start(self) -> None:
        with self._lock:
            if self._cut or self._closed:
                self.finished.set()
                return
            self._stream.start()
            self._running = True

    def end(self) -> None:
        """No more audio: the stream completes once what was fed has played."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if tail.size:
                self._chunks.append(tail)
        self._ended = True

    def cut(self) -> None:
        """Silence now (any thread)."""
        self._cut = True
        with self._lock:
            if self._running and not self._closed and self._stream.active:
                self.was_cut = True
                self._stream.abort()
        self.finished.set()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    if self._stream.active:
                        self._stream.abort()
                finally:
                    self._stream.close()
        self.finished.set()

    def _callback(self, outdata, frames, time_info, status) -> None:
        out = outdata[:, 0]
        if self._cut:
            out.fill(0)
            self.was_cut = True
            raise self._abort
        n = 0
        while n < frames:
            if self._pos >= self._head.size:
                if not self._chunks:
                    break
                self._head, self._pos = self._chunks.popleft(), 0
                continue
            k = min(frames - n, self._head.size - self._pos)
            out[n:n + k] = self._head[self._pos:self._pos + k]
            n += k
            self._pos += k
        out[n:] = 0  # an underrun (synthesis slower than playback) is a gap, not the end
        now = time.monotonic()
        if self.started_at is None:
            # The first callbacks only fill the device's buffer; the first one after a pause
            # means the device has played a block. That is when the audio started (an idle
            # PulseAudio null sink takes up to 2 s to begin).
            if self._first_audio is None:
                self._first_audio = now if n else None
            elif now - self._last_call > self._block_s / 2:
                self.started_at = max(self._first_audio, now - self._block_s)
                self.started.set()
        self._last_call = now
        if self._ended and not self._chunks and self._pos >= self._head.size:
            raise self._complete  # plays what was written, then finished_callback

    def _finished(self) -> None:
        if self.started_at is None and self._first_audio is not None and not self._cut:
            self.started_at = self._first_audio  # shorter than the device's buffer
            self.started.set()
        self.finished.set()


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
