"""The Segmenter on real speech: clips in real background noise with known silence around them.

"Known boundaries" of a clip are the benchmarks' speech bounds (benchmarks/common/signal.py:
the 10 ms frames, smoothed over 30 ms, 20 dB above the clip's own floor, kept 20-40 dB under its
peak); the clip is placed after PAD_S of background,
so the stream time of its speech is known exactly. Measured errors (default config, 30 ms frames):
start 0..-10 ms, end -140..+210 ms (goforward's final "s" is quieter than the VAD hears; the
audio's tail still covers it). The tolerances below leave room around those.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import webrtcvad

from assistant.audio import float_to_int16, load_audio
from assistant.config import VadConfig
from assistant.audio.vad import SAMPLE_RATE, Segmenter, SpeechEnd, SpeechStart
from benchmarks.common.signal import speech_bounds

DATA = Path(__file__).parent / "data"
SPEECH = DATA / "speech"
VAD = DATA / "vad"

PAD_S = 1.0  # background before the clip
AFTER_S = 1.5  # background after it (more than the hangover)
NOISE_DBFS = -55.0  # a quiet room
START_TOLERANCE_S = 0.06
END_TOLERANCE_S = 0.25

CLIPS = {
    "axb_a0004": SPEECH / "cmu_arctic_us_axb_a0004.wav",  # "Lord, but I'm glad to see you again, Phil."
    "axb_a0005": SPEECH / "cmu_arctic_us_axb_a0005.wav",  # "Will we ever forget it."
    "goforward": SPEECH / "goforward.wav",  # "go forward ten meters"
    "yes": VAD / "tflm_yes_1000ms.wav",  # one word
}


# --- helpers ---------------------------------------------------------------------------------


def background(n: int) -> np.ndarray:
    """n samples of real fridge hum at NOISE_DBFS (float32)."""
    noise = np.resize(load_audio(VAD / "fridge.flac"), n)
    return noise / np.sqrt(np.mean(noise**2)) * 10 ** (NOISE_DBFS / 20)


def in_room(*parts: np.ndarray) -> np.ndarray:
    """The parts one after another, over continuous background noise, as int16."""
    x = np.concatenate(parts)
    return float_to_int16(x + background(len(x)))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def segment(audio: np.ndarray, config: VadConfig = None, block: int = 480) -> list:
    seg = Segmenter(config)
    results = []
    for i in range(0, len(audio), block):
        results += seg.feed(audio[i : i + block])
    return results + seg.flush()


def starts(results) -> list:
    return [r for r in results if isinstance(r, SpeechStart)]


def ends(results) -> list:
    return [r for r in results if isinstance(r, SpeechEnd)]


# --- boundaries and pre-roll -----------------------------------------------------------------


@pytest.mark.parametrize("name", CLIPS)
def test_start_and_end_near_the_known_boundaries(name):
    clip = load_audio(CLIPS[name])
    begin, finish = speech_bounds(clip)
    results = segment(in_room(silence(PAD_S), clip, silence(AFTER_S)))

    assert [type(r) for r in results] == [SpeechStart, SpeechEnd]
    start, end = results
    assert abs(start.t - (PAD_S + begin)) <= START_TOLERANCE_S, (start.t - PAD_S, begin)
    assert abs(end.t - (PAD_S + finish)) <= END_TOLERANCE_S, (end.t - PAD_S, finish)
    # the utterance's audio holds all of the speech, and is exactly that stretch of the stream
    assert end.start < PAD_S + begin and end.start + end.duration >= PAD_S + finish
    assert end.detected_at == pytest.approx(end.t + VadConfig().hangover_ms / 1000, abs=0.031)


def test_pre_roll_keeps_the_first_word():
    clip = load_audio(CLIPS["axb_a0004"])
    begin, _ = speech_bounds(clip)
    stream = in_room(silence(PAD_S), clip, silence(AFTER_S))
    (end,) = ends(segment(stream))

    preroll = VadConfig().preroll_ms / 1000
    first = int(round(end.start * SAMPLE_RATE))
    assert end.start <= PAD_S + begin - preroll + 0.03  # begins a pre-roll before the first energy
    assert np.array_equal(end.audio, stream[first : first + len(end.audio)])  # the stream, unaltered
    onset = int((PAD_S + begin - end.start) * SAMPLE_RATE)
    head, word = end.audio[: onset - 480], end.audio[onset : onset + 4800]
    assert np.sqrt(np.mean(head.astype(float) ** 2)) * 10 < np.sqrt(np.mean(word.astype(float) ** 2))


def test_any_block_size_gives_the_same_utterances():
    stream = in_room(silence(PAD_S), load_audio(CLIPS["goforward"]), silence(AFTER_S))
    expected = [(type(r), r.t) for r in segment(stream, block=480)]
    for block in (1, 160, 317, 4096, len(stream)):
        assert [(type(r), r.t) for r in segment(stream, block=block)] == expected, block


def test_current_audio_is_the_utterance_so_far():
    stream = in_room(silence(PAD_S), load_audio(CLIPS["axb_a0004"]), silence(AFTER_S))
    seg = Segmenter()
    assert seg.current_audio() is None
    snapshot = None
    for i in range(0, len(stream), 480):
        for result in seg.feed(stream[i : i + 480]):
            if isinstance(result, SpeechEnd):
                final = result
        if seg.in_speech and seg.t > PAD_S + 1.0 and snapshot is None:
            snapshot = seg.current_audio()
    assert snapshot is not None and 0 < len(snapshot) < len(final.audio)
    assert np.array_equal(snapshot, final.audio[: len(snapshot)])


def test_flush_ends_the_utterance_at_the_end_of_the_stream():
    clip = load_audio(CLIPS["goforward"])[: int(2.0 * SAMPLE_RATE)]  # the stream stops in "meters"
    seg = Segmenter()
    stream = in_room(silence(PAD_S), clip)
    assert ends(seg.feed(stream)) == []
    (end,) = ends(seg.flush())
    assert end.start + end.duration == pytest.approx(len(stream) / SAMPLE_RATE, abs=0.031)
    assert seg.flush() == [] and not seg.in_speech


# --- pauses, clicks, short and long ----------------------------------------------------------


def test_a_long_hangover_bridges_a_pause_a_short_one_splits_there():
    # "go forward | ten meters": 1 s of silence put in the natural gap at 1.19 s
    clip = load_audio(CLIPS["goforward"])
    gap = int(1.19 * SAMPLE_RATE)
    stream = in_room(silence(PAD_S), clip[:gap], silence(1.0), clip[gap:], silence(AFTER_S))

    (whole,) = ends(segment(stream, VadConfig(hangover_ms=1200)))
    first, second = ends(segment(stream, VadConfig(hangover_ms=300)))
    assert whole.t > PAD_S + 2.0 + 1.0  # ends after "meters"
    assert PAD_S + 0.9 < first.t <= PAD_S + 1.19 + 0.03 < second.start  # split in the pause


def test_clicks_do_not_start_an_utterance():
    rng = np.random.default_rng(7)
    stream = silence(9.5)  # within the 10 s of background: no seam where it repeats
    shapes = [
        np.full(160, 0.8),  # a square pulse
        rng.uniform(-0.9, 0.9, 160),  # a burst of noise
        0.9 * np.exp(-np.arange(160) / 30) * np.sign(rng.normal(size=160)),  # a decaying crack
    ]
    for k in range(9):  # 10 ms impulses every second, at odd offsets against the frames
        at = int((0.5 + k) * SAMPLE_RATE) + 37 * k
        stream[at : at + 160] += shapes[k % 3]
    audio = in_room(stream)

    # webrtcvad alone holds each click for well over start_ms (its "overhang"): the trigger
    # has to do better than count its frames
    vad, frame = webrtcvad.Vad(VadConfig().aggressiveness), 480
    flags = [vad.is_speech(audio[i : i + frame].tobytes(), SAMPLE_RATE) for i in range(0, len(audio) - frame, frame)]
    assert max(_runs(flags)) * 30 > VadConfig().start_ms

    assert segment(audio) == []
    # and speech right after the clicks is still heard
    speech = in_room(stream, load_audio(CLIPS["yes"]), silence(AFTER_S))
    assert [type(r) for r in segment(speech)] == [SpeechStart, SpeechEnd]


def test_an_utterance_shorter_than_the_minimum_is_dropped():
    clip = load_audio(CLIPS["axb_a0004"])
    begin, _ = speech_bounds(clip)
    at = int(begin * SAMPLE_RATE)
    burst = clip[at : at + int(0.18 * SAMPLE_RATE)]  # 180 ms of "Lord"
    assert segment(in_room(silence(PAD_S), burst, silence(AFTER_S))) == []


def test_max_length_cuts_a_monologue_into_pieces_none_longer():
    # 26 s of one reader, LJ001-0001..0004 back to back (their own short pauses only)
    reading = np.concatenate([load_audio(SPEECH / f"LJ001-000{i}.wav") for i in range(1, 5)])
    stream = in_room(silence(PAD_S), reading, silence(AFTER_S))
    config = dataclasses.replace(VadConfig(), max_utterance_s=5.0)
    results = segment(stream, config)
    pieces = ends(results)

    assert len(starts(results)) == len(pieces) >= 26 // 5
    assert all(p.duration <= 5.0 for p in pieces), [p.duration for p in pieces]
    assert sum(p.cut for p in pieces) >= 3
    for a, b in zip(pieces, pieces[1:]):
        if a.cut:  # the next piece continues exactly where the cut was: nothing lost, no overlap
            assert b.start == pytest.approx(a.t)
    covered = sum(p.duration for p in pieces)
    assert covered > 0.9 * len(reading) / SAMPLE_RATE
    # cuts fall in the quiet between words: 30 ms around them is far below the speech
    def db(x):
        return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9)

    at_cuts = [db(stream[int(p.t * SAMPLE_RATE) - 240 : int(p.t * SAMPLE_RATE) + 240]) for p in pieces if p.cut]
    assert np.median(at_cuts) < db(float_to_int16(reading)) - 10, at_cuts


def test_config_is_checked():
    with pytest.raises(ValueError, match="frame_ms"):
        Segmenter(VadConfig(frame_ms=25))
    with pytest.raises(ValueError, match="aggressiveness"):
        Segmenter(VadConfig(aggressiveness=4))


def _runs(flags) -> list:
    runs, n = [0], 0
    for f in flags:
        n = n + 1 if f else 0
        runs.append(n)
    return runs


def test_muted_stretch_does_not_make_the_background_look_like_speech():
    """The half-duplex mute feeds zeros while the assistant speaks; the room's noise after it
    must not start an utterance (it did: the floor fell to the zeros)."""
    from assistant.audio import load_audio
    from assistant.config import VadConfig
    from assistant.audio.vad import Segmenter, SpeechStart

    noise = load_audio(Path(__file__).parent / "data" / "vad" / "fridge.flac")
    stream = np.concatenate([noise[:32000], np.zeros(32000, np.float32), noise[32000:]])
    seg = Segmenter(VadConfig())
    results = []
    for i in range(0, stream.size, 480):
        results += seg.feed(stream[i:i + 480])
    results += seg.flush()
    assert not [r for r in results if isinstance(r, SpeechStart)]
