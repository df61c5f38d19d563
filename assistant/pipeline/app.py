"""The listening pipeline: source -> [wake word] -> VAD -> whisper -> events.

One audio block's path:
  capture thread   Microphone / FileSource puts int16 blocks in a bounded queue
  listener thread  reads them. Hotword mode (wake.word, --push-to-talk): the block goes to the wake
                   detector first (hotword.py), which says whether the VAD hears it at all; while
                   waiting it does not. Then the Segmenter (webrtcvad) emits speech_start /
                   speech_end, and the listener asks for partials on a cadence and for the final
                   at the utterance's end
  decoder thread   owns every whisper call: partials (skipped when busy, aborted when a final
                   waits), the final, and a speculative final started in the hangover silence
  main thread      takes events from a bounded queue and hands them to the sinks
                   (console line or JSON lines); in assistant mode finals go on to the
  responder thread intent, action and spoken reply (respond.py, speaker.py); it tells the hotword
                   state machine when a command has been dealt with
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from . import events as ev
from ..asr.partials import PartialText
from ..audio.vad import SpeechEnd, SpeechStart, Segmenter, TAIL_MS

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
EVENTS_QUEUE = 256
# Hotword mode, waiting: the listener naps this long between batches of blocks. Measured with the
# detector on 30 ms blocks in real time on a busy machine: 1.4 % of a core woken for every block,
# 0.73 % for every third (a hot cache); the wake is heard up to this much later.
WAITING_NAP_S = 0.06


@dataclass
class _Job:
    kind: str  # partial | speculative | final | stop
    utterance: int
    audio: Optional[np.ndarray] = None
    end: Optional[SpeechEnd] = None
    end_wall: float = 0.0
    t: float = 0.0
    done: Optional[Callable[[str], None]] = None  # check: gets the text


class Decoder(threading.Thread):
    """The one thread that calls whisper. Finals never wait for a partial: a partial is only
    submitted when the decoder is idle, and aborts as soon as a final job arrives. Nor for a
    speculation that turned out wrong: it aborts when speech resumes or the final's audio differs."""

    def __init__(self, engine, emit: Callable[[ev.Event], None], prompt: Optional[str] = None,
                 clean: Callable[[str], str] = lambda text: text, constrained: bool = False,
                 min_logprob: float = -math.inf, denoise: bool = False):
        super().__init__(name="decoder", daemon=True)
        self.engine = engine
        self.emit = emit
        self.prompt = prompt
        self.constrained = constrained  # finals held to the intents' grammar (Engine.use_grammar)
        self.min_logprob = min_logprob  # a freely decoded final less sure than this is noise: no text
        self.denoise = denoise  # finals: the pre-roll's noise subtracted first (assistant/denoise.py)
        self.clean = clean  # hotword mode: a wake word whisper heard at the start is no part of the command
        self.jobs: "queue.Queue[_Job]" = queue.Queue(maxsize=8)
        self._final_waiting = threading.Event()
        self._stopping = threading.Event()
        self._speculative = None  # (utterance, n_samples, transcript)
        self._wanted = None  # (utterance, n_samples) the speculation in hand is still good for
        self._partials: dict = {}

    @property
    def idle(self) -> bool:
        """No job queued or running (a job taken from the queue counts until it is done)."""
        return self.jobs.unfinished_tasks == 0

    def partial(self, utterance: int, audio: np.ndarray, t: float) -> bool:
        if not self.idle:
            return False  # skipped: the engine is busy
        try:
            self.jobs.put_nowait(_Job("partial", utterance, audio, t=t))
            return True
        except queue.Full:
            return False

    def speculate(self, utterance: int, audio: np.ndarray) -> None:
        self._wanted = (utterance, len(audio))
        self._put(_Job("speculative", utterance, audio))

    def unspeculate(self) -> None:
        """Speech resumed after the pause a speculation was started in: it is of no use."""
        self._wanted = None

    def final(self, utterance: int, end: SpeechEnd, end_wall: float, t: Optional[float] = None) -> None:
        self._wanted = (utterance, len(end.audio))  # a speculation on exactly this audio goes on
        self._final_waiting.set()
        t = end.detected_at if t is None else t
        self._put(_Job("final", utterance, end.audio, end=end, end_wall=end_wall, t=t))

    def check(self, audio: np.ndarray, done: Callable[[str], None]) -> None:
        """Transcribe audio for another stage (the wake word's second opinion); done(text) is
        called from this thread."""
        self._put(_Job("check", -1, audio, done=done))

    def stop(self) -> None:
        self._stopping.set()
        self._put(_Job("stop", -1))

    def _put(self, job: _Job) -> None:
        while not self._stopping.is_set() or job.kind == "stop":
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                continue

    def _abort(self) -> bool:
        return self._stopping.is_set() or self._final_waiting.is_set()

    def run(self) -> None:
        from ..asr.engine import Aborted

        while True:
            job = self.jobs.get()
            if job.kind == "stop":
                return
            try:
                if job.kind == "partial":
                    if self._final_waiting.is_set():
                        continue
                    try:
                        result = self.engine.transcribe_command(job.audio, prompt=self.prompt, abort=self._abort)
                    except Aborted:
                        continue
                    heard = self.clean(result.text)
                    if heard:
                        text, stable = self._partials.setdefault(job.utterance, PartialText()).update(heard)
                        self.emit(ev.Partial(t=job.t, text=text, stable=stable))
                elif job.kind == "check":
                    text = ""
                    try:
                        text = self.engine.transcribe_command(job.audio, abort=self._stopping.is_set).text
                    except Aborted:
                        return
                    finally:
                        job.done(text)
                elif job.kind == "speculative":
                    wanted = (job.utterance, len(job.audio))
                    if self._wanted != wanted:
                        continue
                    try:
                        result = self.engine.transcribe_command(
                            job.audio, prompt=self.prompt, constrained=self.constrained, denoise=self.denoise,
                            abort=lambda: self._stopping.is_set() or self._wanted != wanted)
                    except Aborted:
                        continue
                    self._speculative = (job.utterance, len(job.audio), result)
                elif job.kind == "final":
                    self._final_waiting.clear()
                    self._partials.pop(job.utterance, None)
                    spec = self._speculative
                    if spec and spec[0] == job.utterance and spec[1] == len(job.audio):
                        result = spec[2]  # decoded during the hangover: same audio, ready now
                    else:
                        try:
                            result = self.engine.transcribe_command(job.audio, prompt=self.prompt,
                                                                    constrained=self.constrained,
                                                                    denoise=self.denoise,
                                                                    abort=self._stopping.is_set)
                        except Aborted:
                            return
                    self._speculative = None
                    latency = (time.time() - job.end_wall) * 1000
                    text = self.clean(result.text)
                    if text and not result.held and result.logprob < self.min_logprob:
                        log.info("dropping %r: whisper's guess at noise (mean log-probability %.2f)",
                                 text, result.logprob)
                        text = ""
                    self.emit(ev.Final(t=job.t, text=text, latency_ms=round(latency, 1),
                                       audio_ctx=result.audio_ctx, decode_ms=round(result.decode_ms, 1),
                                       forced=result.forced, logprob=result.logprob))
            except Exception as e:  # noqa: BLE001 - one bad decode must not stop listening
                log.exception("decode failed")
                self.emit(ev.Error(t=job.t, message=f"transcription failed: {e}"))
            finally:
                self.jobs.task_done()


class Listener(threading.Thread):
    """Reads the source, runs the wake word (hotword mode) and the VAD, and drives the decoder."""

    def __init__(self, source, segmenter: Segmenter, decoder: Decoder, emit, partial_interval: float,
                 partials: bool = True, muted: Callable[[], bool] = lambda: False, hotword=None):
        super().__init__(name="listener", daemon=True)
        self.source = source
        self.seg = segmenter
        self.decoder = decoder
        self.emit = emit
        self.interval = partial_interval
        self.partials = partials
        self.muted = muted
        self.hotword = hotword  # hotword.Hotword, or None: always listening
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
            if self.hotword is not None:
                self.hotword.start()
            while not self._stopping.is_set():
                block = self.source.read(timeout=0.1)
                if block is None:
                    if self.source.finished:
                        break
                    continue
                self._take(block)
                if self.hotword is not None and self.hotword.waiting:
                    # Waiting costs mostly waking up (a cold cache for every 30 ms block): take what
                    # has queued up, then nap, so each wake-up serves a few blocks.
                    while self.hotword.waiting and (block := self.source.read(timeout=0)) is not None:
                        self._take(block)
                    if self.hotword.waiting:
                        self._stopping.wait(WAITING_NAP_S)
            if self.hotword is None or self.hotword.vad_on:
                for result in self.seg.flush():
                    if isinstance(result, SpeechEnd):
                        self._end(result)
        finally:
            self.finished.set()

    def _take(self, block: np.ndarray) -> None:
        """One block's path: the wake detector (hotword mode), then the VAD if it is listening."""
        if self.hotword is None:
            if self.muted():
                block = np.zeros_like(block)  # half-duplex: our own voice is not speech
            self._segment(block)
            return
        vad = self.hotword.hear(block)  # None: the VAD does not hear this block
        if vad is None:
            return
        if vad.restart:
            self._restart(vad.prime, vad.start)
        self._segment(vad.audio)

    def _restart(self, prime: np.ndarray, start: float) -> None:
        """A new hotword command: a fresh Segmenter whose noise floor is the room's (primed with
        background, its reports ignored), its clock mapped to stream time."""
        self.seg.reset()
        self.seg.feed(prime)
        self.t0 = start - self.seg.t

    def _segment(self, audio: np.ndarray) -> None:
        interval, tail_s = self.interval, TAIL_MS / 1000
        for result in self.seg.feed(audio):
            if isinstance(result, SpeechStart):
                self.utterance += 1
                self._next_partial = result.t + interval
                self._speculated = False
                self.emit(ev.SpeechStarted(t=self._t(result.t)))
                if self.hotword is not None:
                    self.hotword.speech_started()
            elif isinstance(result, SpeechEnd):
                if self._end(result) and self.hotword is not None:
                    return  # one command per wake: the VAD stops here
                if result.cut:  # a monologue goes on as a new utterance
                    self.utterance += 1
                    self._next_partial = self.seg.t + interval
                    self._speculated = False
        if not self.seg.in_speech:
            return
        silence = self.seg.silence_s
        if silence >= tail_s and not self._speculated:
            # the utterance may end here: decode it now, used only if it does end here
            self.decoder.speculate(self.utterance, self.seg.current_audio())
            self._speculated = True
        elif silence < tail_s:
            if self._speculated:
                self.decoder.unspeculate()
            self._speculated = False
            if self.partials and self.seg.t >= self._next_partial:
                if self.decoder.partial(self.utterance, self.seg.current_audio(), self._t(self.seg.t)):
                    self._next_partial = self.seg.t + interval

    def _t(self, seg_t: float) -> float:
        return round(self.t0 + seg_t, 3)

    def _end(self, end: SpeechEnd) -> bool:
        """speech_end, and the final unless it was only the wake word's last syllable; True if a
        command was handed over."""
        wall = time.time()
        self.emit(ev.SpeechEnded(t=self._t(end.t), wall=wall))
        if self.hotword is not None and not self.hotword.speech_ended(self._t(end.t)):
            return False
        self.decoder.final(self.utterance, end, wall, t=self._t(end.detected_at))
        return True


# --- sinks ------------------------------------------------------------------------------------

class ConsoleLine:
    """One live line: partial text (stable part plain, tail dim) replaced by the final text;
    hotword states and wakes on stderr."""

    STATES = {"waiting": "waiting: {waiting}", "listening": "listening ...", "transcribing": "transcribing ...",
              "speaking": "speaking (the wake word interrupts)", "follow_up": "listening for a follow-up ..."}

    def __init__(self, stream=sys.stdout, waiting: str = "say the wake word or press Enter"):
        self.stream = stream
        self.tty = stream.isatty()
        self.waiting = waiting  # hotword mode: what wakes the assistant

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Listening):
            print("listening ... (Ctrl-C to stop)", file=sys.stderr)
        elif isinstance(event, ev.Wake):
            print(f"[heard {event.word.replace('_', ' ')}, {event.score:.2f}]", file=sys.stderr)
        elif isinstance(event, ev.State):
            print(f"[{self.STATES.get(event.state, event.state).format(waiting=self.waiting)}]", file=sys.stderr)
        elif isinstance(event, ev.Partial) and self.tty:
            tail = event.text[len(event.stable):] if event.text.startswith(event.stable) else ""
            shown = event.stable + (f"\033[2m{tail}\033[0m" if tail else "")
            self.stream.write(f"\r\033[K... {shown}")
            self.stream.flush()
        elif isinstance(event, ev.Final):
            prefix = "\r\033[K" if self.tty else ""
            self.stream.write(f"{prefix}> {event.text}\n" if event.text else prefix)  # empty: noise
            self.stream.flush()
        elif isinstance(event, ev.Intent):
            slots = ", ".join(f"{k}={v}" for k, v in event.slots.items())
            self.stream.write(f"  [{event.name or 'not understood'}{' ' + slots if slots else ''}]\n")
        elif isinstance(event, ev.Reply):
            self.stream.write(f"< {event.text}\n")
            self.stream.flush()
        elif isinstance(event, ev.Error):
            print(f"error: {event.message}", file=sys.stderr)


class JsonLines:
    def __init__(self, stream=sys.stdout):
        self.stream = stream

    def __call__(self, event: ev.Event) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()


# --- running it ------------------------------------------------------------------------------

class Pipeline:
    """Starts and stops the threads; the caller's thread delivers events to the sinks."""

    def __init__(self, source, engine, config, sinks: List[Callable[[ev.Event], None]],
                 prompt: Optional[str] = None, muted: Callable[[], bool] = lambda: False,
                 responder=None, constrained: bool = False):
        self.source = source
        self.sinks = sinks
        self.responder = responder  # assistant mode: finals go on to intents and replies
        self.hotword = None  # hotword mode: see use_hotword()
        self.push_to_talk = None  # a hotword.PushToTalk thread
        self.closing: List[Callable[[], None]] = []  # what close() releases (speaker, chime, ...)
        self.events: "queue.Queue[ev.Event]" = queue.Queue(maxsize=EVENTS_QUEUE)
        self.decoder = Decoder(engine, self.emit, prompt, constrained=constrained,
                               min_logprob=config.asr.min_logprob, denoise=config.asr.denoise)
        self.listener = Listener(source, Segmenter(config.vad), self.decoder, self.emit,
                                 config.partials.interval_s, config.partials.enabled, muted)

    def use_hotword(self, hotword) -> None:
        """Hotword mode: the listener hears the microphone through `hotword` (a hotword.Hotword),
        and a command's final ends its turn."""
        from ..wake.turn import strip_wake_word

        self.hotword = self.listener.hotword = hotword
        self.decoder.clean = lambda text: strip_wake_word(text, hotword.word)
        if self.responder is not None:
            self.responder.on_handled = hotword.handled

    def emit(self, event: ev.Event) -> None:
        try:
            self.events.put(event, timeout=1.0)
        except queue.Full:  # a stuck sink must not stall the audio path
            log.warning("event queue full; dropped a %s event", event.type)

    def run(self) -> int:
        self.emit(ev.Listening(t=0.0))
        if self.responder is not None:
            self.responder.start()
        if self.push_to_talk is not None:
            self.push_to_talk.start()
        self.source.start()
        self.decoder.start()
        self.listener.start()
        try:
            while True:
                try:
                    event = self.events.get(timeout=0.2)  # events come at once; this paces _done()
                except queue.Empty:
                    if self._done():
                        return 0
                    continue
                for sink in self.sinks:
                    sink(event)
                if isinstance(event, ev.Final):
                    if self.responder is not None:
                        self.responder.submit(event)  # it tells the hotword when it is done
                    elif self.hotword is not None:
                        self.hotword.handled()
                elif isinstance(event, ev.Error) and self.hotword is not None:
                    self.hotword.handled()  # a final that failed: the command is over
        finally:
            self.stop()

    def _done(self) -> bool:
        """The source ended and every stage has finished its work (file input)."""
        return (self.listener.finished.is_set() and self.decoder.idle and self.events.empty()
                and (self.responder is None or not self.responder.busy))

    def stop(self) -> None:
        self.listener.stop()
        self.decoder.stop()
        self.source.stop()
        threads = [self.listener, self.decoder]
        if self.responder is not None:
            self.responder.stop()
            threads.append(self.responder)
        if self.push_to_talk is not None:
            self.push_to_talk.stop()
            threads.append(self.push_to_talk)
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=1.0)

    def close(self) -> None:
        """Release what the pipeline was built with (after run())."""
        for close in reversed(self.closing):
            close()


def build(config, source, load_engine, sinks: List[Callable[[ev.Event], None]], mode: str = "assistant",
          push_to_talk: bool = False) -> Pipeline:
    """The pipeline `python -m assistant` runs. Hotword mode when config.wake.word is not "none" or
    push_to_talk is set. Parts that can fail on a bad setting are made before the model loads."""
    from ..wake.turn import Chime, Hotword, PushToTalk

    hotword = config.wake.word != "none" or push_to_talk
    speaker = dispatcher = detector = chime = None
    closing: List[Callable[[], None]] = []
    prompt, muted = None, (lambda: False)
    try:
        if mode == "assistant":
            from ..intents.dispatcher import Dispatcher
            from .speaker import Speaker

            dispatcher = Dispatcher.from_config(config)
            closing.append(dispatcher.close)
            speaker = Speaker(config.speaker)
            closing.append(speaker.close)
            prompt = dispatcher.vocabulary_prompt() or None
            muted = speaker.muted  # half-duplex: the assistant never answers its own voice
        if config.wake.word != "none":
            from ..wake.detector import WakeDetector

            detector = WakeDetector(config.wake.word, config.wake.sensitivity.get(config.wake.word),
                                    config.wake.refractory_s)
            closing.append(detector.close)
        if hotword and config.wake.ack_sound is not None:
            from .speaker import SpeakerError

            try:
                chime = Chime(config.wake.ack_sound, config.speaker.device)
                closing.append(chime.close)
            except SpeakerError as e:  # no output device: the assistant still works, silently
                log.warning("no acknowledgement sound: %s", e)
        engine = load_engine(config)
        engine.warm_up()
        if dispatcher is not None and config.asr.grammar:
            from ..asr.grammar import use_intents

            use_intents(engine, dispatcher, config.asr)
    except BaseException:
        for close in reversed(closing):
            close()
        raise
    pipeline = Pipeline(source, engine, config, sinks, prompt=prompt, muted=muted,
                        constrained=dispatcher is not None and engine.grammar_ready)
    pipeline.closing = closing
    if dispatcher is not None:
        from .responder import Responder

        pipeline.responder = Responder(dispatcher, speaker, pipeline.emit)
    if hotword:
        pipeline.use_hotword(Hotword(config.wake, detector, pipeline.emit, speaker, chime,
                                     pipeline.listener.seg.frame_len, transcribe=pipeline.decoder.check))
        if push_to_talk:
            pipeline.push_to_talk = PushToTalk(pipeline.hotword.press)
    return pipeline


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def listen(config, load_engine, *, input: Optional[str] = None, fast: bool = False, mode: str = "assistant",
           events: str = "console", push_to_talk: bool = False) -> int:
    """Run the live assistant (`python -m assistant`) until the input ends or Ctrl-C / SIGTERM.
    input: a file played through the pipeline instead of the microphone (fast: not in real time);
    events: console (a live line) or jsonl (one JSON event a line on stdout)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ..audio.sources import FileSource, Microphone

    if input:
        source = FileSource(input, fast=fast)  # a bad file fails here, before the model loads
    else:
        source = Microphone(config.audio)
    triggers = [f'say "{config.wake.word.replace("_", " ")}"'] if config.wake.word != "none" else []
    triggers += ["press Enter"] if push_to_talk else []
    sinks = [JsonLines() if events == "jsonl" else ConsoleLine(waiting=" or ".join(triggers))]
    pipeline = build(config, source, load_engine, sinks, mode, push_to_talk)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM as Ctrl-C: stop every thread, exit 0
    try:
        return pipeline.run()
    except KeyboardInterrupt:
        return 0
    finally:
        pipeline.close()
