"""Wake-word benchmark: CPU while waiting, false wakes per hour, misses, latency, cutoffs.

    python benchmarks/bench_wake.py [--speech DIR] [--out benchmarks/results/wake.json]
                                    [--waiting-s 300] [--no-pipeline]

The detector alone (below), then hotword mode through the real pipeline (PIPELINE below).

Data (all real recordings from /work/shared/speech, resampled to 16 kHz mono; see its README):
- waiting (CPU): LJSpeech 221.7 s mixed with the noise tape at 15 dB SNR, then raw noise
  to make 300 s; fed in 30 ms blocks (the capture block size); time.process_time over
  the run / audio duration = % of one core.
- negatives (false wakes): every non-wake speech clip in the folder (LJSpeech 32 clips,
  the 6 "computer" near-misses, pocketsphinx, misc/speech, misc/commands except the
  multi-keyword porcupine file, which may say "alexa"/"jarvis"), 0.5 s apart, played
  three times: clean, at 10 dB and at 5 dB SNR (noise tape cycled: dishes, bike, cafe,
  traffic, fridge), followed by the 186 s of noise alone (at 0.3 x its recorded level;
  each speech piece is normalised to a peak of 0.5). One continuous stream per
  word, refractory 2 s.
- positives: the 10 real "alexa" speakers, padded with 1 s silence each side, clean and
  mixed with each of the 5 noises at 10 dB SNR (50 noisy trials). The other words have
  no real recordings here: espeak-ng (10 voices x 2 speeds, silence trimmed, padded the
  same; at 10 dB in one noise each, cycled) stands in, labelled synthetic. alexa gets an
  espeak set too, to show how far synthetic results are from real ones.
- "+cmd": the word (cut 30 ms after its speech end) followed by a command after a gap of
  0 s (same breath) or 0.25 s: for alexa the real "go forward ten meters" (pocketsphinx,
  another speaker, level-matched), for espeak-ng "turn on the kitchen light" in the same
  voice. Detection is still measured against the word's end.
- SNR: active speech power (10 ms frames within 30 dB of the clip's peak) over the
  noise slice's mean power.
- latency: detection time minus the clip's speech end, on the clean clips: the last 10 ms
  frame within 20 dB of the peak and 10 dB above the clip's floor (real recordings), or
  within 40 dB of the peak (espeak-ng, which has digital silence around the speech).
Cutoff sweeps replay each stream's score trace (WakeDetector.scores) through the same
Gate the detector uses, so one model pass serves every cutoff.

PIPELINE: `python -m assistant`'s own pipeline (assistant.pipeline.app.build: FileSource in real time,
listener, wake detector, VAD, whisper tiny.en, responder; speaker engine none, no ack sound),
in this process, so time.process_time counts all its threads (whisper's native ones too):
- CPU while waiting: the waiting stream above (300 s: 221.7 s of LJSpeech in noise at 15 dB,
  then noise), played in real time once in hotword mode (okay_nabu) and once always listening
  (wake.word none), one after the other in the same run. % of one core = process CPU seconds /
  wall seconds between 1 s after the stream starts and its end (sampled once a second), with
  the CPU the rest of the machine used meanwhile (it has 2 cores, shared). Also counted: wakes
  (false, there is no wake word in it), speech_start and final events.
- wake-to-listening latency and misses: the 10 real "alexa" speakers as recorded, each after
  1 s and before 2.5 s of silence, the fridge 40 dB under all of it, in real time (alexa,
  listen_timeout_s 1). Latency = wall clock of the `state: listening` event minus the moment
  the file source delivered the end of the word (its t0 + the word's energy end, as above);
  split into the detector's lag (Wake.t - word end, stream time) and the pipeline's part.
- barge-in margin (detector only): each real "alexa" said over the assistant's longest reply
  (espeak-ng en-us at 175 wpm, the pyttsx3 default) at three places, at wake-to-echo ratios
  (active speech power) from -6 to +18 dB: how often it still wakes. Without echo
  cancellation this is what barge-in needs from a microphone that hears its own speaker.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from machine import busy_cpu_seconds  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.wake.detector import (DEFAULT_CUTOFFS, DETECTION_LAG_S, VERIFY_WINDOW_S, WAKE_WORDS, Gate,  # noqa: E402
                            WakeDetector, heard_wake_word)

SR = 16000
FRAME = 160
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


def load(path: Path) -> np.ndarray:
    """Any file -> float32 16 kHz mono."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    return soxr.resample(audio, sr, SR).astype(np.float32) if sr != SR else audio


def to_int16(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if len(x) else 0.0
    if peak > 0.99:  # mixing can clip: scale the whole mixture down instead
        x = x * (0.99 / peak)
    return np.round(x * 32767).astype(np.int16)


def frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)


def active_power(x: np.ndarray) -> float:
    db = frame_db(x)
    n = len(db)
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    active = db > db.max() - 30
    return float((frames[active] ** 2).mean())


def speech_bounds(x: np.ndarray, clean: bool = False) -> tuple[float, float]:
    """Seconds: start and end of the speech by energy (10 ms frames, 30 ms smoothing).
    Real recordings: frames within 20 dB of the peak and 10 dB above the clip's floor.
    clean (espeak-ng, digital silence around the speech): every frame within 40 dB of the
    peak, so weak final consonants ("jarvis", "mycroft") count."""
    db = np.convolve(np.pad(frame_db(x), 1, mode="edge"), np.ones(3) / 3, mode="valid")
    if clean:
        threshold = db.max() - 40
    else:
        live = db[db > -95]  # ignore digital silence when estimating the floor
        floor = float(np.percentile(live, 10)) if len(live) else -100.0
        threshold = max(db.max() - 20, floor + 10)
    on = np.nonzero(db > threshold)[0]
    return on[0] * FRAME / SR, (on[-1] + 1) * FRAME / SR


class NoiseTape:
    """The noise files end to end, cycled: each call takes the next slice."""

    def __init__(self, parts: list[np.ndarray]):
        self.tape = np.concatenate(parts)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        idx = (self.pos + np.arange(n)) % len(self.tape)
        self.pos = (self.pos + n) % len(self.tape)
        return self.tape[idx]


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(active_power(speech) / (np.mean(noise.astype(np.float64) ** 2) * 10 ** (snr_db / 10)))
    return speech + gain * noise


def espeak(text: str, voice: str, speed: int) -> np.ndarray | None:
    if not shutil.which("espeak-ng"):
        return None
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True).stdout
    audio, sr = sf.read(io.BytesIO(out), dtype="float32")
    return 0.5 * soxr.resample(audio, sr, SR).astype(np.float32) / max(1e-6, float(np.abs(audio).max()))


@dataclass
class Trial:
    name: str
    audio: np.ndarray  # int16
    end_s: float  # speech end in the padded audio


@dataclass
class PosSet:
    """Positives for one word: the same clips under several conditions."""

    word: str
    label: str
    real: bool
    conditions: dict[str, list[Trial]]  # "clean", "10dB", "+cmd 0s", "+cmd 0.25s"


def trim(x: np.ndarray, clean: bool = False) -> np.ndarray:
    """Cut leading and trailing silence, keeping 50 ms before the speech and 30 ms after."""
    start, end = speech_bounds(x, clean)
    return x[max(0, int((start - 0.05) * SR)):int((end + 0.03) * SR)]


def conditions(name: str, clip: np.ndarray, command: np.ndarray, noises: list[np.ndarray],
               clean: bool = False) -> dict:
    """The trials for one wake-word clip: clean, in each noise at 10 dB, + a command."""
    pad = np.zeros(SR, np.float32)
    padded = np.concatenate([pad, clip, pad])
    end = 1.0 + speech_bounds(clip, clean)[1]
    out: dict[str, list[Trial]] = {"clean": [Trial(name, to_int16(padded), end)], "10dB": []}
    for k, noise in enumerate(noises):
        noisy = mix(padded, NoiseTape([noise]).take(len(padded)), 10.0)
        out["10dB"].append(Trial(f"{name}/noise{k}", to_int16(noisy), end))
    word = clip[: int((end - 1.0 + 0.03) * SR)]
    cmd = trim(command, clean)
    cmd = cmd * np.sqrt(active_power(word) / active_power(cmd))
    for gap in (0.0, 0.25):
        x = np.concatenate([pad, word, np.zeros(int(gap * SR), np.float32), cmd, pad])
        out[f"+cmd {gap:g}s"] = [Trial(f"{name}/+cmd{gap:g}", to_int16(x), end)]
    return out


def merge(parts: list[dict]) -> dict[str, list[Trial]]:
    return {k: [t for p in parts for t in p[k]] for k in parts[0]}


def replay(trace: np.ndarray, cutoff: float) -> list[float]:
    gate = Gate(cutoff, REFRACTORY_S)
    return [t for t, s in trace if gate.update(s, t)]


def traces(det: WakeDetector, trials: list[Trial]) -> list[np.ndarray]:
    out = []
    for trial in trials:
        det.reset()
        out.append(det.scores(trial.audio))
    return out


def positives_summary(trials: list[Trial], tr: list[np.ndarray], cutoff: float) -> dict:
    misses, lat = [], []
    for trial, trace in zip(trials, tr):
        hits = replay(trace, cutoff)
        if hits:
            lat.append(hits[0] - trial.end_s)
        else:
            misses.append(trial.name)
    n = len(trials)
    return {"n": n, "missed": len(misses), "miss_rate": len(misses) / n if n else None,
            "missed_names": misses,
            "latency_s": ({"median": float(np.median(lat)), "min": float(min(lat)),
                           "max": float(max(lat))} if lat else None)}


def second_opinion(engine, word: str, neg: np.ndarray, neg_trace: np.ndarray, mine: list, cutoff: float,
                   labels: list) -> dict:
    """WakeConfig.verify measured: every detection at `cutoff` (false wakes in the negatives, first
    hits in each positive trial) is transcribed by whisper over VERIFY_WINDOW_S before it, as
    assistant/hotword.py does; it counts only if heard_wake_word()."""
    def heard(audio: np.ndarray, t: float) -> tuple[bool, str]:
        text = engine.transcribe_command(audio[max(0, int((t - VERIFY_WINDOW_S) * SR)):int(t * SR)]).text
        return heard_wake_word(word, text), text

    false = []
    for t in replay(neg_trace, cutoff):
        ok, text = heard(neg, t)
        where = next(name for start, name in reversed(labels) if start <= t)
        false.append({"at": f"{t:.2f} s: {where}", "whisper": text, "confirmed": ok})
    positives = {}
    for ps, trs in mine:
        for cond, tr in trs.items():
            woke = confirmed = 0
            refused = []
            for trial, trace in zip(ps.conditions[cond], tr):
                hits = replay(trace, cutoff)
                if not hits:
                    continue
                woke += 1
                ok, text = heard(trial.audio, hits[0])
                confirmed += ok
                if not ok:
                    refused.append(f"{trial.name}: {text!r}")
            positives[f"{'real' if ps.real else 'synthetic'} {ps.label} {cond}"] = {
                "n": len(ps.conditions[cond]), "woke": woke, "confirmed": confirmed, "refused": refused}
    return {"false_wakes": len(false), "false_wakes_confirmed": sum(f["confirmed"] for f in false),
            "false": false, "positives": positives}


def _miss(p: dict | None) -> str:
    return f"{p['missed']}/{p['n']}" if p and p["n"] else "-"


def choose_cutoff(json_cutoff: float, sweep: list[dict]) -> tuple[float, str]:
    """The rule behind DEFAULT_CUTOFFS. The authors' cutoff was tuned on far more negative
    audio than our ~20 min (one false wake here is ~2.7/h), so it stands unless our data
    contradict it: false wakes at it that a higher cutoff removes -> the lowest such
    cutoff; real-speaker misses that a lower cutoff recovers with no false wakes here and
    our highest negative score 0.2 below it -> that cutoff."""
    by = {r["cutoff"]: r for r in sweep}
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
        if c < json_cutoff and missed(r) < missed(base) and r["false_wakes"] == 0 \
                and r["negative_max_score"] <= c - 0.2:
            return c, f"lowered: fewer real misses at {c} with margin"
    return json_cutoff, note + "; no lower cutoff recovers real misses without false wakes"


# --- PIPELINE -------------------------------------------------------------------------------------

HELP_REPLY = ("I can do arithmetic, tell the time, tell the date, tell the day of the week, run your commands, "
              "list what I can do, repeat what I said, stop talking, set timers, say how long timers have left "
              "and cancel timers.")
ECHO_RATIOS_DB = [-6, 0, 6, 12, 18]


class CpuSampler(threading.Thread):
    """(wall, this process's CPU seconds, the whole machine's busy CPU seconds) once a second."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []
        self.stop_ = threading.Event()

    def run(self) -> None:
        while not self.stop_.is_set():
            self.samples.append((time.time(), time.process_time(), busy_cpu_seconds()))
            self.stop_.wait(1.0)

    def between(self, a: float, b: float) -> tuple[float, float]:
        """(% of one core used by this process, cores used by everything else) between walls a and b."""
        inside = [x for x in self.samples if a <= x[0] <= b]
        (w0, c0, m0), (w1, c1, m1) = inside[0], inside[-1]
        return 100.0 * (c1 - c0) / (w1 - w0), ((m1 - m0) - (c1 - c0)) / (w1 - w0)


def run_pipeline(wav: Path, engine, wake: dict) -> tuple[list, float, float, CpuSampler]:
    """One real-time pass of a file through the assistant's pipeline; (events, wall0, duration)."""
    from assistant import config as config_mod
    from assistant.audio.sources import FileSource
    from assistant.pipeline.app import build

    class TimedSource(FileSource):
        wall0 = 0.0

        def _play(self, block: int) -> None:
            self.wall0 = time.time()  # FileSource's t0: block k is due at t0 + its last sample
            super()._play(block)

    cfg = config_mod.from_dict({"wake": {"ack_sound": None, **wake}, "speaker": {"engine": "none"},
                                "intents": {"paths": [str(ROOT / "intents")]}})
    source = TimedSource(wav)
    events: list = []
    pipeline = build(cfg, source, lambda c: engine, [events.append], "assistant")
    sampler = CpuSampler()
    sampler.start()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # speaker engine none prints its replies
            pipeline.run()
    finally:
        sampler.stop_.set()
        sampler.join()
        pipeline.close()
    return events, source.wall0, source.duration, sampler


def pipeline_bench(sp: Path, waiting16: np.ndarray, waiting_s: float) -> dict:
    from assistant.pipeline import events as ev
    from assistant.__main__ import load_engine
    from assistant import config as config_mod

    engine = load_engine(config_mod.Config())
    engine.warm_up()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "waiting.wav"
        sf.write(str(wav), waiting16[: int(waiting_s * SR)], SR)
        for label, wake in (("hotword okay_nabu", {"word": "okay_nabu"}), ("always listening", {"word": "none"})):
            events, wall0, duration, sampler = run_pipeline(wav, engine, wake)
            cpu, others = sampler.between(wall0 + 1.0, wall0 + duration)
            count = lambda kind: sum(isinstance(e, kind) for e in events)  # noqa: E731
            out[label] = {"cpu_pct_one_core": round(cpu, 2), "others_cores": round(others, 2),
                          "audio_s": duration, "wakes": count(ev.Wake), "speech_starts": count(ev.SpeechStarted),
                          "finals": count(ev.Final), "intents": count(ev.Intent)}
        hw = out["hotword okay_nabu"]
        hw["false_wakes_per_hour"] = hw["wakes"] / (hw["audio_s"] / 3600)

        # latency and misses: real "alexa" speakers in real time
        fridge = load(sp / "noise" / "fridge.wav")
        parts, ends, spans, pos = [], [], [], 0.0
        for path in sorted((sp / "wakeword" / "alexa").glob("*.flac")):
            clip = load(path)
            clip = 0.5 * clip / float(np.abs(clip).max())
            parts += [np.zeros(SR, np.float32), clip, np.zeros(int(2.5 * SR), np.float32)]
            ends.append((path.stem, pos + 1.0 + speech_bounds(clip)[1]))
            spans.append((pos + 1.0, pos + 1.0 + len(clip) / SR))
            pos += 3.5 + len(clip) / SR
        stream = np.concatenate(parts)
        stream = mix(stream, NoiseTape([fridge]).take(len(stream)), 40.0)
        wav = Path(tmp) / "alexa.wav"
        sf.write(str(wav), to_int16(stream), SR)
        events, wall0, _, _ = run_pipeline(wav, engine, {"word": "alexa", "listen_timeout_s": 1.0})
    rows = []
    for (name, end), (a, b) in zip(ends, spans):
        wake = next((e for e in events if isinstance(e, ev.Wake) and a < e.t < b + 0.5), None)
        if wake is None:
            rows.append({"clip": name, "woke": False})
            continue
        k = events.index(wake)
        listening = next(e for e in events[k:] if isinstance(e, ev.State) and e.state == "listening")
        rows.append({"clip": name, "woke": True, "score": wake.score,
                     "latency_s": round(listening.wall - (wall0 + end), 3),
                     "detector_lag_s": round(wake.t - end, 3),
                     "pipeline_s": round(listening.wall - (wall0 + wake.t), 3)})
    hit = [r for r in rows if r["woke"]]

    def stats(key: str) -> dict:
        v = [r[key] for r in hit]
        return {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))} if v else {}

    out["alexa real speakers"] = {"n": len(rows), "missed": len(rows) - len(hit),
                                  "miss_rate": (len(rows) - len(hit)) / len(rows),
                                  "missed_names": [r["clip"] for r in rows if not r["woke"]],
                                  "wakes": sum(isinstance(e, ev.Wake) for e in events),
                                  "wake_to_listening_s": stats("latency_s"), "detector_lag_s": stats("detector_lag_s"),
                                  "pipeline_s": stats("pipeline_s"), "trials": rows}
    return out


def barge_in_margin(sp: Path) -> dict:
    """Detector only: real "alexa" said over the assistant's own long reply."""
    reply = espeak(HELP_REPLY, "en-us", 175)
    if reply is None:
        return {}
    det = WakeDetector("alexa")
    clips = [load(p) for p in sorted((sp / "wakeword" / "alexa").glob("*.flac"))]
    out = {}
    for ratio in ECHO_RATIOS_DB:
        woke = n = 0
        for clip in clips:
            for at in (2.0, 5.0, 8.0):
                start = int(at * SR)
                echo = reply[start - SR:start + len(clip) + SR].copy()
                gain = np.sqrt(active_power(echo) / active_power(clip) * 10 ** (ratio / 10))
                echo[SR:SR + len(clip)] += gain * clip
                x = np.concatenate([reply[:start - SR], echo])
                det.reset()
                woke += bool(replay(det.scores(to_int16(x)), det.cutoff))
                n += 1
        out[f"{ratio:+d} dB"] = {"n": n, "woke": woke, "rate": woke / n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speech", type=Path, default=Path(os.environ.get("SPEECH_DIR", "/work/shared/speech")))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wake.json")
    ap.add_argument("--waiting-s", type=float, default=300.0,
                    help="seconds of the waiting stream played through the pipeline, per mode (real time)")
    ap.add_argument("--no-pipeline", action="store_true", help="the detector alone (about a minute)")
    args = ap.parse_args()
    sp = args.speech
    t0 = time.perf_counter()

    noise_parts = [load(sp / "noise" / n) for n in NOISES]
    gap = np.zeros(SR // 2, np.float32)

    # --- waiting stream for CPU: 5 min of speech in noise, then noise
    lj = [load(p) for p in sorted((sp / "ljspeech" / "wavs").glob("*.wav"))]
    tape = NoiseTape(noise_parts)
    lj_tape = np.concatenate(lj)
    waiting = np.concatenate([mix(lj_tape, tape.take(len(lj_tape)), 15.0),
                              tape.take(300 * SR - len(lj_tape))])
    waiting16 = to_int16(waiting)

    # --- negative stream: all non-wake speech, clean / 10 dB / 5 dB, then noise alone
    neg_files = (sorted((sp / "ljspeech" / "wavs").glob("*.wav"))
                 + sorted((sp / "wakeword" / "computer").glob("*"))
                 + sorted((sp / "pocketsphinx").glob("*.wav"))
                 + sorted((sp / "misc" / "speech").glob("*"))
                 + [p for p in sorted((sp / "misc" / "commands").glob("*"))
                    if p.name != "porcupine_multiple_keywords.wav"])
    neg_speech = [load(p) for p in neg_files]
    tape = NoiseTape(noise_parts)
    rounds, labels = [], []  # labels: (start s, what) to name the source of a false wake
    pos = 0
    for snr in (None, 10.0, 5.0):
        for path, clip in zip(neg_files, neg_speech):
            seg = np.concatenate([clip, gap])
            rounds.append(seg if snr is None else mix(seg, tape.take(len(seg)), snr))
            labels.append((pos / SR, f"{path.name} {'clean' if snr is None else f'{snr:g} dB'}"))
            pos += len(seg)
    labels.append((pos / SR, "noise alone"))
    # each piece gets its own level: normalise to a common peak so one loud clip does not
    # force the whole stream down when converting to int16
    rounds = [r * (0.5 / max(1e-6, float(np.abs(r).max()))) for r in rounds]
    negatives16 = to_int16(np.concatenate(rounds + [0.3 * np.concatenate(noise_parts)]))
    neg_speech_s = sum(len(c) + len(gap) for c in neg_speech) / SR

    # --- positives: real alexa speakers; espeak-ng voices for every word (synthetic)
    go = load(sp / "pocketsphinx" / "goforward.wav")
    sets = [PosSet("alexa", "10 real speakers", True, merge([
        conditions(p.stem, load(p), go, noise_parts)
        for p in sorted((sp / "wakeword" / "alexa").glob("*.flac"))]))]
    for word in WAKE_WORDS:
        for text in PHRASES[word]:
            parts = []
            for voice in ESPEAK_VOICES:
                for speed in ESPEAK_SPEEDS:
                    clip = espeak(text, voice, speed)
                    if clip is None:
                        continue
                    cmd = espeak("turn on the kitchen light", voice, speed)
                    # one noise per synthetic clip (cycled) keeps the trial count down
                    noise = [noise_parts[len(parts) % len(noise_parts)]]
                    parts.append(conditions(f"{voice}@{speed}", trim(clip, True), cmd, noise, True))
            if parts:
                sets.append(PosSet(word, f'espeak-ng "{text}"', False, merge(parts)))

    hours = len(negatives16) / SR / 3600
    results: dict = {
        "method": __doc__,
        "refractory_s": REFRACTORY_S,
        "waiting_s": len(waiting16) / SR,
        "negatives_s": len(negatives16) / SR,
        "negative_speech_s_per_round": neg_speech_s,
        "negative_files": [str(p.relative_to(sp)) for p in neg_files],
        "words": {},
    }
    from assistant import config as config_mod
    from assistant.__main__ import load_engine

    engine = load_engine(config_mod.Config())
    engine.warm_up()
    block = int(0.03 * SR)
    for word in WAKE_WORDS:
        det = WakeDetector(word)
        # CPU while waiting: the real streaming path, 30 ms blocks
        blocks = [waiting16[i:i + block] for i in range(0, len(waiting16), block)]
        c0 = time.process_time()
        for b in blocks:
            det.process(b)
        cpu = 100 * (time.process_time() - c0) / (len(waiting16) / SR)
        det.reset()
        neg_trace = det.scores(negatives16)
        mine = [(ps, {k: traces(det, v) for k, v in ps.conditions.items()})
                for ps in sets if ps.word == word]
        sweep = []
        for c in CUTOFFS:
            fa = replay(neg_trace, c)
            row = {"cutoff": c, "false_wakes": len(fa), "false_wakes_per_hour": len(fa) / hours,
                   "negative_max_score": float(neg_trace[:, 1].max()),
                   "false_wakes_at": [
                       f"{t:.2f} s: {next(name for start, name in reversed(labels) if start <= t)}"
                       for t in fa],
                   "positives": {f"{'real' if ps.real else 'synthetic'} {ps.label} {k}":
                                 positives_summary(ps.conditions[k], tr, c)
                                 for ps, trs in mine for k, tr in trs.items()}}
            sweep.append(row)
        json_cutoff = float(det._mww.probability_cutoff)
        chosen, why = choose_cutoff(json_cutoff, sweep)
        default = DEFAULT_CUTOFFS[word]
        # lag from the word's set with the most clean detections (real speakers first)
        summ = [(ps, positives_summary(ps.conditions["clean"], trs["clean"], default)) for ps, trs in mine]
        first, best = min(summ, key=lambda x: (not x[0].real, x[1]["missed"]))
        lat = best["latency_s"]
        results["words"][word] = {
            "cutoff": default, "json_cutoff": json_cutoff, "rule_choice": chosen, "why": why,
            "lag_median_s": lat["median"] if lat else None, "lag_from": first.label,
            "lag_in_wake_py": DETECTION_LAG_S[word],
            "cpu_pct_one_core": cpu,
            "at_default": next(r for r in sweep if abs(r["cutoff"] - default) < 1e-9),
            "sweep": sweep,
            "second_opinion": second_opinion(engine, word, negatives16, neg_trace, mine, default, labels),
        }
        det.close()

    # --- report
    print(f"negatives: {hours * 60:.1f} min ({neg_speech_s:.0f} s of speech x3 [clean, 10 dB, 5 dB]"
          f" + {sum(map(len, noise_parts)) / SR:.0f} s noise alone); CPU: % of one core on a "
          f"{len(waiting16) / SR:.0f} s waiting stream in 30 ms blocks; latency (clean) = "
          "detection - speech end")
    conds = list(sets[0].conditions)
    print(f"{'word':11} {'cutoff':>6} {'CPU%':>5} {'FA/h':>5} {'negmax':>6}  {'positives':22} "
          + " ".join(f"{'miss ' + k:>15}" for k in conds) + f" {'lat med':>7} {'lat range':>11}")
    for word, r in results["words"].items():
        d = r["at_default"]
        first = True
        for ps in (p for p in sets if p.word == word):
            key = f"{'real' if ps.real else 'synthetic'} {ps.label}"
            cells = " ".join(f"{_miss(d['positives'][f'{key} {k}']):>15}" for k in conds)
            lat = d["positives"][f"{key} clean"]["latency_s"]
            span = f"{lat['min']:.2f}..{lat['max']:.2f}" if lat else "-"
            lead = (f"{word:11} {d['cutoff']:6.2f} {r['cpu_pct_one_core']:5.2f} "
                    f"{d['false_wakes_per_hour']:5.1f} {d['negative_max_score']:6.3f}") if first else " " * 37
            print(f"{lead}  {ps.label[:22]:22} {cells} "
                  f"{lat['median'] if lat else float('nan'):7.3f} {span:>11}")
            first = False
    print(f"\ncutoff sweep: cutoff:false wakes in {hours:.2f} h|misses clean+10dB of the first set")
    for word, r in results["words"].items():
        ps = next(p for p in sets if p.word == word)
        key = f"{'real' if ps.real else 'synthetic'} {ps.label}"
        cells = [f"{row['cutoff']:.2f}:{row['false_wakes']}|{row['positives'][key + ' clean']['missed']}"
                 f"+{row['positives'][key + ' 10dB']['missed']}" for row in r["sweep"]]
        n = f"{len(ps.conditions['clean'])}+{len(ps.conditions['10dB'])}"
        print(f"{word:11} ({n}) " + " ".join(cells))
    print()
    for word, r in results["words"].items():
        flag = "" if abs(r["rule_choice"] - r["cutoff"]) < 1e-9 else "  <-- differs from DEFAULT_CUTOFFS"
        print(f"default {word}: {r['cutoff']} (rule: {r['rule_choice']}; {r['why']}){flag}")
        if r["lag_median_s"] is not None:
            print(f"  detection lag median {r['lag_median_s']:.2f} s on {r['lag_from']} "
                  f"(DETECTION_LAG_S: {r['lag_in_wake_py']:.2f})")
        for where in r["at_default"]["false_wakes_at"]:
            print(f"  false wake: {where}")
    print("\nwhisper's second opinion (wake.verify) at the default cutoffs: a detection counts only if "
          "tiny.en hears the word in the 1.5 s before it")
    for word, r in results["words"].items():
        so = r["second_opinion"]
        print(f"{word:11} false wakes {so['false_wakes']} -> {so['false_wakes_confirmed']} confirmed "
              + "; ".join(f"[{f['whisper']!r}]" for f in so["false"]))
        for key, v in so["positives"].items():
            print(f"  {key:40} woke {v['woke']:2d}/{v['n']:2d}, confirmed {v['confirmed']:2d}")
    # --- through the pipeline
    results["barge_in_margin"] = barge_in_margin(sp)
    print("\nbarge-in (detector): real \"alexa\" over the assistant's own reply, wake-to-echo ratio: woke")
    print("  " + "  ".join(f"{k}: {v['woke']}/{v['n']}" for k, v in results["barge_in_margin"].items()))
    if not args.no_pipeline:
        results["pipeline"] = p = pipeline_bench(sp, waiting16, args.waiting_s)
        hw, ax = p["hotword okay_nabu"], p["alexa real speakers"]
        print(f"\npipeline, {hw['audio_s']:.0f} s of speech and noise in real time (goal: waiting <= 2 % of a core)")
        print(f"{'mode':18} {'CPU %':>6} {'others':>7} {'wakes':>5} {'speech':>6} {'finals':>6}")
        for label in ("hotword okay_nabu", "always listening"):
            r = p[label]
            print(f"{label:18} {r['cpu_pct_one_core']:6.2f} {r['others_cores']:6.2f}c {r['wakes']:5d} "
                  f"{r['speech_starts']:6d} {r['finals']:6d}")
        print(f"false wakes through the pipeline: {hw['wakes']} in {hw['audio_s'] / 60:.0f} min "
              f"= {hw['false_wakes_per_hour']:.1f}/h")
        lat, lag, own = ax["wake_to_listening_s"], ax["detector_lag_s"], ax["pipeline_s"]
        print(f"alexa, 10 real speakers in real time: missed {ax['missed']}/{ax['n']} {ax['missed_names']}; "
              f"wake-to-listening median {lat['median']:.3f} s ({lat['min']:.3f}..{lat['max']:.3f}) = detector lag "
              f"{lag['median']:.3f} + pipeline {own['median']:.3f} ({own['min']:.3f}..{own['max']:.3f})")
    results["elapsed_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out} ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
