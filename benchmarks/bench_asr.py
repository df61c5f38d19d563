"""Speech engine benchmark: whisper.cpp with a sized audio_ctx vs the full 30 s window vs
faster-whisper int8 on the same CTranslate2 tiny.en, on real speech, in one run.

    pip install -e '.[bench]' && python benchmarks/bench_asr.py [--repeats 5]

Prints a table and writes benchmarks/results/asr.json. Latencies are medians over repeats
(this machine is shared and noisy); ratios are against the full-window run measured here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.audio import SAMPLE_RATE, load_audio  # noqa: E402
from assistant.asr.models import ct2_folder, resolve  # noqa: E402
from assistant.asr.wer import wer  # noqa: E402
from assistant.asr.engine import FULL_AUDIO_CTX, Engine  # noqa: E402

SHARED = ROOT.parent / "shared" / "speech"
TESTS = ROOT / "tests" / "data" / "speech"


def command_clips():
    """Short real utterances (1.5-4.5 s) with reference text."""
    clips = []
    for line in (SHARED / "misc" / "transcripts.tsv").read_text().splitlines():
        path, text = line.split("\t")
        if path.startswith(("speech/cmu", "speech/lhotse", "commands/turn", "commands/living")):
            clips.append((SHARED / "misc" / path, text))
    for line in (SHARED / "pocketsphinx" / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t")
        path = SHARED / "pocketsphinx" / f"{name}.wav"
        if name.startswith(("cards", "goforward", "librivox")) and path.exists():
            clips.append((path, text))
    out = []
    for path, text in clips:
        audio = load_audio(path)
        if 1.0 <= audio.size / SAMPLE_RATE <= 5.5:
            out.append((path.name, audio, text))
    return out


def long_form():
    """LJSpeech LJ001-0001..0032 in a row: 3.7 min of one reader."""
    refs = dict(line.split("|", 1) for line in (SHARED / "ljspeech" / "metadata.csv").read_text().splitlines())
    names = sorted(refs)
    audio = np.concatenate([load_audio(SHARED / "ljspeech" / "wavs" / f"{n}.wav") for n in names])
    return audio, " ".join(refs[n] for n in names)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per clip (median taken)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "asr.json"))
    args = parser.parse_args()

    engine = Engine(resolve("tiny.en"), threads=args.threads)
    clips = command_clips()
    print(f"{len(clips)} real command-length clips, {args.repeats} runs each, {args.threads} threads", file=sys.stderr)

    import faster_whisper

    fw = faster_whisper.WhisperModel(str(ct2_folder("tiny.en")), device="cpu", compute_type="int8",
                                     cpu_threads=args.threads)

    def fw_text(audio, **kw):
        segments, _ = fw.transcribe(audio, language="en", beam_size=1, **kw)
        return " ".join(s.text.strip() for s in segments)

    systems = {
        "whisper.cpp sized audio_ctx": lambda a: engine.transcribe_command(a).text,
        "whisper.cpp full window": lambda a: engine.transcribe_command(a, audio_ctx=FULL_AUDIO_CTX).text,
        "faster-whisper int8": lambda a: fw_text(a, without_timestamps=True, condition_on_previous_text=False),
    }
    for fn in systems.values():  # warm up
        fn(clips[0][1])

    results = {"clips": len(clips), "repeats": args.repeats, "threads": args.threads, "short": {}, "long": {}}
    per_clip = {name: [] for name in systems}
    hyps = {name: [] for name in systems}
    for clip_name, audio, ref in clips:
        # interleave systems per clip so load on the machine hits them alike
        for name, fn in systems.items():
            ms, text = timed(lambda: fn(audio), args.repeats)
            per_clip[name].append(ms)
            hyps[name].append((ref, text))
    base = statistics.median(per_clip["whisper.cpp full window"])
    for name in systems:
        results["short"][name] = {
            "median_ms": round(statistics.median(per_clip[name]), 1),
            "p95_ms": round(float(np.percentile(per_clip[name], 95)), 1),
            "vs_full_window": round(statistics.median(per_clip[name]) / base, 3),
            "wer": round(wer(hyps[name]), 4),
        }

    # quality against the smallest window (the floor); windows are multiples of 256 (see
    # assistant/whisper.py), and a looping decode is redone wider, so count those too
    floors = {}
    for floor in (256, 512, 768, 1024):
        engine.audio_ctx_floor = floor
        out = [(ref, engine.transcribe_command(audio)) for _, audio, ref in clips]
        floors[floor] = {"wer": round(wer((r, t.text) for r, t in out), 4),
                         "widened": sum(t.audio_ctx > engine.audio_ctx_for(a.size) for (_, a, _), (_, t) in zip(clips, out))}
    engine.audio_ctx_floor = 256
    results["audio_ctx_floor"] = floors

    audio, ref = long_form()
    duration = audio.size / SAMPLE_RATE
    long_systems = {
        "whisper.cpp (assistant transcribe)": lambda: engine.transcribe(audio).text,
        "faster-whisper int8": lambda: fw_text(audio),
    }
    for name, fn in long_systems.items():
        ms, text = timed(fn, 1)
        results["long"][name] = {"seconds": round(ms / 1000, 2), "rtf": round(ms / 1000 / duration, 4),
                                 "wer": round(wer([(ref, text)]), 4)}
    results["long_audio_s"] = round(duration, 1)

    print(f"\nShort commands ({len(clips)} real clips, median of per-clip medians over {args.repeats} runs)")
    print("| system | median ms | p95 ms | x full window | WER |\n|---|---|---|---|---|")
    for name, r in results["short"].items():
        print(f"| {name} | {r['median_ms']} | {r['p95_ms']} | {r['vs_full_window']} | {r['wer']:.3f} |")
    print(f"\nLong form ({duration / 60:.1f} min, LJSpeech LJ001-0001..0032)")
    print("| system | seconds | real-time factor | WER |\n|---|---|---|---|")
    for name, r in results["long"].items():
        print(f"| {name} | {r['seconds']} | {r['rtf']} | {r['wer']:.3f} |")
    print("\naudio_ctx floor (frames) -> WER on the short clips (decodes redone wider): " +
          ", ".join(f"{k}: {v['wer']:.3f} ({v['widened']})" for k, v in floors.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
