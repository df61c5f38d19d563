"""Speech engine benchmark: whisper.cpp with a sized audio_ctx, with the full 30 s window, and
faster-whisper int8 on the same CTranslate2 tiny.en, on real speech. Method: README-asr.md.

    pip install -e '.[bench]' && python benchmarks/bench_asr.py [--repeats 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.asr.engine import FULL_AUDIO_CTX, Engine  # noqa: E402
from assistant.asr.models import load_engine  # noqa: E402
from assistant.asr.wer import wer  # noqa: E402
from assistant.audio import SAMPLE_RATE, load_audio  # noqa: E402
from assistant.config import AsrConfig  # noqa: E402
from benchmarks.common.baseline import FasterWhisper  # noqa: E402
from benchmarks.common.data import SPEECH as SHARED  # noqa: E402
from benchmarks.common.engine import transcribe  # noqa: E402
from benchmarks.common.stats import pct, ratio  # noqa: E402

FLOORS = (256, 512, 768, 1024)  # audio_ctx floors compared (windows are multiples of 256)
Clip = Tuple[str, np.ndarray, str]  # name, audio, reference text
System = Callable[[np.ndarray], str]


# --- scenario ------------------------------------------------------------------------------------

def command_clips() -> List[Clip]:
    """Short real utterances (1-5.5 s) with their reference text."""
    found: List[Tuple[Path, str]] = []
    for line in (SHARED / "misc" / "transcripts.tsv").read_text().splitlines():
        rel, text = line.split("\t")
        if rel.startswith(("speech/cmu", "speech/lhotse", "commands/turn", "commands/living")):
            found.append((SHARED / "misc" / rel, text))
    for line in (SHARED / "pocketsphinx" / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        path = SHARED / "pocketsphinx" / f"{name}.wav"
        if name.startswith(("cards", "goforward", "librivox")) and path.exists():
            found.append((path, text))
    clips = [(path.name, load_audio(path), text) for path, text in found]
    return [c for c in clips if 1.0 <= c[1].size / SAMPLE_RATE <= 5.5]


def long_form() -> Tuple[np.ndarray, str]:
    """LJSpeech LJ001-0001..0032 in a row: 3.7 min of one reader."""
    refs = dict(line.split("|", 1) for line in (SHARED / "ljspeech" / "metadata.csv").read_text().splitlines())
    names = sorted(refs)
    audio = np.concatenate([load_audio(SHARED / "ljspeech" / "wavs" / f"{n}.wav") for n in names])
    return audio, " ".join(refs[n] for n in names)


# --- run -----------------------------------------------------------------------------------------

def short_systems(engine: Engine, fw: FasterWhisper) -> Dict[str, System]:
    return {
        "whisper.cpp sized audio_ctx": lambda a: transcribe(engine, a).text,
        "whisper.cpp full window": lambda a: transcribe(engine, a, audio_ctx=FULL_AUDIO_CTX).text,
        "faster-whisper int8": lambda a: fw.text(a, without_timestamps=True, condition_on_previous_text=False),
    }


def timed(fn: Callable[[], str], repeats: int) -> Tuple[float, str]:
    """Median ms over repeats, and the last output."""
    times, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), out


def run_short(systems: Dict[str, System], clips: List[Clip], repeats: int) -> Dict[str, list]:
    """Per system: (median ms, reference, text) per clip. The systems take turns on each clip, so
    the machine's load hits them alike."""
    for fn in systems.values():  # warm up
        fn(clips[0][1])
    runs: Dict[str, list] = {name: [] for name in systems}
    for _, audio, ref in clips:
        for name, fn in systems.items():
            ms, text = timed(functools.partial(fn, audio), repeats)
            runs[name].append((ms, ref, text))
    return runs


def run_floors(asr: AsrConfig, clips: List[Clip]) -> Dict[int, dict]:
    """WER per audio_ctx floor, and how many decodes looped and were redone wider."""
    out = {}
    for floor in FLOORS:
        engine = load_engine(dataclasses.replace(asr, audio_ctx_floor=floor))
        decoded = [(ref, transcribe(engine, audio), audio.size) for _, audio, ref in clips]
        out[floor] = {"wer": round(wer((ref, t.text) for ref, t, _ in decoded), 4),
                      "widened": sum(t.audio_ctx > engine.audio_ctx_for(n) for _, t, n in decoded)}
        del engine
    return out


def run_long(engine: Engine, fw: FasterWhisper) -> Dict[str, Any]:
    audio, ref = long_form()
    duration = audio.size / SAMPLE_RATE
    systems = {"whisper.cpp (assistant transcribe)": lambda: engine.transcribe(audio).text,
               "faster-whisper int8": lambda: fw.text(audio)}
    out: Dict[str, dict] = {}
    for name, fn in systems.items():
        ms, text = timed(fn, 1)
        out[name] = {"seconds": round(ms / 1000, 2), "rtf": round(ms / 1000 / duration, 4),
                     "wer": round(wer([(ref, text)]), 4)}
    return {"long": out, "long_audio_s": round(duration, 1)}


# --- analyse -------------------------------------------------------------------------------------

def analyse_short(runs: Dict[str, list]) -> Dict[str, dict]:
    """Median and p95 of the per-clip medians, against the full window, and WER."""
    base = float(np.median([ms for ms, _, _ in runs["whisper.cpp full window"]]))
    out = {}
    for name, rows in runs.items():
        ms = [m for m, _, _ in rows]
        out[name] = {"median_ms": pct(ms, 50), "p95_ms": pct(ms, 95),
                     "vs_full_window": ratio(float(np.median(ms)), base, 3),
                     "wer": round(wer((ref, text) for _, ref, text in rows), 4)}
    return out


# --- report --------------------------------------------------------------------------------------

def report(results: dict) -> str:
    lines = [f"\nShort commands ({results['clips']} real clips, median of per-clip medians over "
             f"{results['repeats']} runs)",
             "| system | median ms | p95 ms | x full window | WER |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['median_ms']} | {r['p95_ms']} | {r['vs_full_window']} | {r['wer']:.3f} |"
              for name, r in results["short"].items()]
    lines += [f"\nLong form ({results['long_audio_s'] / 60:.1f} min, LJSpeech LJ001-0001..0032)",
              "| system | seconds | real-time factor | WER |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['seconds']} | {r['rtf']} | {r['wer']:.3f} |" for name, r in results["long"].items()]
    lines.append("\naudio_ctx floor (frames) -> WER on the short clips (decodes redone wider): " + ", ".join(
        f"{k}: {v['wer']:.3f} ({v['widened']})" for k, v in results["audio_ctx_floor"].items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per clip (median taken)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "asr.json"))
    args = parser.parse_args()

    asr = dataclasses.replace(AsrConfig(), model="tiny.en", threads=args.threads)
    engine = load_engine(asr)
    fw = FasterWhisper(args.threads)
    clips = command_clips()
    print(f"{len(clips)} real command-length clips, {args.repeats} runs each, {args.threads} threads", file=sys.stderr)
    results = {"clips": len(clips), "repeats": args.repeats, "threads": args.threads,
               "short": analyse_short(run_short(short_systems(engine, fw), clips, args.repeats))}
    results.update(run_long(engine, fw))
    results["audio_ctx_floor"] = run_floors(asr, clips)
    print(report(results))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
