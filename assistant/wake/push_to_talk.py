"""Push-to-talk: Enter on standard input opens the microphone for one command (--push-to-talk)."""

from __future__ import annotations

import logging
import os
import selectors
import sys
import threading
from typing import IO, Any, Callable, Optional

log = logging.getLogger(__name__)

POLL_S = 0.1  # how often the stdin reader checks for stop()


class PushToTalk(threading.Thread):
    """Calls press() for every Enter on `stream` (stdin). select() with a timeout instead of a
    blocking readline(), so stop() ends the thread within POLL_S although no key is pressed."""

    def __init__(self, press: Callable[[], None], stream: Optional[IO[Any]] = None):
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
