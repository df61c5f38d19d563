"""The composition root: the one place the pipeline's threads and queues are made and connected.

    source -> listener (gate, VAD) -> decoder -> [responder -> speaker]
                  |                     |             |
                  '----------- display events --------'--> main thread -> sinks

  capture thread   a Source (assistant/audio/sources.py) puts int16 blocks in a bounded queue
  listener thread  listener.py: the gate (gates.py: always open, or hotword mode) says what the
                   VAD hears; the Segmenter cuts utterances; it asks for partials, a speculative
                   final and the final
  decoder thread   decoder.py: every whisper call, one typed job at a time
  responder thread responder.py (assistant mode): intent, action, reply for each final
  speaker thread   speaker.py (assistant mode): synthesises and plays the replies
  main thread      Pipeline.run: takes display events from one bounded queue, hands them to the
                   sinks (sinks.py)

Control never travels with the display events: the decoder hands each final straight to the
responder (assistant mode) or tells the gate that the command was handled (transcribe mode); the
responder tells the gate once it has dealt with a final. A sink that stalls delays the display,
never the turn-taking.
"""

from __future__ import annotations

import functools
import logging
import queue
import signal
import sys
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

from . import events as ev
from .decoder import Decoder, Trace
from .gates import AlwaysOpenGate, Gate, HotwordGate
from .listener import Listener, Source
from .sinks import ConsoleLine, JsonLines, Sink
from ..audio.vad import Segmenter
from ..config import Config

if TYPE_CHECKING:
    from .responder import Responder
    from .speaker import Speaker
    from ..intents.dispatcher import Dispatcher
    from ..wake.chime import Chime
    from ..wake.detector import WakeDetector
    from ..wake.push_to_talk import PushToTalk
    from ..wake.turn import TurnTaking

log = logging.getLogger(__name__)

EVENTS_QUEUE = 256
EMIT_TIMEOUT_S = 1.0  # a display event waits this long for room, then is dropped (and logged)


class Pipeline:
    """The threads of one run, connected. Always listening from its first four arguments (what a
    benchmark builds: `engine` may be anything with Engine's transcribe_command and warm_up);
    the keyword parts make it the assistant:

      dispatcher, speaker   assistant mode: finals go on to intents and spoken replies
      detector, chime       hotword mode with a wake word (the chime acknowledges it)
      push_to_talk          hotword mode (also) opened by Enter on stdin
      prompt, constrained   whisper's vocabulary prompt; finals held to the intents' grammar
      speculate             False: no speculative final in the hangover
      decoder_trace         the decoder's trace hook (decoder.py)
      closing               what close() releases (the parts build() made)

    run() delivers the events to the sinks on the caller's thread until the source ends
    (or KeyboardInterrupt); close() afterwards.
    """

    def __init__(self, source: Source, engine, config: Config, sinks: Sequence[Sink], *,
                 speculate: bool = True, decoder_trace: Optional[Trace] = None,
                 prompt: Optional[str] = None, constrained: bool = False,
                 dispatcher: Optional["Dispatcher"] = None, speaker: Optional["Speaker"] = None,
                 detector: Optional["WakeDetector"] = None, chime: Optional["Chime"] = None,
                 push_to_talk: bool = False, closing: Sequence[Callable[[], None]] = ()):
        if (dispatcher is None) != (speaker is None):
            raise ValueError("assistant mode takes a dispatcher and a speaker, transcription neither")
        self.source = source
        self.sinks = list(sinks)
        self.closing = list(closing)
        self.events: "queue.Queue[ev.Event]" = queue.Queue(maxsize=EVENTS_QUEUE)
        segmenter = Segmenter(config.vad)

        # The gate: hotword mode with a wake word or push-to-talk, else always open.
        self.turn: Optional["TurnTaking"] = None
        self.gate: Gate
        clean: Callable[[str], str] = _verbatim
        if detector is not None or push_to_talk:
            from ..wake.turn import TurnTaking, strip_wake_word

            self.turn = TurnTaking(config.wake, detector, self.emit, speaker, chime, segmenter.frame_len)
            # The gate's second opinion is a decoder job; the decoder is made below.
            self.gate = HotwordGate(self.turn, speaker, check=lambda audio, answer: self.decoder.check(audio, answer))
            clean = functools.partial(strip_wake_word, word=self.turn.word)
        else:
            self.gate = AlwaysOpenGate(speaker)

        # Control hand-offs: a final goes to the responder, which tells the gate when it is done;
        # without one the final itself ends the command.
        self.responder: Optional["Responder"] = None
        on_final: Callable[[ev.Final], None]
        if dispatcher is not None and speaker is not None:
            from .responder import Responder

            self.responder = Responder(dispatcher, speaker, self.emit, on_handled=self.gate.handled)
            on_final = self.responder.submit
        else:
            on_final = self._handled

        self.decoder = Decoder(engine, self.emit, on_final=on_final, on_final_failed=self.gate.handled,
                               prompt=prompt, clean=clean, constrained=constrained,
                               min_logprob=config.asr.min_logprob, denoise=config.asr.denoise, trace=decoder_trace)
        self.listener = Listener(source, segmenter, self.decoder, self.gate, self.emit,
                                 partial_interval=config.partials.interval_s, partials=config.partials.enabled,
                                 speculate=speculate)
        self.push_to_talk: Optional["PushToTalk"] = None
        if push_to_talk and self.turn is not None:
            from ..wake.push_to_talk import PushToTalk

            self.push_to_talk = PushToTalk(self.turn.press)

    def _handled(self, final: ev.Final) -> None:
        """Transcription: the final itself ends the command (hotword mode: back to waiting)."""
        self.gate.handled()

    def emit(self, event: ev.Event) -> None:
        """Any thread: a display event for the sinks."""
        try:
            self.events.put(event, timeout=EMIT_TIMEOUT_S)
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


def _verbatim(text: str) -> str:
    return text


def build(config: Config, source: Source, load_engine: Callable[[Config], Any], sinks: Sequence[Sink],
          mode: str = "assistant", push_to_talk: bool = False) -> Pipeline:
    """The pipeline `python -m assistant` runs. Hotword mode when config.wake.word is not "none" or
    push_to_talk is set. Parts that can fail on a bad setting are made before the model loads."""
    hotword = config.wake.word != "none" or push_to_talk
    speaker = dispatcher = detector = chime = None
    closing: List[Callable[[], None]] = []
    prompt = None
    try:
        if mode == "assistant":
            from ..intents.dispatcher import Dispatcher
            from .speaker import Speaker

            dispatcher = Dispatcher.from_config(config)
            closing.append(dispatcher.close)
            # engine none prints each reply; on stderr, since stdout carries the events (JSON lines
            # must stay parseable; the console line shows the reply itself)
            speaker = Speaker(config.speaker, file=sys.stderr)
            closing.append(speaker.close)
            prompt = dispatcher.vocabulary_prompt() or None
        if config.wake.word != "none":
            from ..wake.detector import WakeDetector

            detector = WakeDetector(config.wake.word, config.wake.sensitivity.get(config.wake.word),
                                    config.wake.refractory_s)
            closing.append(detector.close)
        if hotword and config.wake.ack_sound is not None:
            from ..errors import SpeakerError
            from ..wake.chime import Chime

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
        return Pipeline(source, engine, config, sinks, prompt=prompt,
                        constrained=dispatcher is not None and engine.grammar_ready,
                        dispatcher=dispatcher, speaker=speaker, detector=detector, chime=chime,
                        push_to_talk=push_to_talk, closing=closing)
    except BaseException:
        for close in reversed(closing):
            close()
        raise


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def listen(config, load_engine, *, input: Optional[str] = None, fast: bool = False, mode: str = "assistant",
           events: str = "console", push_to_talk: bool = False) -> int:
    """Run the live assistant (`python -m assistant`) until the input ends or Ctrl-C / SIGTERM.
    input: a file played through the pipeline instead of the microphone (fast: not in real time);
    events: console (a live line) or jsonl (one JSON event a line on stdout)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from ..audio.sources import FileSource, Microphone

    source: Source
    if input:
        source = FileSource(input, fast=fast)  # a bad file fails here, before the model loads
    else:
        source = Microphone(config.audio)
    triggers = [f'say "{config.wake.word.replace("_", " ")}"'] if config.wake.word != "none" else []
    triggers += ["press Enter"] if push_to_talk else []
    sink: Sink = JsonLines() if events == "jsonl" else ConsoleLine(waiting=" or ".join(triggers))
    pipeline = build(config, source, load_engine, [sink], mode, push_to_talk)
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM as Ctrl-C: stop every thread, exit 0
    try:
        return pipeline.run()
    except KeyboardInterrupt:
        return 0
    finally:
        pipeline.close()
