"""Hotword mode: the wake word (or Enter) opens the microphone for one command.

  waiting --wake word / Enter--> listening --speech ends--> transcribing --reply queued--> speaking
    ^  ^                           |                          | no reply                     | played
    |  '---- nobody spoke within --'                          v                              v
    |        listen_timeout_s                      follow_up, if follow_up_s > 0 <-----------'
    |                                                | speech starts: listening, no wake word needed
    '------------ nobody spoke within follow_up_s, or follow_up_s = 0 ----------------------'

- waiting: each microphone block goes to the wake detector only: no VAD, no whisper. The whole
  pipeline then costs 1.8 % of one core, against 108 % always listening to the same 5 minutes of
  speech in noise (benchmarks/results/wake.json, pipeline). The last RING_S seconds are kept, so
  a command said in the same breath starts where the wake word ended (Wake.end), not where it
  was detected. For the words in wake.verify a detection is a candidate: whisper transcribes
  the 1.5 s before it (the decoder thread, while the listener waits) and only a text with the
  word wakes (assistant/wake.py, SPELLINGS); not over a reply, where the echo drowns the word.
- listening: the Segmenter starts afresh on the audio from Wake.end (Enter: from the press),
  primed with the quietest stretch heard before it, so its background level is the room's and
  not the command's first syllable. An utterance that ends within RESIDUE_S of the detection is
  the wake word's own tail, not the command. Nobody speaking within listen_timeout_s -> waiting.
- transcribing: the utterance ended (one command per wake); whisper, the intent and its handler
  run. The VAD is off again; a wake word now is ignored (the command runs its course).
- speaking: the reply plays. The detector still hears the microphone (the VAD does not: half-
  duplex), so the wake word interrupts the reply (barge-in) and the assistant listens. There is
  no echo cancellation: a microphone that hears the assistant's own voice as loud as the person
  hides the wake word (benchmarks/results/wake.json, barge_in_margin: with real speakers the
  word must be about 12 dB above the echo to be heard 5 times in 6). A system echo canceller
  (PulseAudio's module-echo-cancel, PipeWire's echo-cancel) in front of the microphone should help
  (not tried here).
- follow_up: after the reply, follow_up_s in which a command needs no wake word.

Everything here runs in the listener thread except handled() (responder or main thread) and
press() (the push-to-talk thread), which only set flags that hear() reads on the next block.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import selectors
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..pipeline import events as ev
from ..config import WakeConfig
from .detector import VERIFY_WINDOW_S, WAKE_PHRASE_WORDS, heard_wake_word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
WAITING, LISTENING, TRANSCRIBING, SPEAKING, FOLLOW_UP = "waiting", "listening", "transcribing", "speaking", "follow_up"
STATES = (WAITING, LISTENING, TRANSCRIBING, SPEAKING, FOLLOW_UP)

RING_S = 4.0  # audio kept while waiting: the longest wake word + detection lag + room to find background
PRIME_FRAMES = 5  # VAD frames of background that prime a fresh Segmenter (150 ms at 30 ms frames)
# After a barge-in the speaker is cut at once, but what it played last is still on its way back
# to the microphone (device and room latency): the VAD hears the microphone again this much later,
# instead of after the speaker's whole mute tail, so a command said right after the wake word is kept.
BARGE_IN_ECHO_S = 0.1
# An utterance whose speech ends less than this after the detection is the wake word's own tail
# (a breath, the last syllable: the detector can fire before the word has quite ended), not a
# command. Measured through the pipeline: the one such tail among the 10 real "alexa" speakers
# ended 0.13 s after the detection; "okay nabu stop" in one breath (espeak-ng, 4 voices) ends
# 0.18-0.24 s after it. A thin margin: a quicker one-word command would be taken for a tail.
RESIDUE_S = 0.15
POLL_S = 0.1  # push-to-talk: how often the stdin reader checks for stop()
CHECK_TIMEOUT_S = 5.0  # the longest the listener waits for whisper's second opinion


def strip_wake_word(text: str, word: Optional[str]) -> str:
    """The command without a leading wake phrase: "Okay, Nabu, what time is it?" -> "what time is it?"."""
    words = WAKE_PHRASE_WORDS.get(word or "")
    if not words:
        return text
    pos = 0
    for m in re.finditer(r"[A-Za-z']+", text):
        if m.group().lower() not in words:
            return text[m.start():] if pos else text
        pos = m.end()
    return "" if pos else text


# --- the state machine ------------------------------------------------------------------------


@dataclass
class ForVad:
    """What the listener gives the Segmenter for one microphone block."""

    audio: np.ndarray
    restart: bool = False  # a new command: reset the Segmenter first ...
    prime: Optional[np.ndarray] = None  # ... feed it this background (its reports ignored) ...
    start: float = 0.0  # ... and audio[0] is this many stream seconds in


class Ring:
    """The last `seconds` of the stream, addressed by stream sample index."""

    def __init__(self, seconds: float):
        self._buf = np.zeros(int(seconds * SAMPLE_RATE), np.int16)
        self.n = 0  # samples written since the stream began

    def push(self, block: np.ndarray) -> None:
        size = len(self._buf)
        block = block[-size:]
        i = self.n % size
        k = min(len(block), size - i)
        self._buf[i:i + k] = block[:k]
        self._buf[:len(block) - k] = block[k:]
        self.n += len(block)

    def since(self, start: int) -> np.ndarray:
        """A copy of the samples from stream index `start` (clamped to what is kept) to now."""
        start = max(start, self.n - len(self._buf), 0)
        idx = np.arange(start, self.n) % len(self._buf)
        return self._buf[idx]

    def quietest(self, before: int, frame: int, frames: int) -> np.ndarray:
        """The quietest `frames` consecutive frames of `frame` samples that end before `before`:
        the background, to prime a fresh Segmenter. Zeros if too little audio is kept."""
        audio = self.since(0)[: max(0, before - max(self.n - len(self._buf), 0))]
        n = len(audio) // frame
        if n < frames:
            return np.zeros(frame * frames, np.int16)
        f = audio[len(audio) - n * frame:].reshape(n, frame).astype(np.float32)
        energy = np.convolve((f * f).mean(axis=1), np.ones(frames), mode="valid")
        i = int(np.argmin(energy))
        return f[i:i + frames].reshape(-1).astype(np.int16)


class Hotword:
    """The states of one command (see the module docstring), driven block by block by the listener.

    detector: an assistant.wake.detector.WakeDetector, or None for push-to-talk only. speaker: the
    Speaker (is_busy, speaking, muted, stop), or None in transcribe mode. chime: plays the
    acknowledgement, or None. emit: where Wake and State events go. transcribe(audio, done):
    has whisper transcribe audio and calls done(text) from its own thread (Decoder.check); for
    the words in config.verify a detection wakes only once whisper has heard the word in it.
    """

    def __init__(self, config: WakeConfig, detector, emit: Callable[[ev.Event], None], speaker=None,
                 chime: Optional["Chime"] = None, frame_len: int = 480,
                 transcribe: Optional[Callable[[np.ndarray, Callable[[str], None]], None]] = None):
        self.config = config
        self.detector = detector
        self.emit = emit
        self.speaker = speaker
        self.chime = chime
        self.frame_len = frame_len
        self.word = detector.word if detector is not None else None
        self.ring = Ring(RING_S)
        self.state = ""
        self._deadline = float("inf")  # listening / follow_up: stream seconds
        self._in_speech = False
        self._tail_ignored_from = float("inf")  # after a barge-in (time.monotonic())
        self._wake_t = float("-inf")  # stream seconds of the last detection
        self._handled = threading.Event()
        self._pressed = threading.Event()
        self.transcribe = transcribe

    @property
    def t(self) -> float:
        """Stream seconds heard so far."""
        return self.ring.n / SAMPLE_RATE

    def start(self) -> None:
        self._set(WAITING)

    # -- from other threads ----------------------------------------------------------------------

    def handled(self) -> None:
        """The command's final was dealt with: intent run and reply queued, if any."""
        self._handled.set()

    def press(self) -> None:
        """Push-to-talk: open the microphone for one command."""
        self._pressed.set()

    # -- from the listener thread ----------------------------------------------------------------

    def hear(self, block: np.ndarray) -> Optional[ForVad]:
        """One microphone block: run the detector, move between states, and say what the VAD gets
        (None: the VAD is off)."""
        self.ring.push(block)
        wake = self.detector.process(block) if self.detector is not None else None
        if (wake is not None and self.transcribe is not None and wake.word in self.config.verify
                and self.state != TRANSCRIBING and not (self.speaker is not None and self.speaker.is_busy())):
            # Not over a reply (barge-in): whisper hears the reply's echo as much as the word, and
            # the reply must stop at once (measured: 1 confirmation of 5 lost, and a later stop).
            wake = self._confirmed(wake)
        pressed = self._pressed.is_set()
        if pressed:
            self._pressed.clear()
        if (wake or pressed) and self.state != TRANSCRIBING:  # a command being transcribed runs its course
            return self._open(wake)
        opening = self._advance()
        if opening is not None:
            return opening
        if self.state in (LISTENING, FOLLOW_UP):
            return ForVad(self._unless_muted(block))
        return None

    def speech_started(self) -> None:
        self._in_speech = True
        if self.state == FOLLOW_UP:
            self._set(LISTENING)

    def speech_ended(self, end: float) -> bool:
        """An utterance ended at stream time `end`. True: it is the command, and the VAD stops until
        the next wake (one command per wake). False: it ended so soon after the detection that it
        can only be the wake word's own last syllable (the detector may fire before the word has
        quite ended, so Wake.end can be early): ignored, and the listening goes on."""
        self._in_speech = False
        if end < self._wake_t + RESIDUE_S:
            return False
        self._handled.clear()
        self._set(TRANSCRIBING)
        return True

    @property
    def vad_on(self) -> bool:
        return self.state in (LISTENING, FOLLOW_UP)

    @property
    def waiting(self) -> bool:
        return self.state == WAITING

    # -- inside ----------------------------------------------------------------------------------

    def _confirmed(self, wake):
        """The wake if whisper hears the word in its audio, else None (logged). The listener waits
        for whisper (0.4-0.55 s in the pipeline; the capture queue holds 15 s), so a file run with
        --fast gives what a real-time one does, and the command still starts at wake.end."""
        verdict: "queue.SimpleQueue[str]" = queue.SimpleQueue()
        self.transcribe(self.ring.since(round((wake.t - VERIFY_WINDOW_S) * SAMPLE_RATE)), verdict.put)
        try:
            text = verdict.get(timeout=CHECK_TIMEOUT_S)
        except queue.Empty:
            log.warning("%s: whisper did not check the wake word within %.0f s; ignored", wake.word, CHECK_TIMEOUT_S)
            return None
        if heard_wake_word(wake.word, text):
            return wake
        log.info("%s at %.2f s (score %.2f) not confirmed: whisper heard %r", wake.word, wake.t, wake.score, text)
        return None

    def _open(self, wake) -> ForVad:
        sp = self.speaker
        barge_in = sp is not None and sp.is_busy()
        if barge_in:
            sp.stop()  # silent within milliseconds; the mute tail is skipped, see BARGE_IN_ECHO_S
            self._tail_ignored_from = time.monotonic() + BARGE_IN_ECHO_S
        else:
            self._tail_ignored_from = float("inf")
        if wake is not None:
            self.emit(ev.Wake(t=round(wake.t, 3), word=wake.word, score=round(wake.score, 3)))
            start = round(wake.end * SAMPLE_RATE)
            self._wake_t = wake.t
        else:
            start = self.ring.n - self.frame_len  # Enter: from the block it was noticed in
            self._wake_t = float("-inf")
        if barge_in:
            start = self.ring.n  # what the ring holds up to now is the reply as much as the person
        if self.chime is not None:
            self.chime.play()
        return self._listen(LISTENING, self.config.listen_timeout_s, start)

    def _listen(self, state: str, seconds: float, start: int) -> ForVad:
        self._deadline = self.t + seconds
        self._in_speech = False
        self._set(state)
        prime = self.ring.quietest(start, self.frame_len, PRIME_FRAMES)
        return ForVad(self._unless_muted(self.ring.since(start)), restart=True, prime=prime,
                      start=start / SAMPLE_RATE)

    def _advance(self) -> Optional[ForVad]:
        state, sp = self.state, self.speaker
        if state in (LISTENING, FOLLOW_UP) and not self._in_speech and self.t >= self._deadline:
            self._set(WAITING)  # nobody spoke: back to waiting, nothing transcribed
        elif state == TRANSCRIBING and self._handled.is_set():
            self._handled.clear()
            if sp is not None and sp.is_busy():
                self._set(SPEAKING)
            else:
                return self._after_reply()
        elif state == SPEAKING and not (sp.is_busy() or sp.muted()):
            return self._after_reply()
        return None

    def _after_reply(self) -> Optional[ForVad]:
        if self.config.follow_up_s > 0:
            return self._listen(FOLLOW_UP, self.config.follow_up_s, self.ring.n)
        self._set(WAITING)
        return None

    def _unless_muted(self, audio: np.ndarray) -> np.ndarray:
        # half-duplex: the VAD never hears the assistant's own voice (the detector does, and must)
        sp = self.speaker
        if sp is not None and sp.muted() and (sp.speaking or time.monotonic() < self._tail_ignored_from):
            return np.zeros_like(audio)
        return audio

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.emit(ev.State(t=round(self.t, 3), state=state))


# --- the acknowledgement sound ------------------------------------------------------------------


def beep() -> np.ndarray:
    """Two short rising notes (880 Hz, 1320 Hz; 70 ms each, -18 dBFS) at 16 kHz."""
    n = int(0.07 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no clicks
    notes = [np.sin(2 * np.pi * f * t) * ramp for f in (880.0, 1320.0)]
    return (0.125 * np.concatenate(notes)).astype(np.float32)


class Chime:
    """The acknowledgement, played at once on its own output stream: not in the speaker's queue
    (a reply may be playing, or be cut by this very wake), and without muting the microphone (a
    command said in one breath is already under way). Its thread opens the stream, so the
    listener never waits for the device."""

    def __init__(self, sound: str, device=None):
        from ..audio import load_audio
        from ..pipeline.speaker import _Output  # the speaker's device check: a SpeakerError if there is none

        self.audio = beep() if sound == "beep" else load_audio(str(Path(sound).expanduser()))
        self._output = _Output(device)
        self._requests: "queue.Queue[bool]" = queue.Queue(maxsize=1)
        self._player = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chime", daemon=True)
        self._thread.start()

    def play(self) -> None:
        try:
            self._requests.put_nowait(True)
        except queue.Full:  # one is about to play already
            pass

    def close(self) -> None:
        self._closed = True
        player = self._player
        if player is not None:
            player.cut()
        try:
            self._requests.put_nowait(False)
        except queue.Full:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        from ..pipeline.speaker import _Player

        while self._requests.get() and not self._closed:
            player = None
            try:
                player = self._player = _Player(self._output, SAMPLE_RATE)
                player.feed(self.audio)
                player.end()
                if not self._closed:
                    player.start()
                    player.finished.wait(len(self.audio) / SAMPLE_RATE + 2.0)
            except Exception as e:  # noqa: BLE001 - a missing beep must not stop the assistant
                log.warning("acknowledgement sound failed: %s", e)
            finally:
                self._player = None
                if player is not None:
                    player.close()


# --- push-to-talk -------------------------------------------------------------------------------


class PushToTalk(threading.Thread):
    """Enter on stdin opens the microphone for one command. select() with a timeout instead of a
    blocking readline(), so stop() ends the thread within POLL_S although no key is pressed."""

    def __init__(self, press: Callable[[], None], stream=None):
        super().__init__(name="push-to-talk", daemon=True)
        self.press = press
        self.stream = stream if stream is not None else sys.stdin
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            log.warning("push-to-talk: standard input cannot be read")
            return
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not sel.select(POLL_S):
                    continue
                data = os.read(fd, 4096)
                if not data:
                    log.warning("push-to-talk: standard input closed; Enter no longer opens the microphone")
                    return
                if b"\n" in data:
                    self.press()
