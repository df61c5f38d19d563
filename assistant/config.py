"""The assistant's configuration: typed sections read from config.yaml.

Each section of the YAML file is one dataclass below; a key the dataclass does not
have, or a value of the wrong type, is a ConfigError naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from .errors import ConfigError

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.yaml"


@dataclass
class AsrConfig:
    model: str = "tiny.en"
    threads: int = 0  # 0 = the cores available, at most 4
    use_gpu: bool = True
    language: str = "en"
    audio_ctx_floor: int = 256  # smallest encoder window (frames of 20 ms) for short audio
    audio_ctx_margin: int = 64  # frames added to the audio's own length
    window_s: float = 30.0  # long files are transcribed in windows of this length
    grammar: bool = True  # hold a command's final decode to the intents' sentences
    grammar_max_forced: float = 7.0  # nats; above, the grammar's text is dropped for a free decode
    grammar_max_forced_per_word: float = 2.5  # nats per word of the grammar's text; the same
    grammar_beam: int = 4  # sentences the grammar's search keeps in the running
    denoise: bool = True  # finals: subtract the pre-roll's noise spectrum first
    min_logprob: float = -1.2  # a free decode's mean token log-probability below this is noise


@dataclass
class AudioConfig:
    device: Optional[Union[str, int]] = None  # None = the system's default input
    sample_rate: int = 16000
    queue_frames: int = 500  # bounded capture queue, in blocks
    block_ms: int = 30


@dataclass
class VadConfig:
    frame_ms: int = 30
    aggressiveness: int = 2
    preroll_ms: int = 300
    start_ms: int = 90  # voiced audio needed to start an utterance (ignores clicks)
    hangover_ms: int = 480  # measured: see assistant/vad.py
    min_utterance_ms: int = 250
    max_utterance_s: float = 15.0


@dataclass
class PartialsConfig:
    enabled: bool = True
    interval_s: float = 0.5


@dataclass
class IntentsConfig:
    paths: list = field(default_factory=lambda: ["intents"])
    fuzzy_threshold: float = 0.8
    fuzzy_margin: float = 0.05  # refuse a fuzzy match when the runner-up intent is this close
    handler_timeout_s: float = 5.0
    not_understood: str = "Sorry, I didn't understand."
    failed: str = "Sorry, that failed."
    vocabulary_prompt: bool = True
    commands: dict = field(default_factory=dict)  # allow-list: name -> [program, args...]


@dataclass
class SpeakerConfig:
    engine: str = "pyttsx3"  # pyttsx3 | piper | none
    voice: Optional[str] = None
    rate: int = 175
    piper_model: Optional[str] = None
    tail_ms: int = 300  # half-duplex: captured audio ignored this long after speech ends
    device: Optional[Union[str, int]] = None  # output device; None = the system's default output
    queue_size: int = 8  # replies waiting to be spoken; say() raises queue.Full beyond this


@dataclass
class WakeConfig:
    word: str = "none"  # none | okay_nabu | hey_jarvis | alexa | hey_mycroft
    sensitivity: dict = field(default_factory=dict)  # word -> probability cutoff
    refractory_s: float = 2.0
    listen_timeout_s: float = 5.0
    follow_up_s: float = 0.0
    ack_sound: Optional[str] = "beep"
    verify: list = field(default_factory=lambda: ["alexa"])  # words whisper double-checks


@dataclass
class Config:
    asr: AsrConfig = field(default_factory=AsrConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    partials: PartialsConfig = field(default_factory=PartialsConfig)
    intents: IntentsConfig = field(default_factory=IntentsConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    path: Optional[Path] = None  # the file this was read from


def load(path: Union[str, os.PathLike, None] = None) -> Config:
    """Read a config file; None reads the default config.yaml (or defaults if it is absent)."""
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_PATH
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return Config()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    config = from_dict(data, source=str(path))
    config.path = path
    return config


def from_dict(data: dict, source: str = "<config>") -> Config:
    sections = {}
    hints = typing.get_type_hints(Config)
    for name, values in data.items():
        if name == "path" or name not in hints:
            raise ConfigError(f"{source}: unknown section '{name}' (known: {', '.join(_section_names())})")
        sections[name] = _section(hints[name], name, values or {}, source)
    return Config(**sections)


def _section_names() -> list:
    return [f.name for f in dataclasses.fields(Config) if f.name != "path"]


def _section(cls: type, name: str, values: Any, source: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: '{name}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{source}: unknown key '{name}.{key}' (known: {', '.join(known)})")
        if not _type_ok(value, hints[key]):
            raise ConfigError(
                f"{source}: '{name}.{key}' must be {_type_name(hints[key])}, not {value!r}"
            )
    return cls(**values)


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is Union:
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (list, dict, str, bool):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Union:
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return {type(None): "null", float: "a number", int: "an integer", str: "a string",
            bool: "true or false", list: "a list", dict: "a mapping"}.get(hint, str(hint))


def check(condition: bool, config: Config, key: str, message: str) -> None:
    """Raise a ConfigError for a value that has the right type but is out of range."""
    if not condition:
        raise ConfigError(f"{config.path or '<config>'}: '{key}' {message}")
