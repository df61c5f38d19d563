"""Spoken replies: one thread owns the TTS engine and the output stream.

    speaker = Speaker(config.speaker)
    speaker.on_start(lambda u: print(f"reply audible after {u.latency_ms:.0f} ms"))
    speaker.say("It is 3 o'clock")      # queued; returns an Utterance at once
    speaker.muted()                     # True while speaking and tail_ms after (half-duplex)
    speaker.stop()                      # silence now, queue cleared
    speaker.close()                     # or use `with Speaker(...) as speaker:`

Engines (speaker.engine): see assistant/audio/tts.py; `none` prints the reply instead.

The speaker thread owns the engine and the output stream (assistant/audio/output.py): the engine
synthesises, the thread plays. stop() cuts the output from the calling thread (silent within
~1 ms); on_start fires when the device has begun to play the reply, not when the audio was
handed over: say() -> audio 10-30 ms with pyttsx3; with piper the first sentence is synthesised
first (~0.3-0.7 s on 2 cores) and the later ones while the earlier play.

All times are time.monotonic() seconds.
"""

from __future__ import annotations

import collections
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, TextIO

from ..audio.output import Output, Player
from ..audio.tts import Synthesizer, make_synthesizer
from ..config import SpeakerConfig
from ..errors import SpeakerError

log = logging.getLogger(__name__)

START_PLAYING_S = 5.0  # a device that has not begun playing by then is broken
START_TIMEOUT_S = 30.0  # engine start-up (a piper voice loads in about 1 s)


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
        self._queue: Deque[Utterance] = collections.deque()
        self._cond = threading.Condition()
        self._generation = 0  # stop() bumps it: utterances of older generations are cut
        self._current: Optional[Utterance] = None
        self._player: Optional[Player] = None
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
            if isinstance(error, SpeakerError):  # one line already (tts.make_synthesizer, Output)
                raise SpeakerError(str(error)) from None
            raise SpeakerError(f"the speaker failed to start: {type(error).__name__}") from error

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
            engine = make_synthesizer(self.config)
            output = Output(self.config.device) if engine.sample_rate else None
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

    def _play(self, engine: Synthesizer, output: Output, utterance: Utterance) -> None:
        chunks = (c for c in engine.synthesize(utterance.text) if len(c))  # "..." may yield no audio
        first = next(chunks, None)
        if first is None or self._stale(utterance):
            utterance.interrupted = self._stale(utterance)
            utterance.ended_at = time.monotonic()
            return
        player = Player(output, engine.sample_rate)
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
