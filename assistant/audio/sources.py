"""Audio sources: 16 kHz mono int16 blocks in a bounded queue.

    with Microphone(config.audio) as mic:        # or FileSource("clip.wav", fast=True)
        while not mic.finished:
            block = mic.read(timeout=0.1)
            if block is not None:
                segmenter.feed(block)

read() returns None when nothing came within the timeout *or* the stream has ended; `finished`
tells the two apart (True once the stream has ended and every block has been read).

The microphone's PortAudio callback only copies the block into a preallocated ring and returns:
when the consumer falls behind, the oldest block is dropped (and counted), because for a live
assistant fresh audio matters more than complete audio. Resampling, logging and everything
else happen in the consumer's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import numpy as np

from ..errors import CaptureError
from . import SAMPLE_RATE, float_to_int16, load_audio
from ..config import AudioConfig

log = logging.getLogger(__name__)

PORTAUDIO_HINT = "apt-get install libportaudio2"


class BlockQueue:
    """A bounded FIFO of int16 blocks in preallocated memory.

    put() never waits: when full it overwrites the oldest block and counts it in `dropped`.
    The lock is only ever held for one block copy (microseconds), so a real-time callback
    that takes it is not held up by the consumer. put_wait() is for producers that may wait.
    """

    def __init__(self, capacity: int, block_len: int) -> None:
        if capacity < 1 or block_len < 1:
            raise ValueError("a BlockQueue needs room for at least one block of one sample")
        self._slots = np.zeros((capacity, block_len), np.int16)
        self._lengths = np.zeros(capacity, np.int64)
        self._head = 0  # the oldest block
        self._size = 0
        self._closed = False
        self.dropped = 0
        self._cond = threading.Condition(threading.Lock())

    @property
    def capacity(self) -> int:
        return len(self._slots)

    @property
    def block_len(self) -> int:
        return self._slots.shape[1]

    def __len__(self) -> int:
        return self._size

    def put(self, block: np.ndarray) -> None:
        """Append a block (longer ones take several slots); never waits."""
        for start in range(0, len(block), self.block_len):
            part = block[start : start + self.block_len]
            with self._cond:
                if self._closed:
                    return
                if self._size == self.capacity:
                    self._head = (self._head + 1) % self.capacity
                    self._size -= 1
                    self.dropped += 1
                self._store(part)

    def put_wait(self, block: np.ndarray, stop: threading.Event) -> bool:
        """Append a block, waiting for room; False if the queue closed or `stop` was set."""
        for start in range(0, len(block), self.block_len):
            part = block[start : start + self.block_len]
            with self._cond:
                while self._size == self.capacity and not self._closed and not stop.is_set():
                    self._cond.wait(0.05)
                if self._closed or stop.is_set():
                    return False
                self._store(part)
        return True

    def get(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The oldest block (a copy), or None after `timeout` seconds or once closed and empty."""
        with self._cond:
            if not self._size and not self._closed:
                self._cond.wait_for(lambda: self._size or self._closed, timeout)
            if not self._size:
                return None
            slot = self._head
            block = self._slots[slot, : self._lengths[slot]].copy()
            self._head = (slot + 1) % self.capacity
            self._size -= 1
            self._cond.notify_all()
            return block

    def close(self) -> None:
        """End of stream: get() returns what is left, then None at once; put() is ignored."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def _store(self, part: np.ndarray) -> None:
        slot = (self._head + self._size) % self.capacity
        self._slots[slot, : len(part)] = part
        self._lengths[slot] = len(part)
        self._size += 1
        self._cond.notify_all()


class Source:
    """What the sources share: the queue, read(), finished, drop reporting, `with`."""

    def __init__(self, config: Optional[AudioConfig]) -> None:
        self.config = config or AudioConfig()
        self.block_ms = self.config.block_ms
        self._queue: Optional[BlockQueue] = None
        self._reported = 0  # drops already logged
        self._reported_at = 0.0

    @property
    def dropped(self) -> int:
        """Blocks lost because the consumer did not keep up."""
        return self._queue.dropped if self._queue is not None else 0

    @property
    def finished(self) -> bool:
        """True once the stream has ended and every block has been read."""
        return self._drained

    @property
    def _drained(self) -> bool:
        q = self._queue
        return q is not None and q.closed and len(q) == 0

    def read(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The next block of 16 kHz mono int16 audio, or None (timeout, or the end: see finished)."""
        if self._queue is None:
            raise RuntimeError("start() the source before reading it")
        block = self._queue.get(timeout)
        self._report_drops()
        return block

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _report_drops(self) -> None:
        # Here, in the consumer's thread, at most once a second: never in the audio callback.
        dropped = self.dropped
        now = time.monotonic()
        if dropped > self._reported and now - self._reported_at >= 1.0:
            log.warning("audio queue full: dropped %d blocks (%.1f s of audio) so far; the consumer is too slow",
                        dropped, dropped * self.block_ms / 1000)
            self._reported, self._reported_at = dropped, now


# --- the microphone --------------------------------------------------------------------------


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_samplerate: float
    is_default: bool

    def __str__(self) -> str:
        mark = "  (default)" if self.is_default else ""
        return (f"{self.index:3d}  {self.name}  [{self.hostapi}, {self.channels} ch, "
                f"{self.default_samplerate:g} Hz]{mark}")


def list_input_devices() -> List[InputDevice]:
    """The devices that can record, as `python -m assistant devices` shows them."""
    sd = _sounddevice()
    default = _default_input(sd)
    hostapis = sd.query_hostapis()
    return [
        InputDevice(i, d["name"], hostapis[d["hostapi"]]["name"], d["max_input_channels"],
                    d["default_samplerate"], i == default)
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


class Microphone(Source):
    """Live audio from an input device (audio.device: None, an index, or part of a name)."""

    def __init__(self, config: Optional[AudioConfig] = None, *, device_rate: Optional[int] = None) -> None:
        # device_rate: open the device at this rate and resample, instead of trying 16 kHz
        # first (for devices that misreport what they can do, and to test the resampler).
        super().__init__(config)
        self.device_rate = device_rate
        # Found now, so a wrong name fails at once (before a model loads), not at start().
        self.device = _find_device(self.config.device)
        self.samplerate = 0  # the rate the device was opened at
        self.overflows = 0  # PortAudio's own input overflows (the callback ran late)
        self._stream: Optional[Any] = None  # sounddevice.InputStream while open
        self._resampler = None
        self._flushed = False

    def start(self) -> None:
        if self._stream is not None:
            return
        if self._queue is not None:
            raise RuntimeError("a Microphone cannot be restarted; make a new one")
        sd = _sounddevice()
        self.samplerate = self.device_rate or _choose_rate(sd, self.device)
        block = round(self.samplerate * self.block_ms / 1000)
        self._queue = BlockQueue(self.config.queue_frames, block)
        if self.samplerate != SAMPLE_RATE:
            import soxr

            self._resampler = soxr.ResampleStream(self.samplerate, SAMPLE_RATE, 1, dtype="int16")
        try:
            self._stream = sd.InputStream(
                device=self.device.index, channels=1, dtype="int16", samplerate=self.samplerate,
                blocksize=block, callback=self._callback, finished_callback=self._queue.close,
            )
            self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            self.stop()
            raise CaptureError(f"cannot open input device {self.device.name!r} at {self.samplerate} Hz: "
                               f"{_one_line(e)}") from None
        log.info("recording from %s at %d Hz", self.device, self.samplerate)

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()  # an input has nothing to drain: abort is immediate, stop() is not
                stream.close()
            except Exception as e:  # noqa: BLE001 - a device that vanished cannot stop cleanly
                log.debug("closing the input stream: %s", e)
        if self._queue is not None:
            self._queue.close()

    @property
    def finished(self) -> bool:
        return self._drained and (self._resampler is None or self._flushed)

    def read(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        if self._resampler is None:
            return super().read(timeout)
        # The resampler holds back a few ms (its filter delay): loop until it gives something.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            block = super().read(remaining)
            if block is None:
                if self._drained and not self._flushed:
                    self._flushed = True
                    tail = self._resampler.resample_chunk(np.zeros(0, np.int16), last=True)
                    return tail if len(tail) else None
                return None
            out = self._resampler.resample_chunk(block)
            if len(out):
                return out

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # The real-time thread: copy, count, return. No logging, no allocation to speak of.
        if status.input_overflow:
            self.overflows += 1
        self._queue.put(indata[:, 0])  # type: ignore[union-attr]


def _sounddevice():
    try:
        import sounddevice
    except OSError as e:  # the module imports, but the PortAudio library is missing
        raise CaptureError(f"PortAudio is not available ({_one_line(e)}): {PORTAUDIO_HINT}") from None
    return sounddevice


def _default_input(sd) -> Optional[int]:
    index = sd.default.device[0]
    if index is None or index < 0:
        try:
            index = sd.query_devices(kind="input")["index"]
        except (sd.PortAudioError, ValueError):
            return None
    return int(index)


def _find_device(wanted: Union[str, int, None]) -> InputDevice:
    devices = list_input_devices()
    if not devices:
        raise CaptureError("no audio input device found (no microphone, or no sound server running)")
    if wanted is None:
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.strip().isdigit()):
        index = int(wanted)
        for d in devices:
            if d.index == index:
                return d
        raise CaptureError(f"audio device {index} is not an input device; inputs: {_names(devices)}")
    needle = wanted.strip().lower()
    exact = [d for d in devices if d.name.lower() == needle]
    matches = exact or [d for d in devices if needle in d.name.lower()]
    if not matches:
        raise CaptureError(f"no input device named {wanted!r}; inputs: {_names(devices)}")
    if len(matches) > 1:
        raise CaptureError(f"input device {wanted!r} is ambiguous: {_names(matches)}; "
                           "give more of the name or the index")
    return matches[0]


def _choose_rate(sd, device: InputDevice) -> int:
    try:
        sd.check_input_settings(device=device.index, channels=1, dtype="int16", samplerate=SAMPLE_RATE)
        return SAMPLE_RATE
    except Exception:  # noqa: BLE001 - PortAudioError or ValueError: the device cannot do 16 kHz
        return int(device.default_samplerate)


def _names(devices: List[InputDevice]) -> str:
    return ", ".join(f"{d.index} {d.name!r}" for d in devices)


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- a file played as if it were a microphone ------------------------------------------------


class FileSource(Source):
    """A sound file (any rate and channels) fed in blocks: in real time like a microphone
    (a consumer that falls behind loses the oldest blocks, as it would live), or with
    fast=True as fast as the consumer takes it (put waits; nothing is lost). Both give the
    same audio. At the end the queue closes: read() returns None and `finished` is True."""

    def __init__(self, path: Union[str, os.PathLike], config: Optional[AudioConfig] = None,
                 *, fast: bool = False) -> None:
        super().__init__(config)
        self.path = path
        self.fast = fast
        # Read now, in the caller's thread: a bad file is an AudioError naming it, before start().
        self.audio = float_to_int16(load_audio(path))
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def start(self) -> None:
        if self._thread is not None:
            return
        block = SAMPLE_RATE * self.block_ms // 1000
        self._queue = BlockQueue(self.config.queue_frames, block)
        self._thread = threading.Thread(target=self._play, args=(block,), name="file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._queue is not None:
            self._queue.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def _play(self, block: int) -> None:
        q = self._queue
        assert q is not None
        t0 = time.monotonic()
        try:
            for start in range(0, len(self.audio), block):
                chunk = self.audio[start : start + block]
                if self.fast:
                    if not q.put_wait(chunk, self._stop):
                        return
                    continue
                # A microphone delivers a block when its last sample has been "heard".
                due = t0 + (start + len(chunk)) / SAMPLE_RATE
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                q.put(chunk)
        finally:
            q.close()
