"""PulseAudio in user space with virtual devices: the real capture path without a sound card.

The recipe is ../shared/notes/virtual-audio.md:
- null sink `vspk`: where the assistant speaks (record it from `vspk.monitor`);
- null sink `vmic_sink`: what a test "says" (`paplay --device=vmic_sink clip.wav`);
- source `vmic`, remapped from `vmic_sink.monitor`: the default source, i.e. the assistant's microphone.

PortAudio reaches PulseAudio through ALSA's `pulse` plugin, which finds the server through
XDG_RUNTIME_DIR; so that variable is set in this process's environment and is inherited by every
subprocess (paplay, pactl, parecord).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

# A second test run beside another one (or CI) can have a daemon of its own.
RUNTIME_DIR = os.environ.get("TEST_PULSE_RUNTIME_DIR", "/tmp/pulse-run")
MIC_SINK = "vmic_sink"  # play here to speak into the assistant's microphone
MIC_SOURCE = "vmic"  # the assistant's microphone (default source)
SPEAKER_SINK = "vspk"  # the assistant's speaker (default sink)
SPEAKER_MONITOR = "vspk.monitor"

INSTALL_HINT = "apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"

# The daemon quits by itself this long after its last client leaves, so a test run leaves no
# process behind and never has to kill a server that another test session may be using.
EXIT_IDLE_S = 30

_MODULES = (
    ("sink", SPEAKER_SINK, f"module-null-sink sink_name={SPEAKER_SINK}"),
    ("sink", MIC_SINK, f"module-null-sink sink_name={MIC_SINK}"),
    ("source", MIC_SOURCE, f"module-remap-source master={MIC_SINK}.monitor source_name={MIC_SOURCE}"),
)


class PulseError(RuntimeError):
    """PulseAudio cannot be found or started; the message says what to install or check."""


def env() -> dict:
    """The environment for subprocesses that talk to the test PulseAudio."""
    return {**os.environ, "XDG_RUNTIME_DIR": RUNTIME_DIR}


def ensure() -> None:
    """Make the virtual devices exist and be the defaults; start the daemon if none answers."""
    os.environ["XDG_RUNTIME_DIR"] = RUNTIME_DIR
    Path(RUNTIME_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing:
        raise PulseError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    if not _answers():
        _start()
    _load_missing_modules()
    _pactl("set-default-source", MIC_SOURCE)
    _pactl("set-default-sink", SPEAKER_SINK)
    _refresh_portaudio()


def hold() -> subprocess.Popen:
    """A client that stays connected (`pactl subscribe`) until terminated: the daemon quits
    EXIT_IDLE_S after its last client leaves, and a test session can go longer than that between
    tests that use it (CI once lost it that way halfway through)."""
    return subprocess.Popen(["pactl", "subscribe"], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def play(path: os.PathLike | str, device: str = MIC_SINK) -> subprocess.Popen:
    """Start playing a sound file into a sink (by default: into the microphone); returns the process."""
    return subprocess.Popen(
        ["paplay", f"--device={device}", str(path)],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _answers() -> bool:
    return _run(["pactl", "info"], check=False).returncode == 0


def _start() -> None:
    args = ["pulseaudio", "--daemonize=yes", f"--exit-idle-time={EXIT_IDLE_S}", "-n",
            "--load=module-native-protocol-unix"]
    args += [f"--load={module}" for _, _, module in _MODULES]
    result = _run(args, check=False)
    # Another test session may have started it in the meantime: what counts is that one answers.
    deadline = time.monotonic() + 5.0
    while not _answers():
        if time.monotonic() > deadline:
            raise PulseError(f"pulseaudio did not start: {result.stderr.strip() or 'no message'}")
        time.sleep(0.05)


def _load_missing_modules() -> None:
    # A daemon started some other way may lack our devices: add only what is missing.
    for kind, name, module in _MODULES:
        listed = _run(["pactl", "list", "short", f"{kind}s"]).stdout.split("\n")
        if not any(line.split("\t")[1:2] == [name] for line in listed):
            _pactl("load-module", *module.split())


def _refresh_portaudio() -> None:
    # PortAudio lists devices once, when it is initialised (on `import sounddevice`); if that
    # happened before the server ran, ALSA's `pulse` device is missing until it re-initialises.
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def _pactl(*args: str) -> None:
    _run(["pactl", *args])


def _run(args: Sequence[str], check: bool = True, timeout: Optional[float] = 10.0):
    try:
        result = subprocess.run(args, env=env(), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise PulseError(f"{args[0]} not found: {INSTALL_HINT}") from None
    if check and result.returncode != 0:
        raise PulseError(f"{' '.join(args)} failed: {result.stderr.strip()}")
    return result
