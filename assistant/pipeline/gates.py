"""Gates: what of the microphone the VAD hears. The listener hands every block to its gate and
feeds the Segmenter whatever comes back; the mode is the gate chosen at start-up (app.py).

    AlwaysOpenGate  always listening: every block, silenced while the assistant speaks.
    HotwordGate     hotword mode (wake.word, --push-to-talk): nothing until the wake word or
                    Enter, then one command (assistant/wake/turn.py has the states).

Each owns its half-duplex rule: the VAD never hears the assistant's own voice, so the assistant
never answers itself. The hotword gate's detector does hear it, so the wake word can cut a reply.

The Gate interface, called from the listener thread unless said otherwise:

    start()                 the listener thread begins
    hear(block)             -> ForVad | None (None: the VAD hears nothing of this block)
    deferred                True while hear() put off its answer for the last block; the
                            listener then reads no more blocks and calls ...
    resume(timeout)         -> ForVad | None, the put-off answer once it is known (deferred False)
    speech_started()        the VAD reported speech_start
    speech_ended(t) -> bool the VAD reported speech_end at stream time t: False if the
                            utterance is not a command (no final)
    vad_on                  the VAD is listening (else the listener stops feeding it)
    nap_s                   the listener may sleep this long between batches of blocks (0: never)
    handled()               any thread: the last final was dealt with (intent run, reply queued)
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np

from ..audio import SAMPLE_RATE
from ..wake.detector import VERIFY_WINDOW_S, Wake, heard_wake_word
from ..wake.turn import Opening, Replies, TurnTaking

log = logging.getLogger(__name__)

# Hotword mode, waiting: the listener naps this long between batches of blocks. Measured with the
# detector on 30 ms blocks in real time on a busy machine: 1.4 % of a core woken for every block,
# 0.73 % for every third (a hot cache); the wake is heard up to this much later.
WAITING_NAP_S = 0.06
# After a barge-in the speaker is cut at once, but what it played last is still on its way back
# to the microphone (device and room latency): the VAD hears the microphone again this much later,
# instead of after the speaker's whole mute tail, so a command said right after the wake word is kept.
BARGE_IN_ECHO_S = 0.1
CHECK_TIMEOUT_S = 5.0  # the longest a wake word waits for whisper's second opinion

Check = Callable[[np.ndarray, Callable[[str], None]], None]  # (audio, answer): Decoder.check


@dataclass(frozen=True, eq=False)
class ForVad:
    """What the listener gives the Segmenter for one microphone block."""

    audio: np.ndarray
    restart: bool = False  # a new command: reset the Segmenter first ...
    prime: Optional[np.ndarray] = None  # ... feed it this background (its reports ignored) ...
    start: float = 0.0  # ... and audio[0] is this many stream seconds in


class Gate(Protocol):
    """See the module docstring."""

    def start(self) -> None: ...

    def hear(self, block: np.ndarray) -> Optional[ForVad]: ...

    @property
    def deferred(self) -> bool: ...

    def resume(self, timeout: float) -> Optional[ForVad]: ...

    def speech_started(self) -> None: ...

    def speech_ended(self, t: float) -> bool: ...

    @property
    def vad_on(self) -> bool: ...

    @property
    def nap_s(self) -> float: ...

    def handled(self) -> None: ...


def _silent(audio: np.ndarray) -> np.ndarray:
    return np.zeros_like(audio)


class AlwaysOpenGate:
    """Always listening: the VAD hears every block, as silence while the speaker is muted (speaking
    and its tail_ms after). Every utterance is a final."""

    def __init__(self, speaker: Optional[Replies] = None):
        self.speaker = speaker

    def start(self) -> None:
        pass

    def hear(self, block: np.ndarray) -> ForVad:
        if self.speaker is not None and self.speaker.muted():
            return ForVad(_silent(block))  # half-duplex: our own voice is not speech
        return ForVad(block)

    deferred = False

    def resume(self, timeout: float) -> Optional[ForVad]:
        return None

    def speech_started(self) -> None:
        pass

    def speech_ended(self, t: float) -> bool:
        return True

    vad_on = True
    nap_s = 0.0

    def handled(self) -> None:
        pass


@dataclass(frozen=True, eq=False)
class _Candidate:
    """A detection waiting for whisper's second opinion, and the block it came in."""

    wake: Wake
    block: np.ndarray
    verdict: "queue.SimpleQueue[str]"  # its own: a late answer cannot be taken for another's
    deadline: float  # time.monotonic()


class HotwordGate:
    """Hotword mode: the turn-taking state machine (assistant/wake/turn.py) decides when the VAD
    listens; this gate runs it block by block for the listener, asks whisper for the second
    opinion, and keeps the VAD from hearing the assistant's voice.

    The second opinion (wake.verify) is a decoder job, `check(audio, answer)`; answer(text) comes
    back from the decoder thread into the candidate's own queue. Until it does, the gate's answer
    for the candidate's block is deferred and the listener reads nothing further: the blocks wait
    in the source's queue (a microphone's holds audio.queue_frames, 15 s; a file run with --fast
    waits to be read), and are taken in order once the verdict is in. So the command said in the
    same breath starts at Wake.end, the state machine steps through the same blocks in the same
    order whatever whisper's speed, and a file run with --fast gives what a real-time run gives.
    The listener's loop still turns every listener.READ_TIMEOUT_S, so stop() is heard at once.
    Holding the blocks in the gate instead would copy what the source's queue already does.
    """

    def __init__(self, turn: TurnTaking, speaker: Optional[Replies] = None, check: Optional[Check] = None):
        self.turn = turn
        self.speaker = speaker
        self.check = check
        self._candidate: Optional[_Candidate] = None
        self._tail_ignored_from = float("inf")  # after a barge-in (time.monotonic())

    @property
    def t(self) -> float:
        """Stream seconds heard so far."""
        return self.turn.t

    def start(self) -> None:
        self.turn.start()

    def press(self) -> None:
        """Push-to-talk (any thread)."""
        self.turn.press()

    def handled(self) -> None:
        self.turn.handled()

    def hear(self, block: np.ndarray) -> Optional[ForVad]:
        assert self._candidate is None, "hear() while deferred: resume() first"
        wake = self.turn.detect(block)
        if wake is not None and self.check is not None and self.turn.needs_second_opinion(wake):
            self._ask(wake, block)
            return None
        return self._step(wake, block)

    @property
    def deferred(self) -> bool:
        return self._candidate is not None

    def resume(self, timeout: float) -> Optional[ForVad]:
        candidate = self._candidate
        if candidate is None:
            return None
        wake = candidate.wake
        try:
            text = candidate.verdict.get(timeout=timeout)
        except queue.Empty:
            if time.monotonic() < candidate.deadline:
                return None
            log.warning("%s: whisper did not check the wake word within %.0f s; ignored", wake.word, CHECK_TIMEOUT_S)
            text = None
        self._candidate = None
        confirmed = text is not None and heard_wake_word(wake.word, text)
        if text is not None and not confirmed:
            log.info("%s at %.2f s (score %.2f) not confirmed: whisper heard %r", wake.word, wake.t, wake.score, text)
        return self._step(wake if confirmed else None, candidate.block)

    def speech_started(self) -> None:
        self.turn.speech_started()

    def speech_ended(self, t: float) -> bool:
        return self.turn.speech_ended(t)

    @property
    def vad_on(self) -> bool:
        return self.turn.vad_on

    @property
    def nap_s(self) -> float:
        # Waiting costs mostly waking up (a cold cache for every 30 ms block): batches save it.
        return WAITING_NAP_S if self.turn.waiting and self._candidate is None else 0.0

    # -- inside ----------------------------------------------------------------------------------

    def _ask(self, wake: Wake, block: np.ndarray) -> None:
        assert self.check is not None
        candidate = _Candidate(wake, block, queue.SimpleQueue(), time.monotonic() + CHECK_TIMEOUT_S)
        self._candidate = candidate
        self.check(self.turn.ring.since(round((wake.t - VERIFY_WINDOW_S) * SAMPLE_RATE)), candidate.verdict.put)

    def _step(self, wake: Optional[Wake], block: np.ndarray) -> Optional[ForVad]:
        opening = self.turn.step(wake)
        if opening is not None:
            return self._open(opening)
        if self.turn.vad_on:
            return ForVad(self._unless_muted(block))
        return None

    def _open(self, opening: Opening) -> ForVad:
        if opening.woken:
            self._tail_ignored_from = time.monotonic() + BARGE_IN_ECHO_S if opening.barge_in else float("inf")
        return ForVad(self._unless_muted(self.turn.ring.since(opening.start)), restart=True, prime=opening.prime,
                      start=opening.start / SAMPLE_RATE)

    def _unless_muted(self, audio: np.ndarray) -> np.ndarray:
        # Half-duplex: the VAD never hears the assistant's own voice (the detector does, and must).
        # After a barge-in only while the cut reply may still sound, not for the whole mute tail.
        sp = self.speaker
        if sp is not None and sp.muted() and (sp.speaking or time.monotonic() < self._tail_ignored_from):
            return _silent(audio)
        return audio

