"""Sinks: where the pipeline's events are shown. The main thread hands each event to every sink
in turn (app.py Pipeline.run), so a sink needs no locking; a slow one delays the display only:
no stage waits for it beyond the event queue's bound, and no control decision goes through it.

A sink is any callable that takes an event (the Sink protocol): ConsoleLine (a live line for a
person), JsonLines (one JSON object a line, the contract in events.py), or e.g. `list.append`.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from . import events as ev


class Sink(Protocol):
    def __call__(self, event: ev.Event, /) -> None:  # any one-argument callable is a sink
        """Show one event; called from the main thread, in the order the events were made."""


class ConsoleLine:
    """One live line: partial text (stable part plain, tail dim) replaced by the final text;
    hotword states and wakes on stderr."""

    STATES = {"waiting": "waiting: {waiting}", "listening": "listening ...", "transcribing": "transcribing ...",
              "speaking": "speaking (the wake word interrupts)", "follow_up": "listening for a follow-up ..."}

    def __init__(self, stream: TextIO = sys.stdout, waiting: str = "say the wake word or press Enter"):
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
    """--events jsonl: one event a line, flushed per line."""

    def __init__(self, stream: TextIO = sys.stdout):
        self.stream = stream

    def __call__(self, event: ev.Event) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()
