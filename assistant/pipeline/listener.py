"""The listener thread: source -> gate -> VAD -> decoder jobs.

It reads the source block by block and gives each block to the gate (gates.py), which says what
of it the VAD hears (always listening: all of it; hotword mode: nothing until the wake word).
The Segmenter (assistant/audio/vad.py) cuts that into utterances; the listener asks the decoder
for partials on a cadence while the person speaks, for a speculative final when a pause reaches
the Segmenter's tail (the utterance may end there; speculate=False: never), and for the final at
the utterance's end.

A source is anything with the Source protocol below: Microphone and FileSource
(assistant/audio/sources.py) today; a browser microphone or a Wyoming client tomorrow.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable, Optional, Protocol

import numpy as np

from . import events as ev
from .decoder import Decoder
from .gates import ForVad, Gate
from ..audio.vad import Segmenter, SpeechEnd, SpeechStart

READ_TIMEOUT_S = 0.1  # the longest the listener waits for a block (or a gate) before it checks stop()


class Source(Protocol):
    """16 kHz mono int16 audio in blocks of any length. start() may begin a thread (a file) or a
    device stream (a microphone); read() is called from the listener thread only.

    While the gate's answer is deferred (hotword mode, the wake word's second opinion: up to
    gates.CHECK_TIMEOUT_S, 0.4-0.7 s as measured) the listener reads nothing: a real-time source
    keeps at least that much audio queued, a source that is not real time waits to be read."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Stop delivering; read() then returns what is left, then None."""

    def read(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The next block, or None when none came within `timeout` or the stream has ended."""

    @property
    def finished(self) -> bool:
        """The stream has ended and every block has been read."""


class Listener(threading.Thread):
    """See the module docstring. emit: display events (SpeechStarted, SpeechEnded)."""

    def __init__(self, source: Source, segmenter: Segmenter, decoder: Decoder, gate: Gate,
                 emit: Callable[[ev.Event], None], *, partial_interval: float, partials: bool = True,
                 speculate: bool = True):
        super().__init__(name="listener", daemon=True)
        self.source = source
        self.seg = segmenter
        self.decoder = decoder
        self.gate = gate
        self.emit = emit
        self.interval = partial_interval
        self.partials = partials
        # The pause after which the utterance's audio is final if nobody speaks on. Without
        # speculation none is ever that long: partials go on through the hangover as in speech.
        self.tail_s = segmenter.tail_s if speculate else math.inf
        self.utterance = 0
        self.t0 = 0.0  # stream seconds at the Segmenter's t=0 (it restarts for each hotword command)
        self.finished = threading.Event()  # end of the source, last utterance handed over
        self._stopping = threading.Event()
        self._next_partial = 0.0
        self._speculated = False

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        try:
            self.gate.start()
            while not self._stopping.is_set():
                if self.gate.deferred:  # its answer for the last block is pending: read no further
                    self._feed(self.gate.resume(READ_TIMEOUT_S))
                    continue
                block = self.source.read(timeout=READ_TIMEOUT_S)
                if block is None:
                    if self.source.finished:
                        break
                    continue
                self._take(block)
                nap = self.gate.nap_s
                if nap:
                    # Take what has queued up, then nap, so each wake-up serves a few blocks.
                    while self.gate.nap_s and (block := self.source.read(timeout=0)) is not None:
                        self._take(block)
                    if self.gate.nap_s:
                        self._stopping.wait(nap)
            if self.gate.vad_on:
                for result in self.seg.flush():
                    if isinstance(result, SpeechEnd):
                        self._end(result)
        finally:
            self.finished.set()

    def _take(self, block: np.ndarray) -> None:
        self._feed(self.gate.hear(block))

    def _feed(self, vad: Optional[ForVad]) -> None:
        if vad is None:  # the VAD does not hear this block
            return
        if vad.restart:
            self._restart(vad.prime, vad.start)
        self._segment(vad.audio)

    def _restart(self, prime: Optional[np.ndarray], start: float) -> None:
        """A new command (hotword mode): a fresh Segmenter whose noise floor is the room's (primed
        with background, its reports ignored), its clock mapped to stream time."""
        self.seg.reset()
        if prime is not None:
            self.seg.feed(prime)
        self.t0 = start - self.seg.t

    def _segment(self, audio: np.ndarray) -> None:
        interval, tail_s = self.interval, self.tail_s
        for result in self.seg.feed(audio):
            if isinstance(result, SpeechStart):
                self.utterance += 1
                self._next_partial = result.t + interval
                self._speculated = False
                self.emit(ev.SpeechStarted(t=self._t(result.t)))
                self.gate.speech_started()
            elif isinstance(result, SpeechEnd):
                self._end(result)
                if not self.gate.vad_on:
                    return  # the gate closed the VAD (hotword mode: one command per wake)
                if result.cut:  # a monologue goes on as a new utterance
                    self.utterance += 1
                    self._next_partial = self.seg.t + interval
                    self._speculated = False
        if not self.seg.in_speech:
            return
        silence = self.seg.silence_s
        if silence >= tail_s and not self._speculated:
            # the utterance may end here: decode it now, used only if it does end here
            self.decoder.speculate(self.utterance, self._so_far())
            self._speculated = True
        elif silence < tail_s:
            if self._speculated:
                self.decoder.unspeculate()
            self._speculated = False
            if self.partials and self.seg.t >= self._next_partial:
                if self.decoder.partial(self.utterance, self._so_far(), self._t(self.seg.t)):
                    self._next_partial = self.seg.t + interval

    def _so_far(self) -> np.ndarray:
        audio = self.seg.current_audio()
        assert audio is not None  # asked in speech only
        return audio

    def _t(self, seg_t: float) -> float:
        return round(self.t0 + seg_t, 3)

    def _end(self, end: SpeechEnd) -> None:
        """speech_end, and the final unless the gate says the utterance is no command (the wake
        word's last syllable)."""
        wall = time.time()
        self.emit(ev.SpeechEnded(t=self._t(end.t), wall=wall))
        if self.gate.speech_ended(self._t(end.t)):
            self.decoder.final(self.utterance, end, wall, t=self._t(end.detected_at))
