"""The decoder thread: the one caller of whisper, one job at a time from a bounded queue.

Jobs, one kind per class, each with `utterance` and a ClassVar `kind`:

    PartialJob      the utterance so far, for a live partial. Only queued when the decoder is
                    idle, skipped when a final waits, aborted as soon as one arrives.
    SpeculativeJob  the utterance as it will be if it ends in this pause (the hangover): decoded
                    ahead, and used by the final if the final's audio is the same (a Speculation).
                    Skipped or aborted when speech resumes or the final's audio differs.
    FinalJob        the utterance's end: the Final event, then the hand-off (on_final).
    CheckJob        audio another stage wants transcribed (the wake word's second opinion):
                    answer(text) always comes, with "" when the job is aborted or fails.

Finals never wait for a partial, nor for a speculation that turned out wrong. An aborted job
ends that job only; stop() alone ends the thread.

trace(phase, job), if given, is called on this thread: ("start", job) when a job is taken, then
("done" | "aborted" | "skipped", job) when it ends ("done" also when it failed: an Error event
says so).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, ClassVar, Dict, Optional, Union

import numpy as np

from . import events as ev
from ..asr.engine import Aborted, Transcript
from ..asr.partials import PartialText
from ..audio.vad import SpeechEnd

log = logging.getLogger(__name__)

JOBS_QUEUE = 8


@dataclass(frozen=True, eq=False)
class PartialJob:
    kind: ClassVar[str] = "partial"
    utterance: int
    audio: np.ndarray
    t: float  # stream seconds the partial is reported at


@dataclass(frozen=True, eq=False)
class SpeculativeJob:
    kind: ClassVar[str] = "speculative"
    utterance: int
    audio: np.ndarray


@dataclass(frozen=True, eq=False)
class FinalJob:
    kind: ClassVar[str] = "final"
    utterance: int
    end: SpeechEnd
    end_wall: float  # time.time() of the end-of-speech decision, for latency_ms
    t: float  # stream seconds the final is reported at

    @property
    def audio(self) -> np.ndarray:
        return self.end.audio


@dataclass(frozen=True, eq=False)
class CheckJob:
    kind: ClassVar[str] = "check"
    audio: np.ndarray
    answer: Callable[[str], None]  # called on the decoder thread with the text
    utterance: int = -1  # no utterance: the audio comes from outside the VAD


@dataclass(frozen=True)
class _Stop:
    kind: ClassVar[str] = "stop"


Job = Union[PartialJob, SpeculativeJob, FinalJob, CheckJob]
Trace = Callable[[str, Job], None]


@dataclass(frozen=True)
class Speculation:
    """A final decoded ahead, during the hangover, on the first n_samples of an utterance."""

    utterance: int
    n_samples: int
    transcript: Transcript

    def fits(self, job: FinalJob) -> bool:
        return self.utterance == job.utterance and self.n_samples == len(job.audio)


@dataclass(frozen=True)
class Wanted:
    """The audio a speculation must be on to be of use: an utterance's first n_samples."""

    utterance: int
    n_samples: int


def _ignore(final: ev.Final) -> None:
    pass


def _nothing() -> None:
    pass


class Decoder(threading.Thread):
    """See the module docstring. emit: display events (Partial, Final, Error). on_final: the
    hand-off of every Final (the responder, or the gate's handled()); on_final_failed: a final
    whose decode failed (the command is over all the same)."""

    def __init__(self, engine, emit: Callable[[ev.Event], None], *,
                 on_final: Callable[[ev.Final], None] = _ignore, on_final_failed: Callable[[], None] = _nothing,
                 prompt: Optional[str] = None, clean: Callable[[str], str] = lambda text: text,
                 constrained: bool = False, min_logprob: float = -math.inf, denoise: bool = False,
                 trace: Optional[Trace] = None):
        super().__init__(name="decoder", daemon=True)
        self.engine = engine
        self.emit = emit
        self.on_final = on_final
        self.on_final_failed = on_final_failed
        self.prompt = prompt
        self.constrained = constrained  # finals held to the intents' grammar (Engine.use_grammar)
        self.min_logprob = min_logprob  # a freely decoded final less sure than this is noise: no text
        self.denoise = denoise  # finals: the pre-roll's noise subtracted first (assistant/audio/denoise.py)
        self.clean = clean  # hotword mode: a wake word whisper heard at the start is no part of the command
        self.trace = trace
        self.jobs: "queue.Queue[Union[Job, _Stop]]" = queue.Queue(maxsize=JOBS_QUEUE)
        self._final_waiting = threading.Event()
        self._stopping = threading.Event()
        self._speculation: Optional[Speculation] = None
        self._wanted: Optional[Wanted] = None  # what the speculation in hand is still good for
        self._partials: Dict[int, PartialText] = {}

    # -- from the listener thread ----------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No job queued or running (a job taken from the queue counts until it is done)."""
        return self.jobs.unfinished_tasks == 0

    def partial(self, utterance: int, audio: np.ndarray, t: float) -> bool:
        if not self.idle:
            return False  # skipped: the engine is busy
        try:
            self.jobs.put_nowait(PartialJob(utterance, audio, t))
            return True
        except queue.Full:
            return False

    def speculate(self, utterance: int, audio: np.ndarray) -> None:
        self._wanted = Wanted(utterance, len(audio))
        self._put(SpeculativeJob(utterance, audio))

    def unspeculate(self) -> None:
        """Speech resumed after the pause a speculation was started in: it is of no use."""
        self._wanted = None

    def final(self, utterance: int, end: SpeechEnd, end_wall: float, t: Optional[float] = None) -> None:
        self._wanted = Wanted(utterance, len(end.audio))  # a speculation on exactly this audio goes on
        self._final_waiting.set()
        self._put(FinalJob(utterance, end, end_wall, end.detected_at if t is None else t))

    def check(self, audio: np.ndarray, answer: Callable[[str], None]) -> None:
        """Transcribe audio for another stage; answer(text) is called from this thread."""
        self._put(CheckJob(audio, answer))

    def stop(self) -> None:
        self._stopping.set()
        self._put(_Stop())

    def _put(self, job: Union[Job, _Stop]) -> None:
        while not self._stopping.is_set() or isinstance(job, _Stop):
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- the thread ------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if isinstance(job, _Stop):
                    return
                self._run(job)
            finally:
                self.jobs.task_done()

    def _run(self, job: Job) -> None:
        if self.trace is not None:
            self.trace("start", job)
        outcome = "done"
        try:
            outcome = self._do(job)
        except Aborted:
            outcome = "aborted"
        except Exception as e:  # noqa: BLE001 - one bad decode must not stop listening
            log.exception("decode failed")
            self.emit(ev.Error(t=getattr(job, "t", 0.0), message=f"transcription failed: {e}"))
            if isinstance(job, FinalJob):
                self.on_final_failed()
        finally:
            if self.trace is not None:
                self.trace(outcome, job)

    def _do(self, job: Job) -> str:
        """The job's method; "done" or "skipped" (Aborted is raised)."""
        if self._stopping.is_set():
            if isinstance(job, CheckJob):
                job.answer("")
            return "skipped"
        if isinstance(job, PartialJob):
            return self._partial(job)
        if isinstance(job, SpeculativeJob):
            return self._speculative(job)
        if isinstance(job, FinalJob):
            return self._final(job)
        return self._check(job)

    def _partial(self, job: PartialJob) -> str:
        if self._final_waiting.is_set():
            return "skipped"
        result = self.engine.transcribe_command(job.audio, prompt=self.prompt, abort=self._abort)
        heard = self.clean(result.text)
        if heard:
            text, stable = self._partials.setdefault(job.utterance, PartialText()).update(heard)
            self.emit(ev.Partial(t=job.t, text=text, stable=stable))
        return "done"

    def _speculative(self, job: SpeculativeJob) -> str:
        wanted = Wanted(job.utterance, len(job.audio))
        if self._wanted != wanted:
            return "skipped"
        result = self.engine.transcribe_command(
            job.audio, prompt=self.prompt, constrained=self.constrained, denoise=self.denoise,
            abort=lambda: self._stopping.is_set() or self._wanted != wanted)
        self._speculation = Speculation(job.utterance, len(job.audio), result)
        return "done"

    def _final(self, job: FinalJob) -> str:
        self._final_waiting.clear()
        self._partials.pop(job.utterance, None)
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.fits(job):
            result = speculation.transcript  # decoded during the hangover: same audio, ready now
        else:
            result = self.engine.transcribe_command(job.audio, prompt=self.prompt, constrained=self.constrained,
                                                    denoise=self.denoise, abort=self._stopping.is_set)
        latency = (time.time() - job.end_wall) * 1000
        text = self.clean(result.text)
        if text and not result.held and result.logprob < self.min_logprob:
            log.info("dropping %r: whisper's guess at noise (mean log-probability %.2f)", text, result.logprob)
            text = ""
        final = ev.Final(t=job.t, text=text, latency_ms=round(latency, 1), audio_ctx=result.audio_ctx,
                         decode_ms=round(result.decode_ms, 1), forced=result.forced, logprob=result.logprob)
        self.emit(final)
        self.on_final(final)
        return "done"

    def _check(self, job: CheckJob) -> str:
        text = ""
        try:
            text = self.engine.transcribe_command(job.audio, abort=self._stopping.is_set).text
        finally:
            job.answer(text)
        return "done"

    def _abort(self) -> bool:
        return self._stopping.is_set() or self._final_waiting.is_set()
