"""The event contract: what the assistant reports, one JSON object per line.

Every event has `type`, `t` (seconds of audio since the stream began, so events can be matched
to the audio whatever the machine's speed) and `wall` (time.time() when the event was made,
so latencies can be measured against the clock). Construct events with keyword arguments:

    Final(t=3.2, text="turn on the lamp", latency_ms=410.0, audio_ctx=256, decode_ms=380.0).to_json()
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Optional, Type


@dataclass
class Event:
    type: ClassVar[str] = "event"
    t: float = 0.0
    wall: float = field(default_factory=time.time)

    def to_dict(self) -> Dict[str, Any]:
        # `type` first: a reader of the log sees what a line is before what it says.
        return {"type": self.type, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        """One line of JSON (no newline inside, none at the end)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(", ", ": "))


@dataclass
class Listening(Event):
    """The audio stream has begun (t=0)."""

    type: ClassVar[str] = "listening"


@dataclass
class SpeechStarted(Event):
    """The VAD heard speech begin; t is where the speech begins, not when it was noticed."""

    type: ClassVar[str] = "speech_start"


@dataclass
class SpeechEnded(Event):
    """The VAD heard speech end; t is where the VAD put the end of speech (before the hangover)."""

    type: ClassVar[str] = "speech_end"


@dataclass
class Partial(Event):
    """A provisional transcript of the utterance so far."""

    type: ClassVar[str] = "partial"
    text: str = ""
    stable: str = ""  # the leading part of text that later partials keep (see partials.py)


@dataclass
class Final(Event):
    """The transcript of a whole utterance."""

    type: ClassVar[str] = "final"
    text: str = ""
    latency_ms: float = 0.0  # from the VAD's end-of-speech decision (after the hangover) to this event
    audio_ctx: int = 0  # whisper encoder window used (frames of 20 ms)
    decode_ms: float = 0.0  # time spent in whisper itself
    # decoded held to the intents' grammar: what that cost in nats (the text is the grammar's
    # within asr.grammar_max_forced, else a free decode's); None: not held to a grammar
    forced: Optional[float] = None
    # mean log-probability of the text's tokens; a free decode below asr.min_logprob is taken
    # for noise and its text left empty
    logprob: float = 0.0


@dataclass
class Wake(Event):
    """The wake word was heard."""

    type: ClassVar[str] = "wake"
    word: str = ""
    score: float = 0.0


@dataclass
class State(Event):
    """The assistant changed state (e.g. idle, listening, thinking, speaking)."""

    type: ClassVar[str] = "state"
    state: str = ""


@dataclass
class Intent(Event):
    """A transcript was understood as an intent."""

    type: ClassVar[str] = "intent"
    name: Optional[str] = None  # None: not understood
    slots: Dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0


@dataclass
class Reply(Event):
    """The assistant's spoken answer."""

    type: ClassVar[str] = "reply"
    text: str = ""
    latency_ms: float = 0.0  # from the end-of-speech decision to the start of the reply's audio


@dataclass
class Error(Event):
    """Something failed; the message is one line for a person to read."""

    type: ClassVar[str] = "error"
    message: str = ""


EVENT_TYPES: Dict[str, Type[Event]] = {
    cls.type: cls
    for cls in (Listening, SpeechStarted, SpeechEnded, Partial, Final, Wake, State, Intent, Reply, Error)
}


def from_dict(data: Dict[str, Any]) -> Event:
    """The event a to_dict() (or a parsed JSON line) describes; unknown types are a ValueError."""
    data = dict(data)
    kind = data.pop("type", None)
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}")
    return cls(**data)


def from_json(line: str) -> Event:
    return from_dict(json.loads(line))
