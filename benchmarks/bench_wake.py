"""Wake-word benchmark: CPU while waiting, false wakes per hour, misses, latency, cutoffs.

    python benchmarks/bench_wake.py [--speech DIR] [--out benchmarks/results/wake.json]

Data (all real recordings from /work/shared/speech, resampled to 16 kHz mono; see its README):
- waiting (CPU): LJSpeech 221.7 s mixed with the noise tape at 15 dB SNR, then raw noise
  to make 300 s; fed in 30 ms blocks (the capture block size); time.process_time over
  the run / audio duration = % of one core.
- negatives (false wakes): every non-wake speech clip in the folder (LJSpeech 32 clips,
  the 6 "computer" near-misses, pocketsphinx, misc/speech, misc/commands except the
  multi-keyword porcupine file, which may say "alexa"/"jarvis"), 0.5 s apart, played
  three times: clean, at 10 dB and at 5 dB SNR (noise tape cycled: dishes, bike, cafe,
  traffic, fridge), followed by the 186 s of noise alone. One continuous stream per
  word, refractory 2 s.
- positives: the 10 real "alexa" speakers, padded with 1 s silence each side, clean and
  mixed with each of the 5 noises at 10 dB SNR (50 noisy trials). The other words have
  no real recordings here: espeak-ng voices stand in (synthetic; labelled as such).
- SNR: active speech power (10 ms frames within 30 dB of the clip's peak) over the
  noise slice's mean power.
- latency: detection time minus the clip's speech end (last 10 ms frame within 20 dB
  of the peak and 10 dB above the clip's floor), on the clean clips.
Cutoff sweeps replay each stream's score trace (WakeDetector.scores) through the same
Gate the detector uses, so one model pass serves every cutoff.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.wake import DEFAULT_CUTOFFS, WAKE_WORDS, Gate, WakeDetector  # noqa: E402

SR = 16000
FRAME = 160
REFRACTORY_S = 2.0
CUTOFFS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
PHRASES = {"okay_nabu": "okay nabu", "hey_jarvis": "hey jarvis", "alexa": "alexa",
           "hey_mycroft": "hey mycroft"}
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


def speech_end(x: np.ndarray) -> float:
    """Seconds: end of the last 10 ms frame near the clip's peak level (30 ms smoothing)."""
    db = np.convolve(frame_db(x), np.ones(3) / 3, mode="same")
    live = db[db > -95]  # ignore digital silence when estimating the floor
    floor = float(np.percentile(live, 10)) if len(live) else -100.0
    threshold = max(db.max() - 20, floor + 10)
    return (int(np.nonzero(db > threshold)[0][-1]) + 1) * FRAME / SR


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


def _miss(p: dict | None) -> str:
    return f"{p['missed']}/{p['n']}" if p and p["n"] else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speech", type=Path, default=Path(os.environ.get("SPEECH_DIR", "/work/shared/speech")))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "wake.json")
    args = ap.parse_args()
    sp = args.speech
    t0 = time.perf_counter()

    noise_parts = [load(sp / "noise" / n) for n in NOISES]
    pad = np.zeros(SR, np.float32)
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
    rounds = []
    for snr in (None, 10.0, 5.0):
        for clip in neg_speech:
            seg = np.concatenate([clip, gap])
            rounds.append(seg if snr is None else mix(seg, tape.take(len(seg)), snr))
    # each piece gets its own level: normalise to a common peak so one loud clip does not
    # force the whole stream down when converting to int16
    rounds = [r * (0.5 / max(1e-6, float(np.abs(r).max()))) for r in rounds]
    negatives16 = to_int16(np.concatenate(rounds + [0.3 * np.concatenate(noise_parts)]))
    neg_speech_s = sum(len(c) + len(gap) for c in neg_speech) / SR

    # --- positives: real alexa speakers, clean and at 10 dB in each noise
    alexa_clips = [(p.stem, load(p)) for p in sorted((sp / "wakeword" / "alexa").glob("*.flac"))]
    real: list[Trial] = []
    for name, clip in alexa_clips:
        padded = np.concatenate([pad, clip, pad])
        end = 1.0 + speech_end(clip)
        real.append(Trial(f"{name}/clean", to_int16(padded), end))
    real_noisy: list[Trial] = []
    for k, noise in enumerate(noise_parts):
        tape = NoiseTape([noise])
        for name, clip in alexa_clips:
            padded = np.concatenate([pad, clip, pad])
            end = 1.0 + speech_end(clip)
            real_noisy.append(Trial(f"{name}/{NOISES[k]}", to_int16(mix(padded, tape.take(len(padded)), 10.0)), end))

    # --- synthetic positives (espeak-ng), clean and at 10 dB
    synth: dict[str, tuple[list[Trial], list[Trial]]] = {}
    tape = NoiseTape(noise_parts)
    for word in WAKE_WORDS:
        clean, noisy = [], []
        for voice in ESPEAK_VOICES:
            for speed in ESPEAK_SPEEDS:
                clip = espeak(PHRASES[word], voice, speed)
                if clip is None:
                    continue
                padded = np.concatenate([pad, clip, pad])
                end = 1.0 + speech_end(clip)
                clean.append(Trial(f"{voice}@{speed}", to_int16(padded), end))
                noisy.append(Trial(f"{voice}@{speed}/10dB",
                                   to_int16(mix(padded, tape.take(len(padded)), 10.0)), end))
        synth[word] = (clean, noisy)

    results: dict = {
        "method": __doc__,
        "refractory_s": REFRACTORY_S,
        "waiting_s": len(waiting16) / SR,
        "negatives_s": len(negatives16) / SR,
        "negative_speech_s_per_round": neg_speech_s,
        "negative_files": [str(p.relative_to(sp)) for p in neg_files],
        "words": {},
    }
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
        real_tr = traces(det, real)
        noisy_tr = traces(det, real_noisy) if word == "alexa" else []
        synth_clean, synth_noisy = synth[word]
        sc_tr, sn_tr = traces(det, synth_clean), traces(det, synth_noisy)
        sweep = []
        for c in CUTOFFS:
            fa = len(replay(neg_trace, c))
            row = {"cutoff": c, "false_wakes": fa,
                   "false_wakes_per_hour": fa / (len(negatives16) / SR / 3600)}
            if word == "alexa":
                row["real_clean"] = positives_summary(real, real_tr, c)
                row["real_10dB"] = positives_summary(real_noisy, noisy_tr, c)
            row["synthetic_clean"] = positives_summary(synth_clean, sc_tr, c)
            row["synthetic_10dB"] = positives_summary(synth_noisy, sn_tr, c)
            sweep.append(row)
        default = DEFAULT_CUTOFFS[word]
        at_default = next(r for r in sweep if abs(r["cutoff"] - default) < 1e-9)
        results["words"][word] = {
            "cutoff": default, "json_cutoff": det._mww.probability_cutoff,
            "cpu_pct_one_core": cpu,
            "negative_max_score": float(neg_trace[:, 1].max()),
            "at_default": at_default, "sweep": sweep,
        }
        det.close()
    results["elapsed_s"] = time.perf_counter() - t0

    # --- report
    hours = len(negatives16) / SR / 3600
    print(f"negatives: {hours * 60:.1f} min ({neg_speech_s:.0f} s of speech x3 [clean, 10 dB, 5 dB]"
          f" + {sum(map(len, noise_parts)) / SR:.0f} s noise alone); CPU on a "
          f"{len(waiting16) / SR:.0f} s waiting stream in 30 ms blocks")
    print(f"{'word':12} {'cutoff':>6} {'CPU%':>6} {'FA/h':>6} {'negmax':>6} {'miss clean':>10} "
          f"{'miss 10dB':>10} {'lat med':>7} {'lat range':>11}  positives")
    for word, r in results["words"].items():
        d = r["at_default"]
        real_ = word == "alexa"
        pc = d["real_clean"] if real_ else d["synthetic_clean"]
        pn = d["real_10dB"] if real_ else d["synthetic_10dB"]
        kind = "10 real speakers; 10dB: x5 noises" if real_ else "espeak-ng voices (synthetic)"
        lat = pc["latency_s"]
        span = f"{lat['min']:.2f}..{lat['max']:.2f}" if lat else "-"
        print(f"{word:12} {d['cutoff']:6.2f} {r['cpu_pct_one_core']:6.2f} "
              f"{d['false_wakes_per_hour']:6.1f} {r['negative_max_score']:6.3f} "
              f"{_miss(pc):>10} {_miss(pn):>10} {lat['median'] if lat else float('nan'):7.3f} "
              f"{span:>11}  {kind}")
    print(f"\ncutoff sweep: cutoff:false wakes in {hours:.2f} h|misses clean+10dB "
          "(alexa: real speakers; others: espeak-ng)")
    for word, r in results["words"].items():
        cells = []
        for row in r["sweep"]:
            a, b = ((row["real_clean"], row["real_10dB"]) if word == "alexa"
                    else (row["synthetic_clean"], row["synthetic_10dB"]))
            cells.append(f"{row['cutoff']:.2f}:{row['false_wakes']}|{a['missed']}+{b['missed']}")
        n = (r["sweep"][0]["real_clean"]["n"], r["sweep"][0]["real_10dB"]["n"]) if word == "alexa" else (
            r["sweep"][0]["synthetic_clean"]["n"], r["sweep"][0]["synthetic_10dB"]["n"])
        print(f"{word:12} (of {n[0]}+{n[1]}) " + " ".join(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out} ({results['elapsed_s']:.0f} s)")


if __name__ == "__main__":
    main()
