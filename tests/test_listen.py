"""The listening pipeline with real parts: PulseAudio's virtual microphone, webrtcvad, whisper.cpp."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import soundfile

from asr import DATA, ROOT, SPEECH, references
from assistant.audio import SAMPLE_RATE, load_audio
from assistant.wer import wer

CLIPS = ["cmu_arctic_us_axb_a0004.wav", "goforward.wav", "cmu_arctic_us_aew_a0003.wav"]


def noisy_utterances(path, clips=CLIPS, snr_db=15.0, gap_s=1.5):
    """Real utterances separated by pauses, with real cafe noise under all of it at snr_db."""
    gap = np.zeros(int(gap_s * SAMPLE_RATE), np.float32)
    speech = np.concatenate([gap] + [x for c in clips for x in (load_audio(SPEECH / c), gap)])
    noise = load_audio(DATA / "noise" / "cafe.flac")
    noise = np.tile(noise, speech.size // noise.size + 1)[: speech.size]
    voiced = np.concatenate([load_audio(SPEECH / c) for c in clips])
    gain = np.sqrt(np.mean(voiced ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    mixed = speech + gain * noise
    soundfile.write(str(path), mixed / max(1.0, np.abs(mixed).max()), SAMPLE_RATE)
    return path


class Assistant:
    """`python -m assistant` in a subprocess, its JSON events read as they come."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "assistant", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.events):
                return True
            if self.proc.poll() is not None:
                self._reader.join(2)
                return predicate(self.events)
            time.sleep(0.05)
        return False

    def of(self, kind):
        return [e for e in self.events if e["type"] == kind]

    def story(self) -> str:
        """The events in one short line each, for an assertion message (pytest truncates dicts)."""
        keys = ("text", "name", "slots", "state", "word", "message")
        return "\n".join(f"{e['t']:7.2f} {e['type']:12} " + " ".join(f"{k}={e[k]!r}" for k in keys if k in e)
                         for e in self.events)

    def interrupt(self) -> float:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)
        return time.monotonic() - start


def test_microphone_to_final_text_through_pulseaudio(pulse_audio, tmp_path):
    wav = noisy_utterances(tmp_path / "three.wav")
    a = Assistant("--mode", "transcribe", "--events", "jsonl", env=pulse_audio.env())
    try:
        assert a.wait_for(lambda ev: any(e["type"] == "listening" for e in ev), 120), a.proc.stderr.read()
        time.sleep(0.5)
        pulse_audio.play(wav).wait(timeout=60)
        assert a.wait_for(lambda ev: sum(e["type"] == "final" for e in ev) >= len(CLIPS), 30)
        time.sleep(1.0)  # nothing more should come from the trailing noise
    finally:
        stopped_in = a.interrupt()
    err = a.proc.stderr.read()
    assert a.proc.returncode == 0, err
    assert stopped_in < 1.0, f"SIGINT took {stopped_in:.2f} s to stop every thread"

    finals = a.of("final")
    assert len(finals) == len(CLIPS), [f["text"] for f in finals]
    refs = references()
    assert wer([(" ".join(refs[c] for c in CLIPS), " ".join(f["text"] for f in finals))]) <= 0.15
    # every final follows its speech_end, and partial text arrived while the person spoke
    types = [e["type"] for e in a.events]
    assert types[0] == "listening"
    for i, f in enumerate(finals):
        k = a.events.index(f)
        starts = [j for j in range(k) if types[j] == "speech_start"]
        assert starts, "a final without a speech_start"
        between = types[starts[-1]:k]
        assert "speech_end" in between and "partial" in between, between
        assert f["latency_ms"] >= 0 and f["decode_ms"] > 0 and 0 < f["audio_ctx"] <= 1500
    for e in a.events:
        assert {"type", "t", "wall"} <= set(e)
    for p in a.of("partial"):
        assert p["text"].startswith(p["stable"]) or not p["stable"]


def test_input_file_runs_the_same_pipeline_and_exits_0(tmp_path):
    wav = noisy_utterances(tmp_path / "three.wav")
    r = subprocess.run([sys.executable, "-m", "assistant", "--mode", "transcribe", "--events", "jsonl",
                        "--input", str(wav), "--fast"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert len(finals) == len(CLIPS), finals
    refs = references()
    assert wer([(" ".join(refs[c] for c in CLIPS), " ".join(finals))]) <= 0.15
    ends = [e["t"] for e in events if e["type"] == "speech_end"]
    assert ends == sorted(ends) and ends[-1] <= soundfile.info(str(wav)).duration


def test_sigint_while_listening_stops_within_a_second(pulse_audio):
    a = Assistant("--mode", "transcribe", "--events", "jsonl", env=pulse_audio.env())
    assert a.wait_for(lambda ev: any(e["type"] == "listening" for e in ev), 120)
    time.sleep(1.0)
    took = a.interrupt()
    assert a.proc.returncode == 0, a.proc.stderr.read()
    print(f"SIGINT to exit: {took:.3f} s")
    assert took < 1.0
