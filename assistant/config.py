"""The assistant's configuration: typed, frozen sections read from config.yaml.

Each section of the YAML file is one frozen dataclass below that checks its own values when it
is made (__post_init__): a key the dataclass does not have, a value of the wrong type or one out
of range is a ConfigError naming the key ("vad.frame_ms must be 10, 20 or 30, not 25"), and
load() adds the file. So every configuration error is one line, raised before anything loads.
Values that depend on the machine (a device that is not there, a Piper voice that is not
installed) are checked by the component that uses them.

Which file: --config FILE, else the user's config.yaml (user_dir()) if it exists, else the
default that ships inside the package (assistant/data/config.yaml). Command-line overrides make
new sections with dataclasses.replace, which checks them again.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Union

import yaml

from . import data
from .audio import SAMPLE_RATE
from .errors import ConfigError

DEFAULT_PATH = data.default_config()
# pymicro-wakeword's models (wake/detector.py; tests/test_config.py checks they match). Written
# out so that reading a config does not load TFLite.
WAKE_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")
SPEAKER_ENGINES = ("pyttsx3", "piper", "none")
MAX_AUDIO_CTX = 1500  # whisper's encoder window: 30 s of 20 ms frames
MAX_DECODE_S = 30.0  # whisper hears at most 30 s at once
MISSING_DEFAULT = "the default configuration is missing from the installed package (reinstall it)"


class _Section:
    """What the sections share: their name in the file, and one way to say a value is wrong."""

    section: ClassVar[str] = ""

    def _check(self, key: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ConfigError(f"{self.section}.{key} must be {rule}, not {getattr(self, key)!r}")

    def _device(self, key: str) -> None:
        value = getattr(self, key)
        self._check(key, value is None or (isinstance(value, int) and value >= 0) or
                    (isinstance(value, str) and value.strip() != ""),
                    "null (the default), a device index >= 0 or part of a device's name")


def _finite(x: float, low: float, high: float = math.inf, low_open: bool = False) -> bool:
    """low <= x <= high (low < x with low_open), and a number: nan is never in range."""
    return math.isfinite(x) and (low < x if low_open else low <= x) and x <= high


@dataclass(frozen=True)
class AsrConfig(_Section):
    section: ClassVar[str] = "asr"

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

    def __post_init__(self) -> None:
        self._check("model", self.model.strip() != "", "a model name (tiny.en, ...) or a ggml file")
        self._check("threads", self.threads >= 0, ">= 0 (0 = the cores available, at most 4)")
        self._check("language", self.language.strip() != "", "a whisper language code (en, de, ...)")
        self._check("audio_ctx_floor", 1 <= self.audio_ctx_floor <= MAX_AUDIO_CTX,
                    f"1 to {MAX_AUDIO_CTX} encoder frames")
        self._check("audio_ctx_margin", 0 <= self.audio_ctx_margin <= MAX_AUDIO_CTX,
                    f"0 to {MAX_AUDIO_CTX} encoder frames")
        self._check("window_s", _finite(self.window_s, 1.0, MAX_DECODE_S), f"1 to {MAX_DECODE_S:g} seconds")
        self._check("grammar_max_forced", _finite(self.grammar_max_forced, 0.0), "a number of nats >= 0")
        self._check("grammar_max_forced_per_word", _finite(self.grammar_max_forced_per_word, 0.0),
                    "a number of nats >= 0")
        self._check("grammar_beam", self.grammar_beam >= 1, ">= 1 (1 = greedy)")
        self._check("min_logprob", self.min_logprob <= 0, "a log-probability <= 0 (-.inf keeps every text)")


@dataclass(frozen=True)
class AudioConfig(_Section):
    section: ClassVar[str] = "audio"

    device: Optional[Union[str, int]] = None  # None = the system's default input
    sample_rate: int = SAMPLE_RATE
    queue_frames: int = 500  # bounded capture queue, in blocks
    block_ms: int = 30

    def __post_init__(self) -> None:
        self._device("device")
        self._check("sample_rate", self.sample_rate == SAMPLE_RATE,
                    f"{SAMPLE_RATE} (what webrtcvad and whisper take; devices at other rates are resampled)")
        self._check("queue_frames", self.queue_frames >= 1, ">= 1 block")
        self._check("block_ms", 1 <= self.block_ms <= 1000, "1 to 1000 milliseconds")


@dataclass(frozen=True)
class VadConfig(_Section):
    section: ClassVar[str] = "vad"

    frame_ms: int = 30
    aggressiveness: int = 2
    preroll_ms: int = 300
    start_ms: int = 90  # voiced audio needed to start an utterance (ignores clicks)
    hangover_ms: int = 480  # measured: see assistant/audio/vad.py
    min_utterance_ms: int = 250
    max_utterance_s: float = 15.0

    def __post_init__(self) -> None:
        self._check("frame_ms", self.frame_ms in (10, 20, 30), "10, 20 or 30 (what webrtcvad takes)")
        self._check("aggressiveness", 0 <= self.aggressiveness <= 3, "0 (keeps most audio) to 3 (strictest)")
        self._check("max_utterance_s", _finite(self.max_utterance_s, 0.0, MAX_DECODE_S, low_open=True),
                    f"more than 0 and at most {MAX_DECODE_S:g} seconds (what whisper hears at once)")
        longest = round(self.max_utterance_s * 1000)
        for key in ("preroll_ms", "start_ms", "hangover_ms", "min_utterance_ms"):
            self._check(key, 0 <= getattr(self, key) <= longest,
                        f"0 to {longest} milliseconds (vad.max_utterance_s)")


@dataclass(frozen=True)
class PartialsConfig(_Section):
    section: ClassVar[str] = "partials"

    enabled: bool = True
    interval_s: float = 0.5

    def __post_init__(self) -> None:
        self._check("interval_s", _finite(self.interval_s, 0.0, low_open=True), "a number of seconds > 0")


@dataclass(frozen=True)
class IntentsConfig(_Section):
    section: ClassVar[str] = "intents"

    # Folders of the user's own packs, loaded after the built-in ones; relative to the config
    # file's folder.
    paths: List[str] = field(default_factory=list)
    fuzzy_threshold: float = 0.8
    fuzzy_margin: float = 0.05  # refuse a fuzzy match when the runner-up intent is this close
    handler_timeout_s: float = 5.0
    not_understood: str = "Sorry, I didn't understand."
    failed: str = "Sorry, that failed."
    vocabulary_prompt: bool = True
    # allow-list: name -> [program, args...] (a string is split as a shell would, but never run by one)
    commands: Dict[str, Union[List[Union[str, int, float]], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in self.paths:
            self._check("paths", path.strip() != "", "a list of folders (no empty names)")
        self._check("fuzzy_threshold", _finite(self.fuzzy_threshold, 0.0, 1.0), "a similarity from 0 to 1")
        self._check("fuzzy_margin", _finite(self.fuzzy_margin, 0.0, 1.0), "a similarity from 0 to 1")
        self._check("handler_timeout_s", _finite(self.handler_timeout_s, 0.0, low_open=True),
                    "a number of seconds > 0")
        for command, argv in self.commands.items():
            if not argv or not str(command).strip():
                raise ConfigError(f"intents.commands.{command} must be a program and its fixed "
                                  f"arguments, [program, args...], not {argv!r}")


@dataclass(frozen=True)
class SpeakerConfig(_Section):
    section: ClassVar[str] = "speaker"

    engine: str = "pyttsx3"  # pyttsx3 | piper | none
    voice: Optional[str] = None
    rate: int = 175
    piper_model: Optional[str] = None
    tail_ms: int = 300  # half-duplex: captured audio ignored this long after speech ends
    device: Optional[Union[str, int]] = None  # output device; None = the system's default output
    queue_size: int = 8  # replies waiting to be spoken; say() raises queue.Full beyond this

    def __post_init__(self) -> None:
        if self.engine not in SPEAKER_ENGINES:
            raise ConfigError(f"unknown speaker.engine {self.engine!r} (known: {', '.join(SPEAKER_ENGINES)})")
        self._check("rate", self.rate >= 1, "words per minute, >= 1")
        self._check("tail_ms", self.tail_ms >= 0, "a number of milliseconds >= 0")
        self._device("device")
        self._check("queue_size", self.queue_size >= 1, ">= 1 reply")


@dataclass(frozen=True)
class WakeConfig(_Section):
    section: ClassVar[str] = "wake"

    word: str = "none"  # none | okay_nabu | hey_jarvis | alexa | hey_mycroft
    sensitivity: Dict[str, float] = field(default_factory=dict)  # word -> probability cutoff
    refractory_s: float = 2.0
    listen_timeout_s: float = 5.0
    follow_up_s: float = 0.0
    ack_sound: Optional[str] = "beep"
    verify: List[str] = field(default_factory=lambda: ["alexa"])  # words whisper double-checks

    def __post_init__(self) -> None:
        words = ", ".join(WAKE_WORDS)
        self._check("word", self.word == "none" or self.word in WAKE_WORDS, f"none or one of {words}")
        for word, cutoff in self.sensitivity.items():
            if word not in WAKE_WORDS:
                raise ConfigError(f"wake.sensitivity.{word} is not a wake word ({words})")
            if not (math.isfinite(cutoff) and 0 < cutoff < 1):
                raise ConfigError(f"wake.sensitivity.{word} must be a probability cutoff between 0 and 1 "
                                  f"(exclusive), not {cutoff!r}")
        self._check("refractory_s", _finite(self.refractory_s, 0.0), "a number of seconds >= 0")
        self._check("listen_timeout_s", _finite(self.listen_timeout_s, 0.0, low_open=True),
                    "a number of seconds > 0")
        self._check("follow_up_s", _finite(self.follow_up_s, 0.0), "a number of seconds >= 0 (0 = no follow-up)")
        for word in self.verify:
            if word not in WAKE_WORDS:
                raise ConfigError(f"wake.verify lists {word!r}, not a wake word ({words})")
        sound = self.ack_sound
        if sound not in (None, "beep") and not Path(str(sound)).expanduser().is_file():
            raise ConfigError(f"wake.ack_sound must be beep, null or a WAV file; {sound!r} is not a file")


@dataclass(frozen=True)
class Config:
    asr: AsrConfig = field(default_factory=AsrConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    partials: PartialsConfig = field(default_factory=PartialsConfig)
    intents: IntentsConfig = field(default_factory=IntentsConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    path: Optional[Path] = None  # the file this was read from (relative intents.paths start at its folder)


# --- where the files are -------------------------------------------------------------------


def user_dir() -> Path:
    """The user's own config.yaml and intents live here: ASSISTANT_CONFIG_DIR, else the
    platform's config folder (~/.config/assistant on Linux)."""
    override = os.environ.get("ASSISTANT_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("assistant"))


def user_config() -> Path:
    return user_dir() / "config.yaml"


def locate(path: Union[str, os.PathLike, None] = None) -> Path:
    """The file to read: path, else the user's config.yaml if it exists, else the default."""
    if path is not None:
        return Path(path)
    user = user_config()
    return user if user.is_file() else DEFAULT_PATH


def user_copy() -> str:
    """The default config.yaml's text for `config init`: every key and comment, with
    intents.paths listing the intents folder next to the copy."""
    if not DEFAULT_PATH.is_file():
        raise ConfigError(f"{DEFAULT_PATH}: {MISSING_DEFAULT}")
    text, n = re.subn(r"^(  paths:) \[\]$", r"\1 [intents]", DEFAULT_PATH.read_text(encoding="utf-8"),
                      flags=re.MULTILINE)
    if n != 1:
        raise ConfigError(f"{DEFAULT_PATH}: expected one 'paths: []' line under intents:, found {n}")
    return text


# --- reading --------------------------------------------------------------------------------


def load(path: Union[str, os.PathLike, None] = None) -> Config:
    """Read and check a config file (None: see locate()). Every error is one ConfigError line
    that names the file and, for a bad value, the key."""
    file = locate(path)
    if not file.is_file():
        if path is None:  # the packaged default is gone: a broken install, not the user's doing
            raise ConfigError(f"{file}: {MISSING_DEFAULT}")
        raise ConfigError(f"{file}: config file not found")
    try:
        values = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file}: cannot read: {e}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{file}: not valid YAML{line}: {problem}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections")
    return from_dict(values, source=str(file), path=file)


def from_dict(values: Dict[str, Any], source: str = "<config>", path: Optional[Path] = None) -> Config:
    """A Config from the YAML's mapping; errors start with `source`."""
    sections = {}
    hints = typing.get_type_hints(Config)
    for name, body in values.items():
        if name == "path" or name not in hints:
            raise ConfigError(f"{source}: unknown section '{name}' (known: {', '.join(section_names())})")
        sections[name] = _section(hints[name], name, {} if body is None else body, source)
    return Config(**sections, path=path)


def section_names() -> List[str]:
    return [f.name for f in dataclasses.fields(Config) if f.name != "path"]


def _section(cls: type, name: str, values: Any, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {name} must be a mapping of keys, not {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{name}.{key}' (known: {', '.join(known)})")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"{source}: {name}.{key} must be {_type_name(hints[key])}, not {value!r}")
    try:
        return cls(**values)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _type_ok(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return any(_type_ok(value, h) for h in args)
    if origin is list:
        return isinstance(value, list) and all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_type_ok(k, args[0]) and _type_ok(v, args[1])
                                               for k, v in value.items())
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    raise TypeError(f"config: no type check for {hint!r}")  # a new kind of field needs one here


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        return " or ".join(_type_name(h) for h in args)
    if origin is list:
        return f"a list of ({_type_name(args[0])})"
    if origin is dict:
        return f"a mapping of ({_type_name(args[0])}) to ({_type_name(args[1])})"
    return {type(None): "null", float: "a number", int: "an integer", str: "a string",
            bool: "true or false"}.get(hint, str(hint))
