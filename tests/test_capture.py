"""Capture through real devices: PulseAudio's virtual microphone (see tests/pulse.py), and files.

`pulse_audio.play(clip)` plays into the sink whose monitor is the default source, so what it
plays is what a Microphone on the default device hears, through PortAudio and ALSA's pulse
plugin, as on a machine with a sound card. The PulseAudio server may be shared with other test
runs; the checks look for *our* sound (by correlation or by its frequency), not for silence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from assistant.audio import float_to_int16, load_audio
from assistant.audio.sources import CaptureError, FileSource, Microphone, list_input_devices
from assistant.config import AudioConfig

DATA = Path(__file__).parent / "data"
CLIP = DATA / "speech" / "goforward.wav"  # "go forward ten meters", 2.8 s, 16 kHz
WORD = DATA / "vad" / "tflm_yes_1000ms.wav"  # "yes", 1 s: what the microphone tests play
RATE = 16000
FIRST_BLOCK_S = 10.0  # PortAudio + the pulse plugin can take a second or more to deliver audio


def play_and_record(pulse_audio, mic: Microphone, path: Path) -> np.ndarray:
    """Play a file into the microphone; everything the microphone delivers meanwhile (float32)."""
    player = pulse_audio.play(path)
    blocks, deadline = [], None
    while deadline is None or time.monotonic() < deadline:
        block = mic.read(timeout=0.05)
        if block is not None:
            blocks.append(block)
        if deadline is None and player.poll() is not None:
            assert player.returncode == 0, player.stderr.read()
            deadline = time.monotonic() + 0.3  # what was played last is still on its way
    return np.concatenate(blocks).astype(np.float32) / 32768 if blocks else np.zeros(0, np.float32)


def wait_for_audio(mic: Microphone) -> None:
    assert mic.read(timeout=FIRST_BLOCK_S) is not None, "the microphone delivered nothing"


def find(clip: np.ndarray, audio: np.ndarray) -> tuple:
    """(offset, normalised correlation) of the best match of clip inside audio."""
    assert len(audio) >= len(clip), f"captured {len(audio) / RATE:.2f} s, less than the clip"
    n = 1 << (len(audio) + len(clip)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(audio, n) * np.conj(np.fft.rfft(clip, n)), n)[: len(audio) - len(clip) + 1]
    at = int(np.argmax(corr))
    part = audio[at : at + len(clip)]
    return at, float(corr[at] / (np.linalg.norm(part) * np.linalg.norm(clip) + 1e-12))


def tone_level(block: np.ndarray, hz: float = 1000.0) -> float:
    """Share of the block's energy at `hz` (1.0 = a pure tone)."""
    x = block.astype(np.float64)
    t = np.arange(len(x)) / RATE
    c, s = np.dot(x, np.cos(2 * np.pi * hz * t)), np.dot(x, np.sin(2 * np.pi * hz * t))
    return float(2 * (c * c + s * s) / len(x) / (np.dot(x, x) + 1e-9))


# --- the microphone --------------------------------------------------------------------------


@pytest.mark.parametrize("device_rate", [None, 48000], ids=["16k", "48k-resampled"])
def test_microphone_hears_what_is_played(pulse_audio, device_rate):
    clip = load_audio(WORD)
    with Microphone(AudioConfig(), device_rate=device_rate) as mic:
        assert mic.samplerate == (device_rate or RATE)
        wait_for_audio(mic)
        audio = play_and_record(pulse_audio, mic, WORD)
    at, similarity = find(clip, audio)
    # the clip, at 16 kHz (a wrong rate would smear the correlation), soon after it was played
    assert similarity > 0.9, similarity
    assert at / RATE < 1.0
    assert mic.dropped == 0


def test_a_stalled_consumer_loses_the_oldest_blocks_and_recovers(pulse_audio, tmp_path):
    tone = tmp_path / "tone.wav"
    soundfile.write(tone, 0.3 * np.sin(2 * np.pi * 1000 * np.arange(int(0.3 * RATE)) / RATE), RATE)
    config = AudioConfig(queue_frames=10, block_ms=30)  # room for 0.3 s
    with Microphone(config) as mic:
        wait_for_audio(mic)
        while mic.read(timeout=0) is not None:  # start from an empty queue
            pass
        stalled = time.monotonic()
        pulse_audio.play(tone).wait(timeout=10)  # 0.3 s of tone, then the consumer stalls 2 s more
        time.sleep(2.0)
        arrived = (time.monotonic() - stalled) / 0.03  # blocks delivered meanwhile

        kept = [mic.read(timeout=0) for _ in range(config.queue_frames)]
        assert all(block is not None for block in kept)
        # all but the last 10 blocks were dropped, the oldest first: the tone is gone
        assert arrived - 10 - 10 <= mic.dropped <= arrived - 10 + 2, (mic.dropped, arrived)
        assert max(tone_level(b) for b in kept) < 0.5, "the tone (the oldest audio) was kept"

        # and it goes on: fresh audio flows again, in real time
        audio = play_and_record(pulse_audio, mic, WORD)
    assert find(load_audio(WORD), audio)[1] > 0.9


def test_a_device_that_does_not_exist_is_a_clear_error(pulse_audio):
    with pytest.raises(CaptureError) as error:
        Microphone(AudioConfig(device="no-such-microphone-42")).start()
    message = str(error.value)
    assert "no-such-microphone-42" in message and "\n" not in message
    assert "default" in message  # it says which devices there are

    with pytest.raises(CaptureError, match="999"):
        Microphone(AudioConfig(device=999)).start()


def test_devices_are_listed_and_found_by_name(pulse_audio):
    devices = list_input_devices()
    assert any(d.is_default for d in devices)
    assert any(d.name == "pulse" for d in devices)
    with Microphone(AudioConfig(device="PULS")) as mic:  # part of the name, any case
        assert mic.device.name == "pulse"
    while mic.read(timeout=0.5) is not None:  # stopped: what was queued, then the end
        pass
    assert mic.finished


# --- files -----------------------------------------------------------------------------------


def read_all(source) -> np.ndarray:
    blocks = []
    while not source.finished:
        block = source.read(timeout=1.0)
        if block is not None:
            blocks.append(block)
    return np.concatenate(blocks)


def test_a_file_plays_in_real_time_or_fast_with_the_same_audio():
    expected = float_to_int16(load_audio(WORD))
    duration = len(expected) / RATE  # 1 s

    began = time.monotonic()
    with FileSource(WORD) as paced:
        paced_audio = read_all(paced)
    paced_s = time.monotonic() - began

    began = time.monotonic()
    with FileSource(WORD, AudioConfig(queue_frames=4), fast=True) as fast:  # tiny queue: put waits
        fast_audio = read_all(fast)
    fast_s = time.monotonic() - began

    assert 0.95 * duration <= paced_s <= duration + 0.4, (paced_s, duration)
    assert fast_s < 0.2 * duration, fast_s
    assert np.array_equal(paced_audio, expected) and np.array_equal(fast_audio, expected)
    assert paced.dropped == fast.dropped == 0
    assert paced.read(timeout=0) is None and paced.finished


def test_a_file_at_any_rate_and_channels_becomes_16k_mono(tmp_path):
    mono = load_audio(CLIP)
    import soxr

    stereo = np.stack([mono, 0.5 * mono], axis=1)
    path = tmp_path / "stereo_44k.flac"
    soundfile.write(path, soxr.resample(stereo, RATE, 44100), 44100)
    with FileSource(path, fast=True) as source:
        audio = read_all(source).astype(np.float32) / 32768
    assert abs(len(audio) - len(mono)) <= 2
    assert find(0.75 * mono[: len(audio) - 2], audio)[1] > 0.99


def test_stop_ends_a_file_early_and_cleanly():
    source = FileSource(CLIP)
    source.start()
    assert source.read(timeout=1.0) is not None
    source.stop()
    assert source._thread is not None and not source._thread.is_alive()
    while source.read(timeout=0) is not None:
        pass
    assert source.finished


def test_no_input_device_at_all_is_a_clear_error(tmp_path):
    # A process that cannot reach any sound server (and, here, has no sound card) sees no inputs.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "PULSE_SERVER": f"unix:{tmp_path}/none"}
    code = ("from assistant.audio.sources import Microphone, list_input_devices\n"
            "if list_input_devices(): print('HAS-DEVICES'); raise SystemExit\n"
            "Microphone()\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    if "HAS-DEVICES" in done.stdout:
        pytest.skip("this machine has a sound card")
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("assistant.errors.CaptureError: no audio input device found"), done.stderr
