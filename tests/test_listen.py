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
from assistant.asr.wer import wer

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
    """`python -m assistant` in a subprocess, its JSON events and its stderr read as they come."""

    def __init__(self, *args, env=None, stdin=None):
        self.proc = subprocess.Popen([sys.executable, "-m", "assistant", *args], cwd=ROOT, env=env, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events, self._stderr = [], []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._errors = threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True)
        self._reader.start()
        self._errors.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def stderr(self) -> str:
        """What it wrote to stderr so far (all of it once it has exited)."""
        if self.proc.poll() is not None:
            self._errors.join(2)
        return "".join(self._stderr)

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
        took = time.monotonic() - start
        self._reader.join(2)
        return took


def test_microphone_to_final_text_through_pulseaudio(pulse_audio, tmp_path):
    wav = noisy_utterances(tmp_path / "three.wav")
    a = Assistant("--mode", "transcribe", "--events", "jsonl", env=pulse_audio.env())
    try:
        assert a.wait_for(lambda ev: any(e["type"] == "listening" for e in ev), 120), a.stderr()
        time.sleep(0.5)
        pulse_audio.play(wav).wait(timeout=60)
        assert a.wait_for(lambda ev: sum(e["type"] == "final" for e in ev) >= len(CLIPS), 30)
        time.sleep(1.0)  # nothing more should come from the trailing noise
    finally:
        stopped_in = a.interrupt()
    err = a.stderr()
    assert a.proc.returncode == 0, err
    assert stopped_in < 1.0, f"SIGINT took {stopped_in:.2f} s to stop every thread"

    finals = a.of("final")
    # cafe babble the VAD takes for speech ends in a final with no text (whisper's guess at it,
    # "I", is dropped by asr.min_logprob): see test_babble_after_speech_is_not_transcribed
    heard = [f for f in finals if f["text"]]
    assert len(heard) == len(CLIPS), [f["text"] for f in finals]
    refs = references()
    assert wer([(" ".join(refs[c] for c in CLIPS), " ".join(f["text"] for f in heard))]) <= 0.15
    # every final follows its speech_end, and partial text arrived while the person spoke
    types = [e["type"] for e in a.events]
    assert types[0] == "listening"
    for f in finals:
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


def test_json_lines_stay_json_when_replies_are_only_printed(tmp_path):
    """speaker.engine none prints each reply; with --events jsonl, stdout is the event stream and
    every line of it must parse, so the printed reply goes to stderr."""
    config = tmp_path / "config.yaml"
    config.write_text("speaker:\n  engine: none\n")
    command = DATA / "commands" / "set_an_egg_timer_for_three_minutes.wav"
    r = subprocess.run([sys.executable, "-m", "assistant", "--events", "jsonl", "--config", str(config),
                        "--input", str(command), "--fast"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    replies = [e["text"] for e in events if e["type"] == "reply"]
    assert len(replies) == 1 and "3 minutes" in replies[0], events
    assert replies[0] in r.stderr


def test_babble_after_speech_is_not_transcribed(tmp_path):
    """The cafe noise under noisy_utterances holds babble that webrtcvad takes for speech. With
    the stream starting 3 ms later (in CI: where the capture's 30 ms frames happened to fall
    against playback) the VAD cuts the babble after the last sentence as an utterance of its
    own, and tiny.en guesses "I'm" at it (mean token log-probability -2.5; real speech -0.1 to
    -0.8). That final must have no text; the three sentences keep theirs."""
    x, rate = soundfile.read(str(noisy_utterances(tmp_path / "three.wav")), dtype="float32")
    wav = tmp_path / "offset.wav"
    soundfile.write(str(wav), np.concatenate([np.zeros(int(0.503 * rate), np.float32), x,
                                              np.zeros(2 * rate, np.float32)]), rate)
    r = subprocess.run([sys.executable, "-m", "assistant", "--mode", "transcribe", "--events", "jsonl",
                        "--input", str(wav), "--fast"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    finals = [e for e in map(json.loads, r.stdout.splitlines()) if e["type"] == "final"]
    heard = [f["text"] for f in finals if f["text"]]
    assert len(heard) == len(CLIPS), [(f["text"], f["logprob"]) for f in finals]
    assert wer([(" ".join(references()[c] for c in CLIPS), " ".join(heard))]) <= 0.15


def test_sigint_while_listening_stops_within_a_second(pulse_audio):
    a = Assistant("--mode", "transcribe", "--events", "jsonl", env=pulse_audio.env())
    assert a.wait_for(lambda ev: any(e["type"] == "listening" for e in ev), 120)
    time.sleep(1.0)
    took = a.interrupt()
    assert a.proc.returncode == 0, a.stderr()
    print(f"SIGINT to exit: {took:.3f} s")
    assert took < 1.0


# --- the decoder thread: never idle while a job is in hand, never held up by a wrong guess --------


class CountingEngine:
    """The real engine, with a record of each call's outcome (text or "aborted")."""

    def __init__(self, engine):
        self.engine, self.calls = engine, []

    def transcribe_command(self, audio, **kw):
        from assistant.asr.engine import Aborted

        start = time.monotonic()
        try:
            result = self.engine.transcribe_command(audio, **kw)
        except Aborted:
            self.calls.append(("aborted", len(audio), time.monotonic() - start))
            raise
        self.calls.append((result.text, len(audio), time.monotonic() - start))
        return result


def long_speech() -> np.ndarray:
    """25 s of real speech (LJSpeech), int16."""
    audio = np.concatenate([load_audio(c) for c in sorted(SPEECH.glob("LJ001-000*.wav"))])
    return (audio[: 25 * SAMPLE_RATE] * 32767).astype(np.int16)


def test_decoder_is_not_idle_while_a_job_is_in_hand():
    """Pipeline._done() asks decoder.idle: a job taken from the queue but not finished is work."""
    from asr import engine
    from assistant.pipeline.decoder import Decoder

    d = Decoder(engine(), lambda e: None)
    assert d.idle
    assert d.partial(1, long_speech()[:SAMPLE_RATE], 1.0)
    d.jobs.get()  # what the decoder thread does first; it is busy from here to task_done()
    assert not d.idle
    d.jobs.task_done()
    assert d.idle


def test_a_wrong_speculation_is_aborted_and_the_final_does_not_wait_for_it():
    """A speculation on 25 s of speech, then a final on different audio: the speculation is
    aborted, and the final comes before the speculation alone would have finished. (whisper.cpp
    asks its abort callback only once the encoder has run: 0.7 s for 25 s of audio here, ~0.1 s
    for a 3 s command; the decoding after it is what the abort saves.)"""
    from asr import engine
    from assistant.pipeline.decoder import Decoder
    from assistant.audio.vad import SpeechEnd
    from assistant.pipeline import events as ev

    counting = CountingEngine(engine())
    finals = []
    d = Decoder(counting, lambda e: finals.append((time.monotonic(), e)) if isinstance(e, ev.Final) else None)
    d.start()
    try:
        speech = long_speech()
        short = speech[: 2 * SAMPLE_RATE]
        start = time.monotonic()
        engine().transcribe_command(speech)
        whole = time.monotonic() - start  # what the final would wait for without the abort
        d.speculate(1, speech)
        time.sleep(0.1)  # the speculation is under way
        put = time.monotonic()
        d.final(1, SpeechEnd(t=2.0, audio=short, start=0.0, detected_at=2.5), time.time())
        deadline = time.monotonic() + 30
        while not finals and time.monotonic() < deadline:
            time.sleep(0.01)
        assert finals, counting.calls
        took = finals[0][0] - put
        assert counting.calls[0][0] == "aborted", counting.calls
        assert counting.calls[1][1] == len(short)
        own = counting.calls[1][2]
        print(f"speculation aborted after {counting.calls[0][2]:.2f} s of {whole:.2f}; "
              f"final in {took:.2f} s (its own decode {own:.2f} s)")
        assert took < whole - 0.1 + own
    finally:
        d.stop()
        d.join(5)


def test_speech_resuming_drops_a_speculation_and_a_matching_final_reuses_it():
    from asr import engine
    from assistant.pipeline.decoder import Decoder
    from assistant.audio.vad import SpeechEnd
    from assistant.pipeline import events as ev

    counting = CountingEngine(engine())
    finals = []
    d = Decoder(counting, lambda e: finals.append(e) if isinstance(e, ev.Final) else None)
    d.start()
    try:
        speech = long_speech()
        d.speculate(1, speech)
        time.sleep(0.1)
        d.unspeculate()  # the person went on speaking
        d.speculate(2, speech[: 2 * SAMPLE_RATE])  # a later pause; the utterance ends there
        d.final(2, SpeechEnd(t=2.0, audio=speech[: 2 * SAMPLE_RATE], start=0.0, detected_at=2.5), time.time())
        deadline = time.monotonic() + 30
        while not finals and time.monotonic() < deadline:
            time.sleep(0.01)
        assert finals and finals[0].text, counting.calls
        assert [c[0] == "aborted" for c in counting.calls] == [True, False], counting.calls  # one decode, reused
    finally:
        d.stop()
        d.join(5)


def test_stop_ends_the_job_in_hand_and_skips_the_rest_but_a_check_is_always_answered():
    """An aborted job ends that job; only stop() ends the thread, and a check queued behind is
    answered (with nothing) rather than left waiting."""
    from asr import engine
    from assistant.pipeline.decoder import Decoder

    trace, answers = [], []
    d = Decoder(engine(), lambda e: None, trace=lambda phase, job: trace.append((phase, job.kind)))
    d.start()
    try:
        speech = long_speech()
        d.speculate(1, speech)  # seconds of work
        d.check(speech[: 2 * SAMPLE_RATE], answers.append)
        time.sleep(0.1)
        start = time.monotonic()
        d.stop()
        d.join(5)
        assert not d.is_alive()
        print(f"stop() to the end of the thread: {time.monotonic() - start:.2f} s")
    finally:
        d.stop()
    assert trace == [("start", "speculative"), ("aborted", "speculative"), ("start", "check"), ("skipped", "check")]
    assert answers == [""]


def test_the_pipeline_built_from_parts_traces_its_jobs_with_and_without_speculation(tmp_path):
    """Pipeline(source, engine, config, sinks, speculate=..., decoder_trace=...): the always-listening
    pipeline a benchmark builds, with no module global or private attribute touched. Every job the
    trace sees starts once and ends once; without speculation no speculative job is made, and the
    finals are the same."""
    from asr import engine
    from assistant import config as config_mod
    from assistant.audio.sources import FileSource
    from assistant.pipeline import events as ev
    from assistant.pipeline.app import Pipeline

    wav = noisy_utterances(tmp_path / "three.wav")
    finals = {}
    for speculate in (True, False):
        trace: list = []
        events: list = []

        def record(phase, job, trace=trace):
            trace.append((phase, job))

        pipeline = Pipeline(FileSource(str(wav), fast=True), engine(), config_mod.Config(), [events.append],
                            speculate=speculate, decoder_trace=record)
        assert pipeline.run() == 0
        starts = [job for phase, job in trace if phase == "start"]
        ends = [job for phase, job in trace if phase != "start"]
        assert starts == ends and all(phase in ("start", "done", "aborted", "skipped") for phase, _ in trace)
        kinds = [job.kind for job in starts]
        assert ("speculative" in kinds) == speculate, kinds
        assert kinds.count("final") == len(CLIPS) and all(job.utterance > 0 for job in starts)
        finals[speculate] = [e.text for e in events if isinstance(e, ev.Final)]
    assert finals[True] == finals[False] and len(finals[True]) == len(CLIPS), finals
