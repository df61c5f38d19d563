"""The listening pipeline: source -> VAD -> whisper -> events.

One audio block's path:
  capture thread   Microphone / FileSource puts int16 blocks in a bounded queue
  listener thread  reads them, feeds the Segmenter (webrtcvad), emits speech_start / speech_end,
                   asks for partials on a cadence and for the final at the utterance's end
  decoder thread   owns every whisper call: partials (skipped when busy, aborted when a final
                   waits), the final, and a speculative final started in the hangover silence
  main thread      takes events from a bounded queue and hands them to the sinks
                   (console line or JSON lines; the intent dispatcher in assistant mode)
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from . import events as ev
from .partials import PartialText
from .vad import SpeechEnd, SpeechStart, Segmenter, TAIL_MS

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
EVENTS_QUEUE = 256


@dataclass
class _Job:
    kind: str  # partial | speculative | final | stop
    utterance: int
    audio: Optional[np.ndarray] = None
    end: Optional[SpeechEnd] = None
    end_wall: float = 0.0
    t: float = 0.0


class Decoder(threading.Thread):
    """The one thread that calls whisper. Finals never wait for a partial: a partial is only
    submitted when the decoder is idle, and aborts as soon as a final job arrives."""

    def __init__(self, engine, emit: Callable[[ev.Event], None], prompt: Optional[str] = None):
        super().__init__(name="decoder", daemon=True)
        self.engine = engine
        self.emit = emit
        self.prompt = prompt
        self.jobs: "queue.Queue[_Job]" = queue.Queue(maxsize=8)
        self._final_waiting = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._speculative = None  # (utterance, n_samples, transcript)
        self._partials: dict = {}

    @property
    def idle(self) -> bool:
        return self._idle.is_set() and self.jobs.empty()

    def partial(self, utterance: int, audio: np.ndarray, t: float) -> bool:
        if not self.idle:
            return False  # skipped: the engine is busy
        try:
            self.jobs.put_nowait(_Job("partial", utterance, audio, t=t))
            return True
        except queue.Full:
            return False

    def speculate(self, utterance: int, audio: np.ndarray) -> None:
        self._put(_Job("speculative", utterance, audio))

    def final(self, utterance: int, end: SpeechEnd, end_wall: float) -> None:
        self._final_waiting.set()
        self._put(_Job("final", utterance, end.audio, end=end, end_wall=end_wall, t=end.detected_at))

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
        from .whisper import Aborted

        while True:
            job = self.jobs.get()
            if job.kind == "stop":
                return
            self._idle.clear()
            try:
                if job.kind == "partial":
                    if self._final_waiting.is_set():
                        continue
                    try:
                        result = self.engine.transcribe_command(job.audio, prompt=self.prompt, abort=self._abort)
                    except Aborted:
                        continue
                    if result.text:
                        text, stable = self._partials.setdefault(job.utterance, PartialText()).update(result.text)
                        self.emit(ev.Partial(t=job.t, text=text, stable=stable))
                elif job.kind == "speculative":
                    try:
                        result = self.engine.transcribe_command(job.audio, prompt=self.prompt, abort=self._stopping.is_set)
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
                                                                    abort=self._stopping.is_set)
                        except Aborted:
                            return
                    self._speculative = None
                    latency = (time.time() - job.end_wall) * 1000
                    self.emit(ev.Final(t=job.t, text=result.text, latency_ms=round(latency, 1),
                                       audio_ctx=result.audio_ctx, decode_ms=round(result.decode_ms, 1)))
            except Exception as e:  # noqa: BLE001 - one bad decode must not stop listening
                log.exception("decode failed")
                self.emit(ev.Error(t=job.t, message=f"transcription failed: {e}"))
            finally:
                self._idle.set()


class Listener(threading.Thread):
    """Reads the source, runs the VAD, and drives the decoder."""

    def __init__(self, source, segmenter: Segmenter, decoder: Decoder, emit, partial_interval: float,
                 partials: bool = True, muted: Callable[[], bool] = lambda: False):
        super().__init__(name="listener", daemon=True)
        self.source = source
        self.seg = segmenter
        self.decoder = decoder
        self.emit = emit
        self.interval = partial_interval
        self.partials = partials
        self.muted = muted
        self.utterance = 0
        self.finished = threading.Event()  # end of the source, last utterance handed over
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        next_partial = 0.0
        speculated = False
        tail_s = TAIL_MS / 1000
        try:
            while not self._stopping.is_set():
                block = self.source.read(timeout=0.1)
                if block is None:
                    if self.source.finished:
                        break
                    continue
                if self.muted():
                    block = np.zeros_like(block)  # half-duplex: our own voice is not speech
                for result in self.seg.feed(block):
                    if isinstance(result, SpeechStart):
                        self.utterance += 1
                        next_partial = result.t + self.interval
                        speculated = False
                        self.emit(ev.SpeechStarted(t=round(result.t, 3)))
                    elif isinstance(result, SpeechEnd):
                        self._end(result)
                        if result.cut:  # a monologue goes on as a new utterance
                            self.utterance += 1
                            next_partial = self.seg.t + self.interval
                            speculated = False
                if not self.seg.in_speech:
                    continue
                silence = self.seg.silence_s
                if silence >= tail_s and not speculated:
                    # the utterance may end here: decode it now, used only if it does end here
                    self.decoder.speculate(self.utterance, self.seg.current_audio())
                    speculated = True
                elif silence < tail_s:
                    speculated = False
                    if self.partials and self.seg.t >= next_partial:
                        if self.decoder.partial(self.utterance, self.seg.current_audio(), self.seg.t):
                            next_partial = self.seg.t + self.interval
            for result in self.seg.flush():
                if isinstance(result, SpeechEnd):
                    self._end(result)
        finally:
            self.finished.set()

    def _end(self, end: SpeechEnd) -> None:
        wall = time.time()
        self.emit(ev.SpeechEnded(t=round(end.t, 3), wall=wall))
        self.decoder.final(self.utterance, end, wall)


# --- sinks ------------------------------------------------------------------------------------

class ConsoleLine:
    """One live line: partial text (stable part plain, tail dim) replaced by the final text."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.Listening):
            print("listening ... (Ctrl-C to stop)", file=sys.stderr)
        elif isinstance(event, ev.Partial) and self.tty:
            tail = event.text[len(event.stable):] if event.text.startswith(event.stable) else ""
            shown = event.stable + (f"\033[2m{tail}\033[0m" if tail else "")
            self.stream.write(f"\r\033[K... {shown}")
            self.stream.flush()
        elif isinstance(event, ev.Final):
            prefix = "\r\033[K" if self.tty else ""
            self.stream.write(f"{prefix}> {event.text}\n")
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
                 responder=None):
        self.source = source
        self.sinks = sinks
        self.responder = responder  # assistant mode: finals go on to intents and replies
        self.events: "queue.Queue[ev.Event]" = queue.Queue(maxsize=EVENTS_QUEUE)
        self.decoder = Decoder(engine, self.emit, prompt)
        self.listener = Listener(source, Segmenter(config.vad), self.decoder, self.emit,
                                 config.partials.interval_s, config.partials.enabled, muted)

    def emit(self, event: ev.Event) -> None:
        try:
            self.events.put(event, timeout=1.0)
        except queue.Full:  # a stuck sink must not stall the audio path
            log.warning("event queue full; dropped a %s event", event.type)

    def run(self) -> int:
        self.emit(ev.Listening(t=0.0))
        if self.responder is not None:
            self.responder.start()
        self.source.start()
        self.decoder.start()
        self.listener.start()
        try:
            while True:
                try:
                    event = self.events.get(timeout=0.05)
                except queue.Empty:
                    if self._done():
                        return 0
                    continue
                for sink in self.sinks:
                    sink(event)
                if self.responder is not None and isinstance(event, ev.Final):
                    self.responder.submit(event)
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
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=1.0)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv, description, add_common, load_config, load_engine) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("assistant", "transcribe"), default="assistant",
                        help="assistant: answer commands (default); transcribe: only show what it hears")
    parser.add_argument("--events", choices=("console", "jsonl"), default="console",
                        help="console: a live line (default); jsonl: one JSON event per line on stdout")
    parser.add_argument("--input", metavar="FILE", help="play a file through the pipeline instead of the microphone")
    parser.add_argument("--fast", action="store_true", help="with --input: as fast as it can go, not in real time")
    parser.add_argument("--device", help="input device: index or part of its name (default: audio.device)")
    add_common(parser)
    args = parser.parse_args(argv)
    config = load_config(args)
    if args.device is not None:
        config.audio.device = int(args.device) if args.device.isdigit() else args.device
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from .capture import FileSource, Microphone

    if args.input:
        source = FileSource(args.input, fast=args.fast)  # a bad file fails here, before the model loads
    else:
        source = Microphone(config.audio)
    speaker = dispatcher = responder = None
    prompt, muted = None, (lambda: False)
    if args.mode == "assistant":
        from .dispatch import Dispatcher
        from .respond import Responder
        from .speaker import Speaker

        dispatcher = Dispatcher.from_config(config)
        speaker = Speaker(config.speaker)
        prompt = dispatcher.vocabulary_prompt() or None
        muted = speaker.muted  # half-duplex: the assistant never answers its own voice
    engine = load_engine(config)
    engine.warm_up()
    sinks = [JsonLines() if args.events == "jsonl" else ConsoleLine()]
    pipeline = Pipeline(source, engine, config, sinks, prompt=prompt, muted=muted)
    if dispatcher is not None:
        pipeline.responder = Responder(dispatcher, speaker, pipeline.emit)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM as Ctrl-C: stop every thread, exit 0
    try:
        return pipeline.run()
    except KeyboardInterrupt:
        return 0
    finally:
        if speaker is not None:
            speaker.close()
        if dispatcher is not None:
            dispatcher.close()
