"""Several named countdown timers, run by one thread.

One thread owns every timer: it sleeps until the next deadline (or until a
timer is started or cancelled) and calls the on_done callbacks when one ends.
So a finished timer is announced even while the assistant is idle, and close()
stops that one thread cleanly. The thread starts with the first timer.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timer:
    """A running timer (a snapshot: timers never change once started)."""

    id: int
    name: Optional[str]
    duration_s: float
    ends_at: float  # on the Timers clock (time.monotonic by default)

    @property
    def label(self) -> str:
        """How the timer is spoken of: "pasta timer", "5 minute timer"."""
        if self.name:
            return f"{self.name} timer"
        return f"{format_duration(self.duration_s, adjective=True)} timer"


DoneCallback = Callable[[Timer], None]


class Timers:
    """Named timers: start, remaining, cancel, and on_done when one ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._timers: Dict[int, Timer] = {}
        self._callbacks: List[DoneCallback] = []
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def on_done(self, callback: DoneCallback) -> None:
        """Call callback(timer) from the timer thread whenever a timer ends."""
        with self._cond:
            self._callbacks.append(callback)

    def start(self, duration_s: float, name: Optional[str] = None) -> Timer:
        """Start a timer. A timer with the same name is replaced (restarted)."""
        if duration_s <= 0:
            raise ValueError(f"timer duration must be positive, not {duration_s}")
        name = name.strip() if name else None
        with self._cond:
            if self._closed:
                raise RuntimeError("Timers is closed")
            if name:
                for old in self._find(name):
                    del self._timers[old.id]
            timer = Timer(next(self._ids), name or None, float(duration_s), self._clock() + duration_s)
            self._timers[timer.id] = timer
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return timer

    def get(self, name: Optional[str] = None) -> Optional[Timer]:
        """The timer with this name, or (no name) the one that ends soonest."""
        timers = self.active()
        if name is not None:
            timers = [t for t in timers if _same_name(t.name, name)]
        return timers[0] if timers else None

    def remaining(self, name: Optional[str] = None) -> Optional[float]:
        """Seconds left on the named timer (or the soonest), None if there is none."""
        timer = self.get(name)
        return None if timer is None else self.left(timer)

    def left(self, timer: Timer) -> float:
        return max(0.0, timer.ends_at - self._clock())

    def active(self) -> List[Timer]:
        """Running timers, soonest first."""
        with self._cond:
            return sorted(self._timers.values(), key=lambda t: (t.ends_at, t.id))

    def cancel(self, name: Optional[str] = None) -> List[Timer]:
        """Cancel the named timer, or every timer when name is None. Returns those cancelled."""
        with self._cond:
            gone = list(self._timers.values()) if name is None else self._find(name)
            for timer in gone:
                del self._timers[timer.id]
            self._cond.notify_all()
        return gone

    def cancel_all(self) -> List[Timer]:
        return self.cancel(None)

    def cancel_timer(self, timer: Timer) -> bool:
        """Cancel one timer by identity (two unnamed timers can share a label)."""
        with self._cond:
            found = self._timers.pop(timer.id, None) is not None
            self._cond.notify_all()
        return found

    def close(self) -> None:
        """Stop the timer thread; pending timers are dropped without firing."""
        with self._cond:
            self._closed = True
            self._timers.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    def __enter__(self) -> "Timers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _find(self, name: str) -> List[Timer]:
        return [t for t in self._timers.values() if _same_name(t.name, name)]

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = self._clock()
                due = [t for t in self._timers.values() if t.ends_at <= now]
                for timer in due:
                    del self._timers[timer.id]
                if not due:
                    nxt = min((t.ends_at for t in self._timers.values()), default=None)
                    self._cond.wait(None if nxt is None else max(0.0, nxt - now))
                    continue
                callbacks = list(self._callbacks)
            # Callbacks run without the lock, so they may start or cancel timers.
            for timer in sorted(due, key=lambda t: (t.ends_at, t.id)):
                for callback in callbacks:
                    try:
                        callback(timer)
                    except Exception:
                        _LOGGER.exception("timer on_done callback failed for %s", timer.label)


def _same_name(a: Optional[str], b: str) -> bool:
    return a is not None and a.casefold() == b.strip().casefold()


def done_text(timer: Timer) -> str:
    """What to say when a timer ends: "Your 5 minute timer is done."."""
    return f"Your {timer.label} is done."


def format_duration(seconds: float, adjective: bool = False) -> str:
    """Speakable duration: "2 minutes and 30 seconds"; adjective=True: "2 minute 30 second"."""
    total = int(round(seconds))
    if total <= 0:
        return f"{max(seconds, 0):g} second" if adjective else "less than a second"
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        count, total = divmod(total, size)
        if count:
            plural = "" if adjective or count == 1 else "s"
            parts.append(f"{count} {unit}{plural}")
    if adjective:
        return " ".join(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


__all__ = ["Timer", "Timers", "DoneCallback", "done_text", "format_duration"]
