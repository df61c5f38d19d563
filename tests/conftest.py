"""Shared pytest fixtures, one section per subsystem (add yours under its own header)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --- helpers shared with the benchmarks: `benchmarks.common` (one definition of where speech is) --

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # `python -m pytest` has it already; a bare `pytest` does not
    sys.path.insert(0, ROOT)

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
