"""Wake-word detector on real recordings (tests/data/wakeword, see tests/data/ATTRIBUTION.md).

Positives: 10 real people saying "alexa"; near-miss negatives: 6 people saying "computer";
LJSpeech read speech in real cafe/traffic noise; espeak-ng for okay_nabu and hey_jarvis
(synthetic: no real recordings of those words are in the repository).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE as SR
from assistant.audio import load_audio as load
from assistant.config import WakeConfig
from assistant.wake.detector import STEP, WAKE_WORDS, Gate, Wake, WakeDetector
from benchmarks.common.signal import mix, speech_bounds

DATA = Path(__file__).parent / "data" / "wakeword"
BLOCK = 480  # 30 ms, the capture block size


def to_int16(x: np.ndarray) -> np.ndarray:
    """Rounded and clipped, as a sound card would deliver it."""
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def with_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    return mix(speech, np.resize(noise, len(speech)), snr_db)


def padded(clip: np.ndarray) -> np.ndarray:
    """~1 s either side, with a real fridge hum 40 dB under the speech throughout."""
    silence = np.zeros(SR, np.float32)
    return with_noise(np.concatenate([silence, clip, silence]), load(DATA / "noise" / "fridge.flac"), 40.0)


def feed(det: WakeDetector, audio: np.ndarray, block: int = BLOCK) -> list[Wake]:
    wakes = [det.process(audio[i:i + block]) for i in range(0, len(audio), block)]
    return [w for w in wakes if w]


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    audio = load(path)
    start, end = speech_bounds(audio)  # drop espeak's own leading/trailing silence
    audio = audio[int(start * SR):int((end + 0.05) * SR)]
    return 0.5 * audio / np.abs(audio).max()


needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def alexa() -> WakeDetector:
    return WakeDetector("alexa", None, refractory_s=2.0)


def test_wake_words_are_the_shipped_models():
    assert set(WAKE_WORDS) == {"okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"}
    for word in WAKE_WORDS:
        assert WakeDetector(word, None, 2.0).process(np.zeros(BLOCK, np.int16)) is None


def test_unknown_word_names_the_valid_words():
    with pytest.raises(ValueError) as err:
        WakeDetector("hey_computer", None, 2.0)
    for word in WAKE_WORDS:
        assert word in str(err.value)


def test_rejects_bad_sensitivity_and_float_audio():
    with pytest.raises(ValueError, match="cutoff"):  # checked with the config (WakeConfig)
        WakeConfig(word="alexa", sensitivity={"alexa": 1.5})
    with pytest.raises(TypeError, match="int16"):
        WakeDetector("alexa", None, 2.0).process(np.zeros(BLOCK, np.float32))


def test_real_speakers_saying_alexa_wake_once_near_the_end_of_the_word(alexa):
    woke, report = 0, []
    for path in sorted((DATA / "alexa").glob("*.flac")):
        clip = padded(load(path))
        start, end = speech_bounds(clip)
        alexa.reset()
        wakes = feed(alexa, to_int16(clip))
        report.append(f"{path.name}: {[(round(w.t, 2), round(w.score, 3)) for w in wakes]} "
                      f"speech {start:.2f}-{end:.2f}")
        if not wakes:
            continue
        woke += 1
        assert len(wakes) == 1, report[-1]
        w = wakes[0]
        assert w.word == "alexa" and w.score > alexa.cutoff
        # fires once the word has been heard: after it starts, within 0.4 s of its end
        assert start + 0.3 < w.t and end - 0.1 <= w.t <= end + 0.4, report[-1]
        assert abs(w.end - end) <= 0.15, report[-1]  # estimated end of the word
    assert woke >= 9, "\n".join(report)


@pytest.mark.parametrize("word", WAKE_WORDS)
def test_people_saying_computer_do_not_wake(word):
    det = WakeDetector(word, None, 2.0)
    for path in sorted((DATA / "computer").glob("*.flac")):
        det.reset()
        assert feed(det, to_int16(padded(load(path)))) == [], path.name


@pytest.fixture(scope="module")
def read_speech_in_noise() -> np.ndarray:
    """~62 s of LJSpeech, each sentence in real cafe/traffic noise at 10 dB SNR."""
    noise = np.concatenate([load(DATA / "noise" / "cafe.flac"), load(DATA / "noise" / "traffic.flac")])
    parts, pos = [], 0
    for path in sorted((DATA / "ljspeech").glob("*.flac")):
        clip = np.concatenate([load(path), np.zeros(SR // 2, np.float32)])
        parts.append(with_noise(clip, np.roll(noise, -pos), 10.0))
        pos += len(clip)
    audio = np.concatenate(parts)
    return to_int16(0.5 * audio / np.abs(audio).max())


@pytest.mark.parametrize("word", WAKE_WORDS)
def test_read_speech_in_noise_does_not_wake(word, read_speech_in_noise):
    assert len(read_speech_in_noise) > 55 * SR
    assert feed(WakeDetector(word, None, 2.0), read_speech_in_noise) == []


@needs_espeak
@pytest.mark.parametrize("word, text, voice", [
    ("okay_nabu", "okay nabu", "en-us"),
    # espeak says "jarvis" with an r-coloured vowel (dZ'A@vIs) that the model rejects in most
    # voices (max score ~0.05 for en-us); the respelling "javis" (dZ'avIs) triggers it.
    ("hey_jarvis", "hey javis", "en-us"),
])
def test_synthetic_wake_word_then_command(word, text, voice, tmp_path):
    ww = espeak(text, tmp_path / "ww.wav", voice)
    cmd = espeak("turn on the kitchen light", tmp_path / "cmd.wav", voice)
    pause = np.zeros(int(0.3 * SR), np.float32)
    silence = np.zeros(SR, np.float32)
    audio = np.concatenate([silence, ww, pause, cmd, silence])
    word_end = 1.0 + len(ww) / SR
    cmd_start, cmd_end = word_end + 0.3, word_end + 0.3 + len(cmd) / SR
    wakes = feed(WakeDetector(word, None, 2.0), to_int16(audio))
    assert len(wakes) == 1, wakes
    w = wakes[0]
    assert 1.3 < w.t < cmd_end
    # the command can be taken from w.end: not before the wake word's last syllable,
    # not after the command's start
    assert word_end - 0.2 <= w.end <= cmd_start + 0.05, (w, word_end, cmd_start)


@needs_espeak
def test_okay_nabu_and_command_in_one_breath(tmp_path):
    audio = espeak("okay nabu turn on the kitchen light", tmp_path / "one.wav", "en-us")
    silence = np.zeros(SR, np.float32)
    wakes = feed(WakeDetector("okay_nabu", None, 2.0), to_int16(np.concatenate([silence, audio, silence])))
    assert len(wakes) == 1 and 1.5 < wakes[0].t < 1.0 + len(audio) / SR


def test_one_utterance_wakes_once_though_the_score_stays_high(alexa):
    clip = to_int16(padded(load(DATA / "alexa" / "131.flac")))
    alexa.reset()
    scores = alexa.scores(clip)[:, 1]
    assert (scores > alexa.cutoff).sum() >= 3  # several positive windows in a row
    alexa.reset()
    assert len(feed(alexa, clip)) == 1


def test_refractory_period(alexa):
    clip = load(DATA / "alexa" / "131.flac")
    start, end = speech_bounds(padded(clip))  # over a quiet room: the clip is gated with digital silence
    start, end = start - 1.0, end - 1.0  # padded() puts 1 s before it
    word = clip[int((start - 0.05) * SR):int((end + 0.1) * SR)]
    gap = np.zeros(int(0.4 * SR), np.float32)
    twice = to_int16(padded(np.concatenate([word, gap, word])))  # "alexa ... alexa"
    alexa.reset()
    assert len(feed(alexa, twice)) == 1  # the second is within the 2 s refractory period
    quick = WakeDetector("alexa", None, refractory_s=0.5)
    wakes = feed(quick, twice)
    assert len(wakes) == 2 and 0.5 < wakes[1].t - wakes[0].t < 2.0


def test_gate_needs_the_score_to_fall_before_waking_again():
    gate = Gate(cutoff=0.9, refractory_s=1.0)
    fired = [gate.update(0.95, t / 100) for t in range(0, 500, 3)]  # 5 s of positive windows
    assert sum(fired) == 1
    assert not gate.update(0.5, 5.0)
    assert gate.update(0.95, 5.1)  # fell below the cutoff and refractory has passed


def test_any_block_size_gives_the_same_wake(alexa):
    clip = to_int16(padded(load(DATA / "alexa" / "35.flac")))
    alexa.reset()
    (reference,) = feed(alexa, clip, len(clip))
    rng = np.random.default_rng(0)
    for _ in range(3):
        alexa.reset()
        cuts = np.cumsum(rng.integers(1, 1200, size=len(clip) // 100))
        cuts = cuts[cuts < len(clip)]
        wakes = [w for w in map(alexa.process, np.split(clip, cuts)) if w]
        assert wakes == [reference]


def test_stream_time_counts_from_reset(alexa):
    clip = to_int16(padded(load(DATA / "alexa" / "65.flac")))
    alexa.reset()
    (first,) = feed(alexa, np.concatenate([np.zeros(3 * SR, np.int16), clip]))
    alexa.reset()
    (second,) = feed(alexa, clip)
    assert first.t == pytest.approx(second.t + 3.0, abs=0.05)


def test_scores_are_pymicro_wakewords_own(alexa):
    """The detector's loop (its own interpreter, buffers bound once) gives exactly the scores of
    pymicro-wakeword's public streaming API on a real speaker and a near miss: the same features,
    quantisation, stride and window mean."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    reference = MicroWakeWord.from_builtin(Model.ALEXA)
    assert alexa.authors_cutoff == reference.probability_cutoff
    stride = alexa._stride  # inferences happen every stride-th feature step
    try:
        for path in (DATA / "alexa" / "131.flac", sorted((DATA / "computer").glob("*.flac"))[0]):
            clip = to_int16(padded(load(path)))
            alexa.reset()
            ours = alexa.scores(clip)
            reference.reset()
            features, theirs, steps = MicroWakeWordFeatures(), [], 0
            for i in range(0, len(clip) - STEP + 1, STEP):
                for f in features.process_streaming(clip[i:i + STEP].tobytes()):
                    score = reference.process_streaming_prob(f)
                    steps += 1
                    if steps % stride == 0:
                        theirs.append(((i + STEP) / SR, score))
            assert ours.shape == (len(theirs), 2) and ours[:, 1].max() > 0, path.name
            np.testing.assert_array_equal(ours, np.array(theirs), err_msg=path.name)
    finally:
        reference.close()


def test_a_closed_detector_raises_instead_of_crashing():
    det = WakeDetector("alexa", None, 2.0)
    det.close()
    with pytest.raises(RuntimeError, match="alexa.tflite"):
        det.process(np.zeros(SR, np.int16))  # TFLite would have been handed a freed interpreter


def test_waiting_costs_little_cpu(read_speech_in_noise):
    det = WakeDetector("okay_nabu", None, 2.0)
    start = time.process_time()
    feed(det, read_speech_in_noise)
    cpu = (time.process_time() - start) / (len(read_speech_in_noise) / SR)
    assert cpu < 0.03  # a regression guard: the benchmark measures ~0.3% of one core
