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
  the 1.5 s before it (a decoder job; meanwhile the listener reads no further and the stream
  waits in the source's queue) and only a text with the word wakes (assistant/wake/detector.py,
  SPELLINGS); not over a reply, where the echo drowns the word.
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

Everything here runs in the listener thread (driven by assistant/pipeline/gates.py HotwordGate,
which also asks whisper for the second opinion and keeps the VAD from hearing the assistant's own
voice) except handled() (decoder or responder thread) and press() (the push-to-talk thread), which
only set flags that step() reads on the next block.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..config import WakeConfig
from ..pipeline import events as ev
from .detector import WAKE_PHRASE_WORDS, Wake, WakeDetector

if TYPE_CHECKING:
    from .chime import Chime

WAITING, LISTENING, TRANSCRIBING, SPEAKING, FOLLOW_UP = "waiting", "listening", "transcribing", "speaking", "follow_up"
STATES = (WAITING, LISTENING, TRANSCRIBING, SPEAKING, FOLLOW_UP)

RING_S = 4.0  # audio kept while waiting: the longest wake word + detection lag + room to find background
PRIME_FRAMES = 5  # VAD frames of background that prime a fresh Segmenter (150 ms at 30 ms frames)
# An utterance whose speech ends less than this after the detection is the wake word's own tail
# (a breath, the last syllable: the detector can fire before the word has quite ended), not a
# command. Measured through the pipeline: the one such tail among the 10 real "alexa" speakers
# ended 0.13 s after the detection; "okay nabu stop" in one breath (espeak-ng, 4 voices) ends
# 0.18-0.24 s after it. A thin margin: a quicker one-word command would be taken for a tail.
RESIDUE_S = 0.15


class Replies(Protocol):
    """What hotword mode asks of the speaker (assistant/pipeline/speaker.py Speaker)."""

    @property
    def speaking(self) -> bool:
        """A reply's audio is playing."""

    def is_busy(self) -> bool:
        """Speaking, or replies are waiting."""

    def muted(self) -> bool:
        """Half-duplex: speaking, or within its mute tail after."""

    def stop(self) -> None:
        """Silence now; queued replies dropped."""


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


# --- the stream kept while waiting ------------------------------------------------------------


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


# --- the state machine ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Opening:
    """The microphone opens for a command: a fresh Segmenter, primed with `prime` (background),
    hears the stream from sample `start` on."""

    start: int  # stream sample index where the command's audio begins
    prime: np.ndarray  # the quietest stretch kept before it (int16)
    woken: bool  # by the wake word or Enter; False: the follow-up window after a reply
    barge_in: bool = False  # woken while a reply played, which was cut


class TurnTaking:
    """The states of one command (see the module docstring), stepped block by block.

    detector: a WakeDetector, or None for push-to-talk only. speaker: the Speaker (is_busy,
    muted, stop), or None in transcribe mode. chime: plays the acknowledgement, or None. emit:
    where Wake and State events go. frame_len: the VAD's frame (samples), the unit of the
    background that primes a fresh Segmenter.

    Per block, from the listener thread: detect(block), then step(wake) with the detection once
    it counts (at once, or after whisper's second opinion: needs_second_opinion()).
    """

    def __init__(self, config: WakeConfig, detector: Optional[WakeDetector], emit: Callable[[ev.Event], None],
                 speaker: Optional[Replies] = None, chime: Optional["Chime"] = None, frame_len: int = 480):
        self.config = config
        self.detector = detector
        self.emit = emit
        self.speaker = speaker
        self.chime = chime
        self.frame_len = frame_len
        self.word: Optional[str] = detector.word if detector is not None else None
        self.ring = Ring(RING_S)
        self.state = ""
        self._deadline = float("inf")  # listening / follow_up: stream seconds
        self._in_speech = False
        self._wake_t = float("-inf")  # stream seconds of the last detection
        self._handled = threading.Event()
        self._pressed = threading.Event()

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

    def detect(self, block: np.ndarray) -> Optional[Wake]:
        """One microphone block: kept, and heard by the wake detector."""
        self.ring.push(block)
        return self.detector.process(block) if self.detector is not None else None

    def needs_second_opinion(self, wake: Wake) -> bool:
        """Whether this detection wakes only once whisper has heard the word in its audio. Not
        over a reply (barge-in): whisper hears the reply's echo as much as the word, and the reply
        must stop at once (measured: 1 confirmation of 5 lost, and a later stop)."""
        sp = self.speaker
        return wake.word in self.config.verify and self.state != TRANSCRIBING and not (sp is not None and sp.is_busy())

    def step(self, wake: Optional[Wake]) -> Optional[Opening]:
        """Move between states after the last detect(); wake: its detection, if it counts. An
        Opening when the VAD starts afresh; otherwise vad_on says whether it hears the block."""
        pressed = self._pressed.is_set()
        if pressed:
            self._pressed.clear()
        if (wake or pressed) and self.state != TRANSCRIBING:  # a command being transcribed runs its course
            return self._open(wake)
        return self._advance()

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

    def _open(self, wake: Optional[Wake]) -> Opening:
        sp = self.speaker
        barge_in = sp is not None and sp.is_busy()
        if barge_in and sp is not None:
            sp.stop()  # silent within milliseconds; see gates.BARGE_IN_ECHO_S for the mute tail
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
        return self._listen(LISTENING, self.config.listen_timeout_s, start, woken=True, barge_in=barge_in)

    def _listen(self, state: str, seconds: float, start: int, woken: bool, barge_in: bool = False) -> Opening:
        self._deadline = self.t + seconds
        self._in_speech = False
        self._set(state)
        prime = self.ring.quietest(start, self.frame_len, PRIME_FRAMES)
        return Opening(start, prime, woken, barge_in)

    def _advance(self) -> Optional[Opening]:
        state, sp = self.state, self.speaker
        if state in (LISTENING, FOLLOW_UP) and not self._in_speech and self.t >= self._deadline:
            self._set(WAITING)  # nobody spoke: back to waiting, nothing transcribed
        elif state == TRANSCRIBING and self._handled.is_set():
            self._handled.clear()
            if sp is not None and sp.is_busy():
                self._set(SPEAKING)
            else:
                return self._after_reply()
        elif state == SPEAKING and sp is not None and not (sp.is_busy() or sp.muted()):
            return self._after_reply()
        return None

    def _after_reply(self) -> Optional[Opening]:
        if self.config.follow_up_s > 0:
            return self._listen(FOLLOW_UP, self.config.follow_up_s, self.ring.n, woken=False)
        self._set(WAITING)
        return None

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.emit(ev.State(t=round(self.t, 3), state=state))
