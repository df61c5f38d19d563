"""Wake-word benchmark: CPU while waiting, false wakes per hour, misses, latency, cutoffs; the
detector alone, then hotword mode through the real pipeline. Method: README-wake.md.

    python benchmarks/bench_wake.py [--out FILE] [--waiting-s 300] [--no-pipeline]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import config as config_mod  # noqa: E402
from assistant.asr.engine import Engine  # noqa: E402
from assistant.asr.models import load_engine  # noqa: E402
from assistant.audio import SAMPLE_RATE as SR  # noqa: E402
from assistant.audio import load_audio  # noqa: E402
from assistant.audio.sources import FileSource  # noqa: E402
from assistant.pipeline import events as ev  # noqa: E402
from assistant.pipeline.app import build  # noqa: E402
from assistant.wake.detector import (  # noqa: E402
    DEFAULT_CUTOFFS,
    DETECTION_LAG_S,
    VERIFY_WINDOW_S,
    WAKE_WORDS,
    Gate,
    WakeDetector,
    heard_wake_word,
)
from benchmarks.common.clock import ClockedSource  # noqa: E402
from benchmarks.common.cpu import Sampler  # noqa: E402
from benchmarks.common.data import SPEECH  # noqa: E402
from benchmarks.common.engine import transcribe  # noqa: E402
from benchmarks.common.signal import active_power, mix, normalise, speech_bounds, to_int16, trim, write_wav  # noqa: E402
from benchmarks.common.synth import espeak  # noqa: E402

REFRACTORY_S = 2.0
CUTOFFS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
# espeak-ng texts per word. "hey javis" is a respelling: espeak says "jarvis" with an
# r-coloured vowel (dZ'A@vIs) that the model mostly rejects; "javis" (dZ'avIs) it accepts.
PHRASES = {"okay_nabu": ["okay nabu"], "hey_jarvis": ["hey jarvis", "hey javis"],
           "alexa": ["alexa"], "hey_mycroft": ["hey mycroft"]}
ESPEAK_VOICES = ["en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc",
                 "en-us+f3", "en-us+m3", "en+Alex", "en-us+klatt"]
ESPEAK_SPEEDS = [150, 175]
NOISES = ["sc_doing_the_dishes.wav", "sc_exercise_bike.wav", "cafe.wav", "traffic.wav", "fridge.wav"]
HELP_REPLY = ("I can do arithmetic, tell the time, tell the date, tell the day of the week, run your commands, "
              "list what I can do, repeat what I said, stop talking, set timers, say how long timers have left "
              "and cancel timers.")
ECHO_RATIOS_DB = [-6, 0, 6, 12, 18]
ROOM_SNR_DB = 40.0  # the quiet room a recording's word end is measured in


# --- scenario --------------------------------------------------------------------------------------

class NoiseTape:
    """The noise files end to end, cycled: each call takes the next slice."""

    def __init__(self, parts: List[np.ndarray]):
        self.tape = np.concatenate(parts)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        idx = (self.pos + np.arange(n)) % len(self.tape)
        self.pos = (self.pos + n) % len(self.tape)
        return self.tape[idx]


def word_end(clip: np.ndarray, room: Optional[np.ndarray]) -> float:
    """Where the word ends in the clip (seconds). A recording is measured over 1 s of a quiet room
    each side (room noise ROOM_SNR_DB under it): the alexa set's files are cut with digital
    silence, which is no background of theirs. Synthetic speech is measured as it is."""
    if room is None:
        return speech_bounds(clip)[1]
    pad = np.zeros(SR, np.float32)
    padded = np.concatenate([pad, clip, pad])
    return speech_bounds(mix(padded, NoiseTape([room]).take(len(padded)), ROOM_SNR_DB))[1] - 1.0


@dataclass(frozen=True, eq=False)
class Trial:
    name: str
    audio: np.ndarray  # int16
    end_s: float  # speech end in the padded audio


@dataclass(frozen=True, eq=False)
class PosSet:
    """Positives for one word: the same clips under several conditions."""

    word: str
    label: str
    real: bool
    conditions: Dict[str, List[Trial]]  # "clean", "10dB", "+cmd 0s", "+cmd 0.25s"

    def key(self, condition: str) -> str:
        return f"{'real' if self.real else 'synthetic'} {self.label} {condition}"


def conditions(name: str, clip: np.ndarray, end: float, command: np.ndarray, noises: List[np.ndarray]) -> dict:
    """The trials for one wake-word clip (its word ending at `end`): clean, in each noise at 10 dB,
    and followed by a command after 0 and 0.25 s."""
    pad = np.zeros(SR, np.float32)
    padded = np.concatenate([pad, clip, pad])
    out: Dict[str, List[Trial]] = {"clean": [Trial(name, to_int16(padded), 1.0 + end)], "10dB": []}
    for k, noise in enumerate(noises):
        noisy = mix(padded, NoiseTape([noise]).take(len(padded)), 10.0)
        out["10dB"].append(Trial(f"{name}/noise{k}", to_int16(noisy), 1.0 + end))
    word = clip[: int((end + 0.03) * SR)]
    cmd = trim(command, 0.05, 0.03).audio
    cmd = cmd * np.sqrt(active_power(word) / active_power(cmd))
    for gap in (0.0, 0.25):
        x = np.concatenate([pad, word, np.zeros(int(gap * SR), np.float32), cmd, pad])
        out[f"+cmd {gap:g}s"] = [Trial(f"{name}/+cmd{gap:g}", to_int16(x), 1.0 + end)]
    return out


def merge(parts: List[dict]) -> Dict[str, List[Trial]]:
    return {k: [t for p in parts for t in p[k]] for k in parts[0]}


def real_positives(sp: Path, noises: List[np.ndarray], room: np.ndarray) -> PosSet:
    """The 10 real "alexa" speakers, the command a real "go forward ten meters" (another speaker)."""
    go = load_audio(sp / "pocketsphinx" / "goforward.wav")
    parts = []
    for p in sorted((sp / "wakeword" / "alexa").glob("*.flac")):
        clip = load_audio(p)
        parts.append(conditions(p.stem, clip, word_end(clip, room), go, noises))
    return PosSet("alexa", "10 real speakers", True, merge(parts))


def synthetic_positives(noises: List[np.ndarray]) -> List[PosSet]:
    """espeak-ng voices for every word (one noise per clip, cycled), the command in the same voice."""
    if shutil.which("espeak-ng") is None:
        return []
    sets = []
    for word in WAKE_WORDS:
        for text in PHRASES[word]:
            parts: List[dict] = []
            for voice in ESPEAK_VOICES:
                for speed in ESPEAK_SPEEDS:
                    said = trim(normalise(espeak(text, voice, speed)), 0.05, 0.03)
                    cmd = normalise(espeak("turn on the kitchen light", voice, speed))
                    noise = [noises[len(parts) % len(noises)]]
                    parts.append(conditions(f"{voice}@{speed}", said.audio, said.end, cmd, noise))
            sets.append(PosSet(word, f'espeak-ng "{text}"', False, merge(parts)))
    return sets


def waiting_stream(sp: Path, noises: List[np.ndarray]) -> np.ndarray:
    """For CPU: LJSpeech (221.7 s) in the noise tape at 15 dB SNR, then the noise, to 300 s."""
    lj = np.concatenate([load_audio(p) for p in sorted((sp / "ljspeech" / "wavs").glob("*.wav"))])
    tape = NoiseTape(noises)
    return to_int16(np.concatenate([mix(lj, tape.take(len(lj)), 15.0), tape.take(300 * SR - len(lj))]))


@dataclass(frozen=True, eq=False)
class Negatives:
    audio: np.ndarray  # int16
    files: List[Path]
    labels: List[Tuple[float, str]]  # (start s, what): names the source of a false wake
    speech_s: float  # of one round

    def where(self, t: float) -> str:
        return next(name for start, name in reversed(self.labels) if start <= t)


def negative_stream(sp: Path, noises: List[np.ndarray]) -> Negatives:
    """Every non-wake speech clip, 0.5 s apart, clean, at 10 dB and at 5 dB, then the noise alone
    at 0.3 x its level; each piece normalised to a 0.5 peak."""
    files = (sorted((sp / "ljspeech" / "wavs").glob("*.wav")) + sorted((sp / "wakeword" / "computer").glob("*"))
             + sorted((sp / "pocketsphinx").glob("*.wav")) + sorted((sp / "misc" / "speech").glob("*"))
             + [p for p in sorted((sp / "misc" / "commands").glob("*")) if p.name != "porcupine_multiple_keywords.wav"])
    speech = [load_audio(p) for p in files]
    gap = np.zeros(SR // 2, np.float32)
    tape = NoiseTape(noises)
    pieces, labels, pos = [], [], 0
    for snr in (None, 10.0, 5.0):
        for path, clip in zip(files, speech):
            seg = np.concatenate([clip, gap])
            pieces.append(normalise(seg if snr is None else mix(seg, tape.take(len(seg)), snr)))
            labels.append((pos / SR, f"{path.name} {'clean' if snr is None else f'{snr:g} dB'}"))
            pos += len(seg)
    labels.append((pos / SR, "noise alone"))
    audio = to_int16(np.concatenate(pieces + [0.3 * np.concatenate(noises)]))
    return Negatives(audio, files, labels, sum(len(c) + len(gap) for c in speech) / SR)


# --- run and analyse: the detector alone -------------------------------------------------------------

def replay(trace: np.ndarray, cutoff: float) -> List[float]:
    """Detection times of a score trace (WakeDetector.scores) through the detector's Gate."""
    gate = Gate(cutoff, REFRACTORY_S)
    return [t for t, s in trace if gate.update(s, t)]


def traces(det: WakeDetector, trials: List[Trial]) -> List[np.ndarray]:
    out = []
    for trial in trials:
        det.reset()
        out.append(det.scores(trial.audio))
    return out


def positives_summary(trials: List[Trial], tr: List[np.ndarray], cutoff: float) -> dict:
    misses, lat = [], []
    for trial, trace in zip(trials, tr):
        hits = replay(trace, cutoff)
        if hits:
            lat.append(hits[0] - trial.end_s)
        else:
            misses.append(trial.name)
    n = len(trials)
    return {"n": n, "missed": len(misses), "miss_rate": len(misses) / n if n else None, "missed_names": misses,
            "latency_s": ({"median": float(np.median(lat)), "min": float(min(lat)), "max": float(max(lat))}
                          if lat else None)}


def waiting_cpu(det: WakeDetector, waiting: np.ndarray) -> float:
    """% of one core for the real streaming path, 30 ms blocks."""
    block = int(0.03 * SR)
    c0 = time.process_time()
    for i in range(0, len(waiting), block):
        det.process(waiting[i:i + block])
    return 100 * (time.process_time() - c0) / (len(waiting) / SR)


Mine = List[Tuple[PosSet, Dict[str, List[np.ndarray]]]]  # a word's positive sets and their score traces


def sweep(neg: Negatives, neg_trace: np.ndarray, mine: Mine) -> List[dict]:
    hours = len(neg.audio) / SR / 3600
    rows = []
    for c in CUTOFFS:
        fa = replay(neg_trace, c)
        rows.append({"cutoff": c, "false_wakes": len(fa), "false_wakes_per_hour": len(fa) / hours,
                     "negative_max_score": float(neg_trace[:, 1].max()),
                     "false_wakes_at": [f"{t:.2f} s: {neg.where(t)}" for t in fa],
                     "positives": {ps.key(k): positives_summary(ps.conditions[k], tr, c)
                                   for ps, trs in mine for k, tr in trs.items()}})
    return rows


def choose_cutoff(json_cutoff: float, rows: List[dict]) -> Tuple[float, str]:
    """The rule behind DEFAULT_CUTOFFS. The authors' cutoff was tuned on far more negative
    audio than our ~20 min (one false wake here is ~2.7/h), so it stands unless our data
    contradict it: false wakes at it that a higher cutoff removes -> the lowest such
    cutoff; real-speaker misses that a lower cutoff recovers with no false wakes here and
    our highest negative score 0.2 below it -> that cutoff."""
    by = {r["cutoff"]: r for r in rows}
    base = by[json_cutoff]
    if base["false_wakes"]:
        fix = [c for c in sorted(by) if c > json_cutoff and by[c]["false_wakes"] == 0]
        if fix:
            return fix[0], f"raised: {base['false_wakes']} false wakes at {json_cutoff}"
        note = f"kept: {base['false_wakes']} false wakes at {json_cutoff} persist up to {max(by)}"
    else:
        note = f"kept: 0 false wakes at {json_cutoff}"
    real = [k for k in base["positives"] if k.startswith("real ")]
    if not real:
        return json_cutoff, note + "; no real-speaker positives to justify a change"

    def missed(row: dict) -> int:
        return sum(row["positives"][k]["missed"] for k in real)

    for c in sorted(by):
        r = by[c]
        if (c < json_cutoff and missed(r) < missed(base) and r["false_wakes"] == 0
                and r["negative_max_score"] <= c - 0.2):
            return c, f"lowered: fewer real misses at {c} with margin"
    return json_cutoff, note + "; no lower cutoff recovers real misses without false wakes"


def second_opinion(engine: Engine, word: str, neg: Negatives, neg_trace: np.ndarray, mine: Mine,
                   cutoff: float) -> dict:
    """WakeConfig.verify measured: every detection at `cutoff` (false wakes in the negatives, first
    hits in each positive trial) is transcribed by whisper over VERIFY_WINDOW_S before it, as the
    hotword turn does; it counts only if heard_wake_word()."""
    def heard(audio: np.ndarray, t: float) -> Tuple[bool, str]:
        text = transcribe(engine, audio[max(0, int((t - VERIFY_WINDOW_S) * SR)):int(t * SR)]).text
        return heard_wake_word(word, text), text

    false = []
    for t in replay(neg_trace, cutoff):
        ok, text = heard(neg.audio, t)
        false.append({"at": f"{t:.2f} s: {neg.where(t)}", "whisper": text, "confirmed": ok})
    positives = {}
    for ps, trs in mine:
        for cond, tr in trs.items():
            woke, confirmed, refused = 0, 0, []
            for trial, trace in zip(ps.conditions[cond], tr):
                hits = replay(trace, cutoff)
                if hits:
                    woke += 1
                    ok, text = heard(trial.audio, hits[0])
                    confirmed += ok
                    refused += [] if ok else [f"{trial.name}: {text!r}"]
            positives[ps.key(cond)] = {"n": len(ps.conditions[cond]), "woke": woke, "confirmed": confirmed,
                                       "refused": refused}
    return {"false_wakes": len(false), "false_wakes_confirmed": sum(f["confirmed"] for f in false),
            "false": false, "positives": positives}


def detector_word(word: str, waiting: np.ndarray, neg: Negatives, sets: List[PosSet], engine: Engine) -> dict:
    """Everything about one word: CPU, the cutoff sweep, the lag, whisper's second opinion."""
    det = WakeDetector(word, None, REFRACTORY_S)
    try:
        cpu = waiting_cpu(det, waiting)
        det.reset()
        neg_trace = det.scores(neg.audio)
        mine = [(ps, {k: traces(det, v) for k, v in ps.conditions.items()}) for ps in sets if ps.word == word]
        model_cutoff = det.authors_cutoff
    finally:
        det.close()
    rows = sweep(neg, neg_trace, mine)
    chosen, why = choose_cutoff(model_cutoff, rows)
    default = DEFAULT_CUTOFFS[word]
    # lag from the word's set with the most clean detections (real speakers first)
    summ = [(ps, positives_summary(ps.conditions["clean"], trs["clean"], default)) for ps, trs in mine]
    first, best = min(summ, key=lambda x: (not x[0].real, x[1]["missed"]))
    lat = best["latency_s"]
    return {"cutoff": default, "json_cutoff": model_cutoff, "rule_choice": chosen, "why": why,
            "lag_median_s": lat["median"] if lat else None, "lag_from": first.label,
            "lag_in_wake_py": DETECTION_LAG_S[word], "cpu_pct_one_core": cpu,
            "at_default": next(r for r in rows if abs(r["cutoff"] - default) < 1e-9), "sweep": rows,
            "second_opinion": second_opinion(engine, word, neg, neg_trace, mine, default)}


def barge_in_margin(sp: Path) -> dict:
    """Detector only: each real "alexa" said over the assistant's own long reply, at three places."""
    if shutil.which("espeak-ng") is None:
        return {}
    reply = normalise(espeak(HELP_REPLY, "en-us", 175))
    det = WakeDetector("alexa", None, REFRACTORY_S)
    clips = [load_audio(p) for p in sorted((sp / "wakeword" / "alexa").glob("*.flac"))]
    out = {}
    for ratio in ECHO_RATIOS_DB:
        woke = n = 0
        for clip in clips:
            for at in (2.0, 5.0, 8.0):
                start = int(at * SR)
                echo = reply[start - SR:start + len(clip) + SR].copy()
                gain = np.sqrt(active_power(echo) / active_power(clip) * 10 ** (ratio / 10))
                echo[SR:SR + len(clip)] += gain * clip
                det.reset()
                woke += bool(replay(det.scores(to_int16(np.concatenate([reply[:start - SR], echo]))), det.cutoff))
                n += 1
        out[f"{ratio:+d} dB"] = {"n": n, "woke": woke, "rate": woke / n}
    det.close()
    return out


# --- run and analyse: through the pipeline -------------------------------------------------------------

def run_pipeline(wav: Path, engine: Engine, wake: dict) -> Tuple[list, float, float, Sampler]:
    """One real-time pass of a file through the assistant's pipeline (speaker engine none, no
    acknowledgement sound); (events, wall0, duration, CPU samples)."""
    base = config_mod.Config()
    cfg = dataclasses.replace(base, wake=dataclasses.replace(base.wake, ack_sound=None, **wake),
                              speaker=dataclasses.replace(base.speaker, engine="none"))
    source = ClockedSource(FileSource(wav))
    events: list = []
    pipeline = build(cfg, source, lambda _config: engine, [events.append], "assistant")
    try:
        with Sampler(1.0) as cpu, contextlib.redirect_stdout(io.StringIO()):  # engine none prints its replies
            pipeline.run()
    finally:
        pipeline.close()
    return events, source.wall0, source.duration, cpu


def waiting_modes(wav: Path, engine: Engine) -> dict:
    """The waiting stream in hotword mode (okay_nabu) and always listening, one after the other."""
    out = {}
    for label, wake in (("hotword okay_nabu", {"word": "okay_nabu"}), ("always listening", {"word": "none"})):
        events, wall0, duration, cpu = run_pipeline(wav, engine, wake)
        count = lambda kind, events=events: sum(isinstance(e, kind) for e in events)  # noqa: E731
        out[label] = {"cpu_pct_one_core": round(cpu.cpu_pct(wall0 + 1.0, wall0 + duration) or 0.0, 2),
                      "others_cores": round(cpu.others_cores(wall0 + 1.0, wall0 + duration) or 0.0, 2),
                      "audio_s": duration, "wakes": count(ev.Wake), "speech_starts": count(ev.SpeechStarted),
                      "finals": count(ev.Final), "intents": count(ev.Intent)}
    hw = out["hotword okay_nabu"]
    hw["false_wakes_per_hour"] = hw["wakes"] / (hw["audio_s"] / 3600)
    return out


def alexa_stream(sp: Path, fridge: np.ndarray) -> Tuple[np.ndarray, list]:
    """The 10 real "alexa" speakers, each after 1 s and before 2.5 s of silence, the fridge 40 dB
    under all of it; (stream, [(name, word end, (clip start, clip end))])."""
    parts, marks, pos = [], [], 0.0
    for path in sorted((sp / "wakeword" / "alexa").glob("*.flac")):
        clip = normalise(load_audio(path))
        parts += [np.zeros(SR, np.float32), clip, np.zeros(int(2.5 * SR), np.float32)]
        marks.append((path.stem, pos + 1.0 + word_end(clip, fridge), (pos + 1.0, pos + 1.0 + len(clip) / SR)))
        pos += 3.5 + len(clip) / SR
    stream = np.concatenate(parts)
    return mix(stream, NoiseTape([fridge]).take(len(stream)), 40.0), marks


def alexa_latency(events: list, wall0: float, marks: list) -> dict:
    """Wake-to-listening latency per speaker: the `state: listening` event's wall clock minus the
    moment the file source delivered the end of the word; split into the detector's lag and the
    pipeline's part."""
    rows = []
    for name, end, (a, b) in marks:
        wake = next((e for e in events if isinstance(e, ev.Wake) and a < e.t < b + 0.5), None)
        if wake is None:
            rows.append({"clip": name, "woke": False})
            continue
        listening = next(e for e in events[events.index(wake):] if isinstance(e, ev.State) and e.state == "listening")
        rows.append({"clip": name, "woke": True, "score": wake.score,
                     "latency_s": round(listening.wall - (wall0 + end), 3), "detector_lag_s": round(wake.t - end, 3),
                     "pipeline_s": round(listening.wall - (wall0 + wake.t), 3)})
    hit = [r for r in rows if r["woke"]]

    def stats(key: str) -> dict:
        v = [r[key] for r in hit]
        return {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))} if v else {}

    return {"n": len(rows), "missed": len(rows) - len(hit), "miss_rate": (len(rows) - len(hit)) / len(rows),
            "missed_names": [r["clip"] for r in rows if not r["woke"]],
            "wakes": sum(isinstance(e, ev.Wake) for e in events), "wake_to_listening_s": stats("latency_s"),
            "detector_lag_s": stats("detector_lag_s"), "pipeline_s": stats("pipeline_s"), "trials": rows}


def pipeline_bench(sp: Path, waiting: np.ndarray, waiting_s: float, engine: Engine, fridge: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "waiting.wav"
        write_wav(wav, waiting[: int(waiting_s * SR)])
        out = waiting_modes(wav, engine)
        stream, marks = alexa_stream(sp, fridge)
        wav = Path(tmp) / "alexa.wav"
        write_wav(wav, to_int16(stream))
        events, wall0, _, _ = run_pipeline(wav, engine, {"word": "alexa", "listen_timeout_s": 1.0})
    out["alexa real speakers"] = alexa_latency(events, wall0, marks)
    return out


# --- report ------------------------------------------------------------------------------------------

def _miss(p: Optional[dict]) -> str:
    return f"{p['missed']}/{p['n']}" if p and p["n"] else "-"


def report_detector(results: dict, sets: List[PosSet]) -> List[str]:
    hours = results["negatives_s"] / 3600
    conds = list(sets[0].conditions)
    speech_s = results["negative_speech_s_per_round"]
    lines = [f"negatives: {hours * 60:.1f} min ({speech_s:.0f} s of speech x3 [clean, 10 dB, 5 dB] + "
             f"{results['negatives_s'] - 3 * speech_s:.0f} s noise alone); CPU: % of one core on a "
             f"{results['waiting_s']:.0f} s waiting stream in 30 ms blocks; latency (clean) = detection - speech end",
             f"{'word':11} {'cutoff':>6} {'CPU%':>5} {'FA/h':>5} {'negmax':>6}  {'positives':22} "
             + " ".join(f"{'miss ' + k:>15}" for k in conds) + f" {'lat med':>7} {'lat range':>11}"]
    for word, r in results["words"].items():
        d = r["at_default"]
        for i, ps in enumerate(p for p in sets if p.word == word):
            cells = " ".join(f"{_miss(d['positives'][ps.key(k)]):>15}" for k in conds)
            lat = d["positives"][ps.key("clean")]["latency_s"]
            span = f"{lat['min']:.2f}..{lat['max']:.2f}" if lat else "-"
            lead = (f"{word:11} {d['cutoff']:6.2f} {r['cpu_pct_one_core']:5.2f} {d['false_wakes_per_hour']:5.1f} "
                    f"{d['negative_max_score']:6.3f}") if i == 0 else " " * 37
            lines.append(f"{lead}  {ps.label[:22]:22} {cells} {lat['median'] if lat else float('nan'):7.3f} {span:>11}")
    lines.append(f"\ncutoff sweep: cutoff:false wakes in {hours:.2f} h|misses clean+10dB of the first set")
    for word, r in results["words"].items():
        ps = next(p for p in sets if p.word == word)
        sweep = [f"{row['cutoff']:.2f}:{row['false_wakes']}|{row['positives'][ps.key('clean')]['missed']}"
                 f"+{row['positives'][ps.key('10dB')]['missed']}" for row in r["sweep"]]
        lines.append(f"{word:11} ({len(ps.conditions['clean'])}+{len(ps.conditions['10dB'])}) " + " ".join(sweep))
    return lines


def report_choices(results: dict) -> List[str]:
    lines = [""]
    for word, r in results["words"].items():
        flag = "" if abs(r["rule_choice"] - r["cutoff"]) < 1e-9 else "  <-- differs from DEFAULT_CUTOFFS"
        lines.append(f"default {word}: {r['cutoff']} (rule: {r['rule_choice']}; {r['why']}){flag}")
        if r["lag_median_s"] is not None:
            lines.append(f"  detection lag median {r['lag_median_s']:.2f} s on {r['lag_from']} "
                         f"(DETECTION_LAG_S: {r['lag_in_wake_py']:.2f})")
        lines += [f"  false wake: {where}" for where in r["at_default"]["false_wakes_at"]]
    lines.append("\nwhisper's second opinion (wake.verify) at the default cutoffs: a detection counts only if "
                 "tiny.en hears the word in the 1.5 s before it")
    for word, r in results["words"].items():
        so = r["second_opinion"]
        lines.append(f"{word:11} false wakes {so['false_wakes']} -> {so['false_wakes_confirmed']} confirmed "
                     + "; ".join(f"[{f['whisper']!r}]" for f in so["false"]))
        lines += [f"  {key:40} woke {v['woke']:2d}/{v['n']:2d}, confirmed {v['confirmed']:2d}"
                  for key, v in so["positives"].items()]
    lines.append("\nbarge-in (detector): real \"alexa\" over the assistant's own reply, wake-to-echo ratio: woke")
    lines.append("  " + "  ".join(f"{k}: {v['woke']}/{v['n']}" for k, v in results["barge_in_margin"].items()))
    return lines


def report_pipeline(p: dict) -> List[str]:
    hw, ax = p["hotword okay_nabu"], p["alexa real speakers"]
    lines = [f"\npipeline, {hw['audio_s']:.0f} s of speech and noise in real time (goal: waiting <= 2 % of a core)",
             f"{'mode':18} {'CPU %':>6} {'others':>7} {'wakes':>5} {'speech':>6} {'finals':>6}"]
    for label in ("hotword okay_nabu", "always listening"):
        r = p[label]
        lines.append(f"{label:18} {r['cpu_pct_one_core']:6.2f} {r['others_cores']:6.2f}c {r['wakes']:5d} "
                     f"{r['speech_starts']:6d} {r['finals']:6d}")
    lines.append(f"false wakes through the pipeline: {hw['wakes']} in {hw['audio_s'] / 60:.0f} min "
                 f"= {hw['false_wakes_per_hour']:.1f}/h")
    lat, lag, own = ax["wake_to_listening_s"], ax["detector_lag_s"], ax["pipeline_s"]
    if lat:
        lines.append(f"alexa, 10 real speakers in real time: missed {ax['missed']}/{ax['n']} {ax['missed_names']}; "
                     f"wake-to-listening median {lat['median']:.3f} s ({lat['min']:.3f}..{lat['max']:.3f}) = detector "
                     f"lag {lag['median']:.3f} + pipeline {own['median']:.3f} ({own['min']:.3f}..{own['max']:.3f})")
    return lines


# --- main ----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speech", type=Path, default=SPEECH, help="the shared recordings (default: $SPEECH_DIR)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wake.json")
    ap.add_argument("--waiting-s", type=float, default=300.0,
                    help="seconds of the waiting stream played through the pipeline, per mode (real time)")
    ap.add_argument("--no-pipeline", action="store_true", help="the detector alone (about a minute)")
    args = ap.parse_args()
    sp, t0 = args.speech, time.perf_counter()
    noises = [load_audio(sp / "noise" / n) for n in NOISES]
    fridge = noises[NOISES.index("fridge.wav")]
    waiting, neg = waiting_stream(sp, noises), negative_stream(sp, noises)
    sets = [real_positives(sp, noises, fridge), *synthetic_positives(noises)]
    base = config_mod.Config()
    engine = load_engine(base.asr)
    engine.warm_up()
    results: dict = {"refractory_s": REFRACTORY_S, "waiting_s": len(waiting) / SR, "negatives_s": len(neg.audio) / SR,
                     "negative_speech_s_per_round": neg.speech_s,
                     "negative_files": [str(p.relative_to(sp)) for p in neg.files],
                     "words": {word: detector_word(word, waiting, neg, sets, engine) for word in WAKE_WORDS},
                     "barge_in_margin": barge_in_margin(sp)}
    lines = report_detector(results, sets) + report_choices(results)
    if not args.no_pipeline:
        results["pipeline"] = pipeline_bench(sp, waiting, args.waiting_s, engine, fridge)
        lines += report_pipeline(results["pipeline"])
    results["elapsed_s"] = time.perf_counter() - t0
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out} ({results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
