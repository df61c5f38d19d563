"""Final text -> intent -> action -> spoken reply.

A thread of its own, because handlers may take seconds (a command, a slow lookup) and the
decoder must keep listening meanwhile. The decoder hands it each final through submit() (a
bounded queue); once a final is dealt with (intent run, reply queued) on_handled tells the gate
(hotword mode). Both connections are made in app.py.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from . import events as ev
from ..intents.dispatcher import Dispatcher
from ..intents.timers import done_text
from ..asr.engine import heard_nothing

if TYPE_CHECKING:
    from .speaker import Speaker

log = logging.getLogger(__name__)


class Responder(threading.Thread):
    def __init__(self, dispatcher: Dispatcher, speaker: "Speaker", emit: Callable[[ev.Event], None],
                 on_handled: Optional[Callable[[], None]] = None):
        super().__init__(name="responder", daemon=True)
        self.dispatcher = dispatcher
        self.speaker = speaker
        self.emit = emit
        self.on_handled = on_handled  # after each final: intent run, reply queued (hotword mode)
        # unfinished_tasks counts a final from submit() until it is handled, the one in hand too
        self.finals: "queue.Queue[Optional[ev.Final]]" = queue.Queue(maxsize=4)
        self.context = dispatcher.context
        self.context.speak = self.say
        self.context.intents = dict(dispatcher.descriptions)
        self.context.timers.on_done(lambda timer: self.say(done_text(timer)))
        self._pending: dict = {}  # id(utterance) -> (speech_end wall, t) for the reply event
        self._lock = threading.Lock()
        speaker.on_start(self._reply_started)

    @property
    def busy(self) -> bool:
        return self.finals.unfinished_tasks > 0 or self.speaker.is_busy()

    def submit(self, final: ev.Final) -> None:
        try:
            self.finals.put_nowait(final)
        except queue.Full:  # the person talks faster than handlers answer: this one is dropped
            log.warning("responder queue full; dropped %r", final.text)
            self._handled()

    def stop(self) -> None:
        try:
            self.finals.put_nowait(None)
        except queue.Full:
            pass

    def say(self, text: str, end_wall: Optional[float] = None, t: float = 0.0) -> None:
        """Speak now (timers call this too, while idle); the reply event follows its audio."""
        try:
            utterance = self.speaker.say(text)
        except queue.Full:
            log.warning("speaker queue full; not saying %r", text)
            return
        with self._lock:
            self._pending[id(utterance)] = (end_wall, t, text)

    def _reply_started(self, utterance) -> None:
        with self._lock:
            end_wall, t, text = self._pending.pop(id(utterance), (None, 0.0, utterance.text))
        latency = (time.time() - end_wall) * 1000 if end_wall is not None else 0.0
        self.emit(ev.Reply(t=t, text=text, latency_ms=round(latency, 1)))

    def run(self) -> None:
        while True:
            final = self.finals.get()
            if final is None:
                return
            try:
                self._respond(final)
            finally:
                self.finals.task_done()
                self._handled()

    def _respond(self, final: ev.Final) -> None:
        if heard_nothing(final.text):  # "you", "Thank you." from a cough or noise: no "sorry ..."
            log.info("not answering %r: whisper's text for non-speech", final.text)
            return
        end_wall = final.wall - final.latency_ms / 1000
        result = self.dispatcher.handle(final.text, self.context)
        self.emit(ev.Intent(t=final.t, name=result.intent, slots=result.slots,
                            confidence=round(result.confidence, 3)))
        if result.data.get("stop"):
            self.speaker.stop()  # silence at once, and say nothing more
            return
        if result.reply:
            self.say(result.reply, end_wall, final.t)

    def _handled(self) -> None:
        if self.on_handled is not None:
            self.on_handled()
