"""The transcription engine on real speech: word error rate, timestamps, formats, sample rates."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile
import srt
import webvtt

from asr import SPEECH, engine, model_path, references, run_cli
from assistant.audio import SAMPLE_RATE, load_audio, resample
from assistant.asr.subtitles import cues, render
from assistant.asr.wer import wer
from assistant.asr.engine import FULL_AUDIO_CTX, windows

CLIPS = sorted(references())
SHORT = [c for c in CLIPS if soundfile.info(str(SPEECH / c)).duration < 4.5]


@pytest.fixture(scope="module")
def audio():
    return {name: load_audio(SPEECH / name) for name in CLIPS}


@pytest.fixture(scope="module")
def engine_alone(audio):
    """The bare engine: pywhispercpp's Model with its own defaults (30 s window), same audio."""
    from pywhispercpp.model import Model

    model = Model(str(model_path()), n_threads=2, print_progress=False, redirect_whispercpp_logs_to=None)
    return {name: " ".join(s.text for s in model.transcribe(a)) for name, a in audio.items()}


def test_wer_matches_the_engine_alone(audio, engine_alone):
    refs = references()
    ours = {name: engine().transcribe(a).text for name, a in audio.items()}
    base_wer = wer((refs[n], engine_alone[n]) for n in CLIPS)
    our_wer = wer((refs[n], ours[n]) for n in CLIPS)
    print(f"WER on {len(CLIPS)} real clips: engine alone {base_wer:.3f}, assistant {our_wer:.3f}")
    assert base_wer < 0.2, "tiny.en should do far better than this on clean read speech"
    assert our_wer <= base_wer + 0.01


def test_sized_audio_ctx_keeps_the_words_of_short_commands(audio, engine_alone):
    refs = references()
    sized = {n: engine().transcribe_command(audio[n]) for n in SHORT}
    fell_back = [n for n, t in sized.items() if t.audio_ctx == FULL_AUDIO_CTX]
    assert len(fell_back) <= len(SHORT) // 5, f"repetition fallback on too many clips: {fell_back}"
    full = wer((refs[n], engine_alone[n]) for n in SHORT)
    small = wer((refs[n], sized[n].text) for n in SHORT)
    print(f"WER on {len(SHORT)} short clips: full window {full:.3f}, sized audio_ctx {small:.3f}")
    assert small <= full + 0.01


def test_audio_ctx_is_sized_to_the_audio_with_a_floor():
    e = engine()
    assert e.audio_ctx_for(SAMPLE_RATE // 2) == e.audio_ctx_floor == 256
    assert e.audio_ctx_for(3 * SAMPLE_RATE) == 256  # 150 frames + 64 margin, rounded up
    assert e.audio_ctx_for(4 * SAMPLE_RATE) == 512  # 200 + 64
    assert e.audio_ctx_for(40 * SAMPLE_RATE) == FULL_AUDIO_CTX


def test_long_audio_has_global_timestamps_in_order(audio):
    """About a minute of clips with pauses: more than one window, each clip's words at its place."""
    gap = np.zeros(SAMPLE_RATE, np.float32)
    names = [n for n in CLIPS if n.startswith(("LJ001", "librispeech", "cmu_arctic_us_aew"))]
    parts, spans, t = [], [], 0.0
    for n in names:
        parts += [audio[n], gap]
        spans.append((n, t, t + audio[n].size / SAMPLE_RATE))
        t += (audio[n].size + gap.size) / SAMPLE_RATE
    long = np.concatenate(parts)
    assert long.size / SAMPLE_RATE > 60 and len(list(windows(long))) >= 3
    seen = []
    result = engine().transcribe(long, progress=lambda done, total: seen.append((done, total)))
    segs = result.segments
    assert seen[-1][0] == pytest.approx(long.size / SAMPLE_RATE) and len(seen) >= 3
    starts = [s.start for s in segs]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= s.end <= long.size / SAMPLE_RATE for s in segs)
    refs = references()
    assert wer([(" ".join(refs[n] for n in names), result.text)]) < 0.2
    # every segment lies within the clip (plus a second of slack) whose reference holds its words
    placed = 0
    for s in segs:
        mid = (s.start + s.end) / 2
        owner = next((n for n, a, b in spans if a - 1 <= mid <= b + 1), None)
        words = set(re.findall(r"[a-z]+", s.text.lower()))
        if owner and len(words & set(re.findall(r"[a-z]+", refs[owner].lower()))) >= len(words) / 2:
            placed += 1
    assert placed >= 0.8 * len(segs), [(s.start, s.end, s.text) for s in segs]


def test_stereo_44k_and_8k_inputs(tmp_path):
    jfk = load_audio(SPEECH.parent / "jfk.flac")  # 44.1 kHz stereo
    assert soundfile.info(str(SPEECH.parent / "jfk.flac")).channels == 2
    text = engine().transcribe(jfk).text.lower()
    assert "ask not what your country can do for you" in re.sub(r"[^a-z ]", "", text)

    name = "cmu_arctic_us_aew_a0003.wav"
    x, rate = soundfile.read(str(SPEECH / name), dtype="float32")
    soundfile.write(str(tmp_path / "8k.wav"), resample(x, rate, 8000), 8000)
    narrow = load_audio(tmp_path / "8k.wav")
    assert abs(narrow.size - x.size) < 100  # resampled back to 16 kHz, same duration
    assert wer([(references()[name], engine().transcribe(narrow).text)]) <= 0.2


def test_ogg_vorbis_input(tmp_path):
    name = "cmu_arctic_us_axb_a0004.wav"
    x, rate = soundfile.read(str(SPEECH / name), dtype="float32")
    soundfile.write(str(tmp_path / "clip.ogg"), x, rate, format="OGG", subtype="VORBIS")
    assert wer([(references()[name], engine().transcribe(load_audio(tmp_path / "clip.ogg")).text)]) <= 0.2


def test_engine_is_safe_from_two_threads(audio):
    from concurrent.futures import ThreadPoolExecutor

    names = SHORT[:4]
    alone = {n: engine().transcribe_command(audio[n]).text for n in names}
    with ThreadPoolExecutor(2) as pool:
        both = dict(zip(names, pool.map(lambda n: engine().transcribe_command(audio[n]).text, names)))
    assert both == alone


# --- formats through the command line ---------------------------------------------------------

def test_cli_prints_text_for_a_flac_file():
    r = run_cli("transcribe", str(SPEECH / "librispeech_2412-153948-0000.flac"))
    assert r.returncode == 0, r.stderr
    assert wer([(references()["librispeech_2412-153948-0000.flac"], r.stdout)]) < 0.2


def test_cli_json_has_hf_and_api_timestamps():
    r = run_cli("transcribe", str(SPEECH.parent / "jfk.flac"), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "my fellow americans" in doc["text"].lower()
    assert doc["chunks"] and all(c["timestamp"] == c["timestamps"] for c in doc["chunks"])
    assert " ".join(c["text"] for c in doc["chunks"]) == doc["text"]
    ends = [c["timestamp"][1] for c in doc["chunks"]]
    assert ends == sorted(ends) and ends[-1] <= 11.0 + 1e-6


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_cli_subtitles_parse(fmt, tmp_path):
    out = tmp_path / f"sub.{fmt}"
    r = run_cli("transcribe", str(SPEECH / "LJ001-0001.wav"), "--format", fmt, "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    if fmt == "srt":
        subs = list(srt.parse(text))
        assert [s.index for s in subs] == list(range(1, len(subs) + 1))
        spans = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]
        assert re.search(r"^\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d$", text, re.M)
    else:
        assert text.startswith("WEBVTT")
        subs = list(webvtt.from_string(text))
        spans = [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.end_in_seconds, c.text) for c in subs]
        assert re.search(r"^\d\d:\d\d:\d\d\.\d\d\d --> \d\d:\d\d:\d\d\.\d\d\d$", text, re.M)
    assert len(spans) >= 2  # a 9.7 s sentence does not fit one cue
    for start, end, content in spans:
        assert 0 <= start < end <= 9.7 + 0.01
        assert end - start <= 7.0 + 0.01
        assert len(content.splitlines()) <= 2
    assert wer([(references()["LJ001-0001.wav"], " ".join(s[2] for s in spans))]) < 0.2


def test_cues_split_long_segments_by_time_and_lines():
    from assistant.asr.engine import Segment, Transcript

    words = " ".join(f"word{i}" for i in range(60))
    t = Transcript(words, [Segment(0.0, 20.0, words)], FULL_AUDIO_CTX, 0.0, 20.0)
    out = cues(t.segments)
    assert " ".join(c.text for c in out) == words
    assert all(c.end - c.start <= 7.0 + 1e-6 for c in out)
    assert out[0].start == 0.0 and out[-1].end == pytest.approx(20.0)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(out, out[1:]))
    assert list(srt.parse(render(t, "srt")))


def test_repetition_loops_are_cut_at_the_first_repeat():
    from assistant.asr.engine import cut_loop

    two_s = 2 * SAMPLE_RATE
    assert cut_loop("Go forward 10 meters. Go forward 10 meters. Go forward", two_s) == "Go forward 10 meters."
    assert cut_loop("Play some music in the bedroom. Play some music in the bedroom.", 3 * two_s) == \
        "Play some music in the bedroom."
    assert cut_loop("modern. Modern. Modern. Modern.", two_s) == "modern."
    assert cut_loop("five five", two_s) == "five five"  # a real utterance, said twice on purpose
    assert cut_loop("Lord, but I am glad to see you again, Phil.", 3 * two_s) == \
        "Lord, but I am glad to see you again, Phil."
    assert cut_loop("He was not an old-s-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y-y", two_s) is None  # decode again
