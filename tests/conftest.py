"""Shared pytest fixtures, one section per subsystem (add yours under its own header)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# --- helpers shared with the benchmarks: `benchmarks.common` (one definition of where speech is) --

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # `python -m pytest` has it already; a bare `pytest` does not
    sys.path.insert(0, ROOT)

# --- configuration: the tests never read the user's own config.yaml or intents -------------------

# config.load() reads ASSISTANT_CONFIG_DIR/config.yaml before the packaged default; an empty
# folder here keeps a developer's own settings out of every test and every CLI a test runs.
os.environ["ASSISTANT_CONFIG_DIR"] = tempfile.mkdtemp(prefix="assistant-config-")
atexit.register(shutil.rmtree, os.environ["ASSISTANT_CONFIG_DIR"], ignore_errors=True)

# --- audio devices: PulseAudio's virtual microphone and speaker (tests/pulse.py) -------------


@pytest.fixture(scope="session")
def pulse_audio():
    """A running PulseAudio whose default source is `vmic` (what `pulse.play(clip)` plays into
    `vmic_sink` is what a Microphone hears) and default sink `vspk`; started if none answers.
    Yields the `pulse` helper module."""
    import pulse

    try:
        pulse.ensure()
    except pulse.PulseError as e:
        pytest.fail(str(e), pytrace=False)
    client = pulse.hold()  # keeps the daemon from quitting while idle between tests
    try:
        yield pulse
    finally:
        client.terminate()
        client.wait(5)
