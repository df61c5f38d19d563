"""Listening-pipeline benchmark: end of speech -> final text through the real threads in real time,
against faster-whisper int8 started at the same end decision. Method and results: README-listen.md.

    pip install -e '.[bench]' && python benchmarks/bench_listen.py [--threads N] [--quick] [--out FILE]

A full run takes about 8 minutes; --quick about 2 (12 utterances, a 10 s silence phase, no sweeps).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant import config as config_mod  # noqa: E402
from assistant.asr.engine import FULL_AUDIO_CTX, Aborted, Engine  # noqa: E402
from assistant.asr.models import load_engine  # noqa: E402
from assistant.asr.wer import wer  # noqa: E402
from assistant.audio import SAMPLE_RATE, int16_to_float, load_audio  # noqa: E402
from assistant.audio.sources import FileSource  # noqa: E402
from assistant.audio.vad import Segmenter, SpeechEnd  # noqa: E402
from assistant.pipeline import events as ev  # noqa: E402
from assistant.pipeline.app import Pipeline  # noqa: E402
from benchmarks.common.baseline import FasterWhisper  # noqa: E402
from benchmarks.common.clock import ClockedSource  # noqa: E402
from benchmarks.common.cpu import Sampler  # noqa: E402
from benchmarks.common.data import SPEECH as SHARED  # noqa: E402
from benchmarks.common.engine import transcribe  # noqa: E402
from benchmarks.common.signal import Clip, add_floor, fade, normalise, trim, write_wav  # noqa: E402
from benchmarks.common.stats import mean, med, pct, ratio, spread  # noqa: E402
from benchmarks.common.synth import espeak, require  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "listen.json"
NOISE_DBFS = -70.0
GAP_S = 2.0
PRE_S, POST_S = 0.2, 0.3  # clip context kept around the speech
GOAL_MS = 150.0
GOAL_RATIO = 4.0
COMMANDS_S = (2.0, 3.0)  # "2-3 s commands": the goal's utterances

# real people (paths under SHARED); reference texts from the folders' transcripts
REAL = [
    "pocketsphinx/goforward.wav", "pocketsphinx/cards_002.wav",
    "pocketsphinx/cards_005.wav",
    "pocketsphinx/librivox_sense_and_sensibility_01_austen_64kb-0880.wav",
    "pocketsphinx/librivox_sense_and_sensibility_01_austen_64kb-0930.wav",
    "misc/speech/cmu_arctic_us_aew_a0001.wav",
    "misc/speech/cmu_arctic_us_aew_a0003.wav", "misc/speech/cmu_arctic_us_axb_a0004.wav",
    "misc/speech/cmu_arctic_us_axb_a0006.wav",
    "misc/commands/turn_on_the_living_room_lamp.wav", "misc/commands/living_room_light_en.wav",
    "misc/speech/lhotse_LJ002-0020.wav", "misc/speech/lhotse_LJ002-0035.wav",
    "ljspeech/wavs/LJ001-0002.wav", "ljspeech/wavs/LJ001-0008.wav",
    "ljspeech/wavs/LJ001-0013.wav",
]
SYNTH = [
    "what time is it right now", "set a timer for ten minutes", "what is twelve times seven",
    "cancel the timer please", "turn on the living room lamp", "turn off the kitchen light",
    "what's the weather like tomorrow", "set an alarm for seven thirty", "play some music in the bedroom",
    "how much time is left on the timer", "stop the music in the kitchen", "remind me to call mom at five",
    "what is the temperature outside", "add milk to the shopping list", "open the garage door",
    "what day of the week is it",
]
VOICES = ["en-us", "en-us+f3", "en-gb-x-rp", "en-us+m3", "en-us-nyc", "en+Alex", "en-gb-scotland",
          "en-029", "en-us+f2"]
SPEEDS = [150, 165, 180, 140]


# --- scenario: the utterances and the stream ------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Utt:
    name: str
    kind: str  # real | espeak
    text: str
    clip: Clip  # float32 16 kHz, speech + context, with the speech bounds in it
    start: float = 0.0  # true bounds in the stream, seconds (build_stream)
    end: float = 0.0

    @property
    def speech_s(self) -> float:
        return self.clip.speech_s


def references() -> Dict[str, str]:
    refs = {}
    for line in (SHARED / "pocketsphinx" / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t", 1)
        refs[f"pocketsphinx/{name}.wav"] = text
    for line in (SHARED / "misc" / "transcripts.tsv").read_text().splitlines():
        name, text = line.split("\t", 1)
        refs[f"misc/{name}"] = text
    for line in (SHARED / "ljspeech" / "metadata.csv").read_text().splitlines():
        name, text = line.split("|", 1)
        refs[f"ljspeech/wavs/{name}.wav"] = text.split("|")[0]
    return refs


def cut(audio: np.ndarray) -> Clip:
    """The speech with PRE_S / POST_S of context, faded in and out (no click at the joins)."""
    clip = trim(audio, PRE_S, POST_S)
    return dataclasses.replace(clip, audio=fade(clip.audio))


def real_utterances() -> List[Utt]:
    refs = references()
    return [Utt(Path(rel).stem, "real", refs[rel], cut(load_audio(SHARED / rel))) for rel in REAL]


def synthetic_utterances() -> List[Utt]:
    """SYNTH in espeak-ng's voices, peak -6 dBFS; a command under 1.5 s is said slower."""
    require("espeak-ng")
    utts = []
    for i, text in enumerate(SYNTH):
        voice, speed = VOICES[i % len(VOICES)], SPEEDS[i % len(SPEEDS)]
        while True:
            clip = cut(normalise(espeak(text, voice, speed)))
            if clip.speech_s >= 1.5 or speed <= 120:
                break
            speed -= 15
        utts.append(Utt(f"espeak:{voice}@{speed}", "espeak", text, clip))
    return utts


def interleave(utts: List[Utt]) -> List[Utt]:
    """Real and synthetic alternately, so load bursts on the machine hit both kinds."""
    real = [u for u in utts if u.kind == "real"]
    synth = [u for u in utts if u.kind == "espeak"]
    out = []
    for i in range(max(len(real), len(synth))):
        out += real[i:i + 1] + synth[i:i + 1]
    return out


def build_stream(utts: List[Utt], lead_s: float, seed: int = 0) -> Tuple[np.ndarray, List[Utt]]:
    """lead_s of the noise floor, then each clip followed by GAP_S of it; the utterances with
    their true bounds in the stream."""
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    parts, placed, pos = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)], [], int(lead_s * SAMPLE_RATE)
    for u in utts:
        at = pos / SAMPLE_RATE
        placed.append(dataclasses.replace(u, start=at + u.clip.start, end=at + u.clip.end))
        parts += [u.clip.audio, gap]
        pos += len(u.clip.audio) + len(gap)
    return add_floor(np.concatenate(parts), NOISE_DBFS, np.random.default_rng(seed)), placed


# --- run: the pipeline, traced through its hooks ---------------------------------------------------

@dataclass
class JobRecord:
    kind: str  # partial | speculative | final (the decoder's job kinds)
    utterance: int
    start: float  # wall clock when the decoder took it
    end: Optional[float] = None
    status: str = ""  # done | aborted | skipped


@dataclass
class Call:
    """One Engine.transcribe_command, and the decoder job it served."""

    kind: str
    job: Optional[JobRecord]
    n: int  # samples decoded
    start: float
    end: float = 0.0
    status: str = ""  # ok | aborted
    decode_ms: Optional[float] = None


class Trace:
    """The decoder's jobs (its `trace` hook) and the whisper calls made for them (TracedEngine)."""

    def __init__(self) -> None:
        self.jobs: List[JobRecord] = []
        self.calls: List[Call] = []
        self.current: Optional[JobRecord] = None
        self._open: Dict[int, JobRecord] = {}

    def __call__(self, event: str, job: Any) -> None:
        now = time.time()
        if event == "start":
            self.current = self._open[id(job)] = JobRecord(job.kind, job.utterance, now)
            self.jobs.append(self.current)
            return
        rec = self._open.pop(id(job), None)
        if rec is None:  # ended without being started
            rec = JobRecord(job.kind, job.utterance, now)
            self.jobs.append(rec)
        rec.end, rec.status = now, event
        if self.current is rec:
            self.current = None


class TracedEngine:
    """The real Engine; each transcribe_command is timed and tagged with the decoder's job."""

    def __init__(self, engine: Engine, trace: Trace):
        self._engine = engine
        self._trace = trace

    def transcribe_command(self, audio, *args, **kwargs):
        job = self._trace.current
        call = Call(job.kind if job else "?", job, len(audio), time.time())
        try:
            result = self._engine.transcribe_command(audio, *args, **kwargs)
            call.status = "ok"
            call.decode_ms = result.decode_ms if result is not None else None
            return result
        except Aborted:
            call.status = "aborted"
            raise
        finally:
            call.end = time.time()
            self._trace.calls.append(call)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


@dataclass
class Run:
    label: str
    threads: int
    interval_s: float
    partials: bool
    speculation: bool
    events: List[tuple] = field(default_factory=list)  # (sink wall, event)
    trace: Trace = field(default_factory=Trace)
    wall0: float = 0.0
    wall_end: float = 0.0
    listening_offset_ms: float = 0.0
    lateness: List[float] = field(default_factory=list)
    source_audio: Optional[np.ndarray] = None
    cpu_silence: Optional[float] = None
    cpu_speech: Optional[float] = None
    rss_peak_mb: Optional[float] = None
    others_cores: Optional[float] = None
    dropped: int = 0


def run_pipeline(label: str, wav: Path, engine: Engine, config, silence_s: float, *, speculate: bool = True) -> Run:
    """One real-time pass of the stream through the always-listening pipeline."""
    run = Run(label, engine.threads, config.partials.interval_s, config.partials.enabled, speculate)
    source = ClockedSource(FileSource(wav, config.audio))
    pipeline = Pipeline(source, TracedEngine(engine, run.trace), config,
                        [lambda e: run.events.append((time.time(), e))],
                        speculate=speculate, decoder_trace=run.trace)
    with Sampler(0.2) as cpu:
        pipeline.run()
    run.wall0, run.wall_end = source.wall0, time.time()
    run.lateness, run.dropped, run.source_audio = source.lateness, source.dropped, source.audio
    listening = [e for _, e in run.events if isinstance(e, ev.Listening)]
    run.listening_offset_ms = (listening[0].wall - run.wall0) * 1000 if listening else float("nan")
    if silence_s > 0:
        run.cpu_silence = cpu.cpu_pct(run.wall0 + 1.0, run.wall0 + silence_s - 0.5)
    run.cpu_speech = cpu.cpu_pct(run.wall0 + silence_s, run.wall_end)
    run.others_cores = cpu.others_cores(run.wall0, run.wall_end)
    peak = cpu.rss_max(run.wall0, run.wall_end)
    run.rss_peak_mb = peak / 2 ** 20 if peak else None
    return run


# --- analyse: one row per utterance ---------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """What the rows need besides the run: the VAD's hangover and when it speculates."""

    hangover_s: float
    tail_s: float  # the speculation starts this far into the silence (Segmenter.tail_s)
    audio_ctx_for: Callable[[int], int]  # the engine's window for n samples


def assign(t0: float, t1: float, utts: List[Utt]) -> Optional[int]:
    """The utterance a segment [t0, t1] (stream seconds) overlaps most, if any."""
    best, idx = 0.0, None
    for i, u in enumerate(utts):
        overlap = min(t1, u.end + 0.3) - max(t0, u.start - 0.3)
        if overlap > best:
            best, idx = overlap, i
    return idx


def segments(run: Run) -> List[dict]:
    """speech_start / speech_end / final in stream order, with their partials and final job."""
    segs: List[dict] = []
    ended: List[dict] = []
    cur: Optional[dict] = None
    for _, e in run.events:
        if isinstance(e, ev.SpeechStarted):
            cur = {"start": e, "partials": []}
            segs.append(cur)
        elif isinstance(e, ev.SpeechEnded):
            if cur is None or "end" in cur:  # a cut monologue goes on without a new start event
                cur = {"start": None, "partials": []}
                segs.append(cur)
            cur["end"] = e
            ended.append(cur)
        elif isinstance(e, ev.Partial) and cur is not None:
            cur["partials"].append(e)
    # the decoder serves finals in order, one per speech_end
    finals = [e for _, e in run.events if isinstance(e, ev.Final)]
    jobs = [j for j in run.trace.jobs if j.kind == "final"]
    for k, seg in enumerate(ended):
        seg["final"] = finals[k] if k < len(finals) else None
        seg["job"] = jobs[k] if k < len(jobs) else None
    return segs


def vad_fields(run: Run, u: Utt, seg: dict, timing: Timing) -> dict:
    end = seg["end"]
    walls = [e.wall for e in seg["partials"]]
    return {"vad_end_error_ms": round((end.t - u.end) * 1000, 1),
            "hangover_ms": round((end.wall - (run.wall0 + u.end)) * 1000, 1),
            "listener_lag_ms": round((end.wall - run.wall0 - end.t - timing.hangover_s) * 1000, 1),
            "partials": len(walls),
            "partial_intervals_ms": [round((b - a) * 1000, 1) for a, b in zip(walls, walls[1:])],
            "first_partial_ms": round((walls[0] - (run.wall0 + u.start)) * 1000, 1) if walls else None}


def final_fields(run: Run, u: Utt, seg: dict, timing: Timing) -> dict:
    fin, end, job = seg["final"], seg["end"], seg.get("job")
    own = [c for c in run.trace.calls if job is not None and c.job is job]
    specs = [c for c in run.trace.calls if c.kind == "speculative" and job is not None
             and c.job is not None and c.job.utterance == job.utterance]
    decoded = own or specs  # the call whose text the final is
    row = {"final_ms": round((fin.wall - end.wall) * 1000, 1), "latency_ms_event": fin.latency_ms,
           "total_ms": round((fin.wall - (run.wall0 + u.end)) * 1000, 1), "decode_ms": fin.decode_ms,
           "audio_ctx": fin.audio_ctx,
           # wider than the window sized to the audio: transcribe_command's repetition-loop retry
           "loop_retry": bool(decoded) and fin.audio_ctx > timing.audio_ctx_for(decoded[-1].n),
           "sink_delay_ms": round((next(r for r, e in run.events if e is fin) - fin.wall) * 1000, 1)}
    if job is not None:
        row.update(decoder_fields(run, job, end.wall, own, specs, timing))
    return row


def decoder_fields(run: Run, job: JobRecord, decided: float, own: List[Call], specs: List[Call],
                   timing: Timing) -> dict:
    """What the decoder did around the end decision (decided: the speech_end wall clock, when
    the final job was queued)."""
    busy = [c for c in run.trace.calls if c.start <= decided < c.end]
    row = {"reused_speculation": not own, "queue_wait_ms": round((job.start - decided) * 1000, 1),
           "busy_at_decision": busy[0].kind if busy else "idle"}
    if specs:
        last = specs[-1]
        # queued when the silence reached tail_s: the decision's block, hangover - tail earlier
        submitted = decided - (timing.hangover_s - timing.tail_s)
        row.update({"spec_ready_before_decision_ms": round((decided - last.end) * 1000, 1),
                    "spec_submit_before_decision_ms": round((decided - submitted) * 1000, 1),
                    "spec_decode_ms": round((last.end - last.start) * 1000, 1),
                    "spec_started_after_submit_ms": round((last.start - submitted) * 1000, 1)})
    return row


def utterance_rows(run: Run, utts: List[Utt], timing: Timing) -> Tuple[List[dict], int]:
    """One row per utterance of the stream, and the number of segments that matched none."""
    per: List[Dict[str, Any]] = [{"name": u.name, "kind": u.kind, "ref": u.text, "speech_s": round(u.speech_s, 2),
                                  "segments": 0, "text": ""} for u in utts]
    false_alarms = 0
    for seg in segments(run):
        end = seg.get("end")
        if end is None:
            continue
        i = assign(seg["start"].t if seg["start"] is not None else end.t - 0.5, end.t, utts)
        if i is None:
            false_alarms += 1
            continue
        row = per[i]
        row["segments"] += 1
        row["text"] = (row["text"] + " " + (seg["final"].text if seg["final"] else "")).strip()
        row.update(vad_fields(run, utts[i], seg, timing))
        if seg["final"] is not None:
            row.update(final_fields(run, utts[i], seg, timing))
    return per, false_alarms


# --- analyse: one configuration -------------------------------------------------------------------

def is_command(row: dict) -> bool:
    return COMMANDS_S[0] <= row["speech_s"] <= COMMANDS_S[1]


def by_cause(single: List[dict]) -> dict:
    """speech_end -> final split by what the speculative decode ran into."""
    groups: Dict[str, list] = {"loop retry in a wider window": [], "waited for a partial (no loop)": [],
                               "neither": []}
    for r in single:
        if r.get("loop_retry"):
            groups["loop retry in a wider window"].append(r["final_ms"])
        elif (r.get("spec_started_after_submit_ms") or 0) > 10:
            groups["waited for a partial (no loop)"].append(r["final_ms"])
        else:
            groups["neither"].append(r["final_ms"])
    return {k: spread(v, "n", "median", "max") for k, v in groups.items()}


def latency_summary(per: List[dict], single: List[dict]) -> dict:
    col = lambda key, rows=single: [r.get(key) for r in rows]  # noqa: E731
    return {
        "total_ms": spread(col("total_ms")), "hangover_ms": spread(col("hangover_ms")),
        "vad_end_error_ms": spread(col("vad_end_error_ms")), "listener_lag_ms": spread(col("listener_lag_ms")),
        "final_ms": spread(col("final_ms"), "median", "p95", "max", "mean"),
        "final_ms_2to3s": spread(col("final_ms", [r for r in single if is_command(r)]), "n", "median", "p95"),
        "within_goal": sum(r["final_ms"] <= GOAL_MS for r in single),
        "decode_ms": spread(col("decode_ms")), "sink_delay_ms": spread(col("sink_delay_ms"), "median", "max"),
        "wer": round(wer([(r["ref"], r["text"]) for r in per]), 4),
    }


def decoder_summary(per: List[dict], single: List[dict], calls: List[Call]) -> dict:
    col = lambda key: [r.get(key) for r in single]  # noqa: E731
    intervals = [x for r in per for x in r.get("partial_intervals_ms", [])]
    kinds = ("partial", "speculative", "final")
    return {
        "speculation_reused": sum(bool(r.get("reused_speculation")) for r in single),
        "speculation_ready_at_decision": sum((r.get("spec_ready_before_decision_ms") or -1) >= 0 for r in single),
        "spec_start_delay_ms": spread(col("spec_started_after_submit_ms")),
        "spec_decode_ms": spread(col("spec_decode_ms")),
        "loop_retry_finals": sum(bool(r.get("loop_retry")) for r in single),
        "by_cause": by_cause(single),
        "busy_at_decision": {k: sum(r.get("busy_at_decision") == k for r in single) for k in ("idle", *kinds)},
        "queue_wait_ms": spread(col("queue_wait_ms")),
        "spec_ready_before_decision_ms": spread(col("spec_ready_before_decision_ms"), "median", "min"),
        "partial_interval_ms": spread(intervals, "median", "p95", "n"),
        "utterances_with_partial": sum(r.get("partials", 0) > 0 for r in per),
        "first_partial_ms": spread([r.get("first_partial_ms") for r in per], "median"),
        "whisper_calls": {k: sum(c.kind == k for c in calls) for k in kinds},
        "partials_aborted": sum(c.kind == "partial" and c.status == "aborted" for c in calls),
        "decoder_busy_s": {k: round(sum(c.end - c.start for c in calls if c.kind == k), 2) for k in kinds},
    }


def machine_summary(runs: List[Run]) -> dict:
    weights = [r.wall_end - r.wall0 for r in runs]

    def avg(values):  # weighted by run length
        pairs = [(v, w) for v, w in zip(values, weights) if v is not None]
        return round(sum(v * w for v, w in pairs) / sum(w for _, w in pairs), 2) if pairs else None

    lateness = [1000 * x for r in runs for x in r.lateness]
    return {
        "cpu_silence_pct": avg([r.cpu_silence for r in runs]), "cpu_speech_pct": avg([r.cpu_speech for r in runs]),
        "rss_peak_mb_sampled": max((r.rss_peak_mb or 0) for r in runs) or None,
        "other_processes_cores": avg([r.others_cores for r in runs]),
        "listening_offset_ms": round(max(r.listening_offset_ms for r in runs), 2),
        "block_lateness_ms": {"median": round(float(np.median(lateness)), 2),
                              "max": round(float(np.max(lateness)), 2)} if lateness else None,
        "dropped_blocks": sum(r.dropped for r in runs),
    }


def analyse(runs: List[Run], utt_sets: List[List[Utt]], timing: Timing) -> dict:
    """Summary of one configuration over one or more runs (rounds) of it."""
    per, false_alarms = [], 0
    for run, utts in zip(runs, utt_sets):
        rows, fa = utterance_rows(run, utts, timing)
        per += rows
        false_alarms += fa
    single = [r for r in per if r["segments"] == 1 and "final_ms" in r]
    first = runs[0]
    return {
        "label": first.label, "threads": first.threads, "partial_interval_s": first.interval_s,
        "partials": first.partials, "speculation": first.speculation, "runs": len(runs),
        "utterances": len(per), "single_segment": len(single),
        "split": sum(r["segments"] > 1 for r in per), "missed": sum(r["segments"] == 0 for r in per),
        "false_alarms": false_alarms,
        **latency_summary(per, single),
        **decoder_summary(per, single, [c for r in runs for c in r.trace.calls]),
        **machine_summary(runs),
        "per_utterance": per,
    }


# --- the baseline: the same cuts, decoded offline -------------------------------------------------

Decode = Callable[[np.ndarray], Tuple[float, str, int]]  # int16 audio -> (ms, text, audio_ctx)


def offline_cuts(audio: np.ndarray, vad_config, utts: List[Utt]) -> Dict[int, List[SpeechEnd]]:
    """The stream through a Segmenter offline: the live pipeline's cuts, by utterance."""
    seg = Segmenter(vad_config)
    by_utt: Dict[int, List[SpeechEnd]] = {}
    for e in [r for r in seg.feed(audio) + seg.flush() if isinstance(r, SpeechEnd)]:
        i = assign(e.start, e.t, utts)
        if i is not None:
            by_utt.setdefault(i, []).append(e)
    return by_utt


def decoders(fw: FasterWhisper, engine: Engine) -> Dict[str, Decode]:
    """The baseline (fw) and the shipped whisper.cpp call (cpp: a final without speculation)."""
    def cpp(audio16: np.ndarray) -> Tuple[float, str, int]:
        r = transcribe(engine, audio16)
        return r.decode_ms, r.text, r.audio_ctx

    def faster(audio16: np.ndarray) -> Tuple[float, str, int]:
        return (*fw.timed(int16_to_float(audio16)), FULL_AUDIO_CTX)

    return {"fw": faster, "cpp": cpp}


def baseline_pass(cuts: Dict[int, List[SpeechEnd]], systems: Dict[str, Decode], store: dict, shift: int = 0) -> None:
    """One decode of every cut by each system, rotating which goes first (load hits all alike)."""
    names = list(systems)
    for k, i in enumerate(sorted(cuts)):
        for j, end in enumerate(cuts[i]):
            r = (k + shift) % len(names)
            for name in names[r:] + names[:r]:
                ms, text, ctx = systems[name](end.audio)
                rec = store.setdefault(name, {}).setdefault((i, j), {"ms": [], "text": text, "ctx": [],
                                                                     "n": len(end.audio)})
                rec["ms"].append(ms)
                rec["ctx"].append(ctx)


def summarise_baseline(store: dict, cuts: Dict[int, List[SpeechEnd]], utts: List[Utt], system: str,
                       engine: Optional[Engine] = None) -> dict:
    per: List[Dict[str, Any]] = []
    lat: List[float] = []
    lat_cmd: List[float] = []
    for i, u in enumerate(utts):
        keys = [(i, j) for j in range(len(cuts.get(i, [])))]
        ms = [float(np.median(store[system][k]["ms"])) for k in keys]
        per.append({"name": u.name, "ref": u.text, "text": " ".join(store[system][k]["text"] for k in keys).strip(),
                    "ms": [round(m, 1) for m in ms], "audio_ctx": [store[system][k]["ctx"] for k in keys]})
        if len(keys) == 1:
            lat.append(ms[0])
            if COMMANDS_S[0] <= u.speech_s <= COMMANDS_S[1]:
                lat_cmd.append(ms[0])
    recs = store[system].values()
    return {"final_ms": spread(lat, "median", "p95", "mean"),
            "wider_window_retries": None if engine is None else sum(
                c > engine.audio_ctx_for(rec["n"]) for rec in recs for c in rec["ctx"]),
            "decodes": sum(len(rec["ms"]) for rec in recs),
            "final_ms_2to3s": {"n": len(lat_cmd), "median": med(lat_cmd), "p95": pct(lat_cmd, 95)},
            "wer": round(wer([(r["ref"], r["text"]) for r in per]), 4), "per_utterance": per}


class Offline:
    """The default run's cuts decoded offline by both systems, in passes between the live runs."""

    def __init__(self, default: Run, utts: List[Utt], config, engine: Engine, log: Callable[[str], None]):
        self.utts, self.engine, self.log = utts, engine, log
        assert default.source_audio is not None
        self.cuts = offline_cuts(default.source_audio, config.vad, utts)
        live = sorted(round(e.t, 3) for _, e in default.events if isinstance(e, ev.SpeechEnded))
        self.same_cuts = live == sorted(round(e.t, 3) for c in self.cuts.values() for e in c)
        self.fw = FasterWhisper(engine.threads)
        self.systems = decoders(self.fw, engine)
        self.store: dict = {}
        self.passes = 0

    def run_pass(self) -> None:
        baseline_pass(self.cuts, self.systems, self.store, shift=self.passes)
        self.passes += 1
        self.log(f"baseline pass {self.passes} done")

    def summaries(self) -> Tuple[dict, dict]:
        """(the baseline, whisper.cpp offline) on the same cuts."""
        return (summarise_baseline(self.store, self.cuts, self.utts, "fw"),
                summarise_baseline(self.store, self.cuts, self.utts, "cpp", self.engine))


# --- the sweeps (full run only) --------------------------------------------------------------------

SWEEP = [  # label, whisper threads 1 (else the default's), partial cadence s
    ("default", False, 0.5), ("threads 1", True, 0.5), ("cadence 1.0 s", False, 1.0),
    ("threads 1, cadence 1.0 s", True, 1.0),
]


def sweep_rounds(utts: List[Utt], tmp: Path) -> Tuple[List[List[Utt]], List[Path]]:
    """8 commands of 2-3 s in two rounds of 4, each its own stream."""
    subset = interleave([u for u in utts if COMMANDS_S[0] <= u.speech_s <= COMMANDS_S[1]])[:8]
    rounds, wavs = [], []
    for k, r in enumerate([subset[0::2], subset[1::2]]):
        stream, placed = build_stream(r, lead_s=1.0, seed=k + 1)
        rounds.append(placed)
        wavs.append(write_wav(tmp / f"round{k}.wav", stream))
    return rounds, wavs


def run_sweeps(rounds: List[List[Utt]], wavs: List[Path], engines: Dict[bool, Engine], config,
               timing: Timing, log: Callable[[str], None]) -> List[dict]:
    """Each configuration on both rounds (in order, then in reverse order: slow drifts of the
    machine's load hit every configuration alike), paired per utterance with the default."""
    runs: Dict[str, list] = {label: [] for label, *_ in SWEEP}
    for k, (order, wav) in enumerate(zip((SWEEP, SWEEP[::-1]), wavs)):
        for label, one_thread, interval in order:
            cfg = dataclasses.replace(config, partials=dataclasses.replace(config.partials, interval_s=interval))
            name = f"default (threads {engines[False].threads}, cadence 0.5 s)" if label == "default" else label
            runs[label].append(run_pipeline(name, wav, engines[one_thread], cfg, 0.0))
        log(f"sweep round {k + 1} done")
    out: List[dict] = []
    for label, one_thread, _ in SWEEP:
        r = analyse(runs[label], rounds, dataclasses.replace(timing, audio_ctx_for=engines[one_thread].audio_ctx_for))
        if out:  # paired with the default run: same utterance, same stream
            d = [a["final_ms"] - b["final_ms"] for a, b in zip(r["per_utterance"], out[0]["per_utterance"])
                 if "final_ms" in a and "final_ms" in b]
            r["paired_delta_vs_default_ms"] = {"median": med(d), "mean": mean(d)}
        out.append(r)
        log(f"sweep {label}: final {r['final_ms']}, ready {r['speculation_ready_at_decision']}/"
            f"{r['single_segment']}, cpu {r['cpu_speech_pct']}%, others {r['other_processes_cores']} cores")
    return out


def offline_threads(rounds: List[List[Utt]], wavs: List[Path], engines: Dict[bool, Engine], fw: FasterWhisper,
                    config) -> dict:
    """One- against N-thread decode times of both systems on the sweep's cuts, interleaved per cut."""
    subset: List[Utt] = []
    cuts: Dict[int, List[SpeechEnd]] = {}
    for r, wav in zip(rounds, wavs):
        for i, c in offline_cuts(load_audio(wav), config.vad, r).items():
            cuts[len(subset) + i] = c
        subset += r
    n = engines[False].threads
    systems = {**{f"{k}_t{n}": f for k, f in decoders(fw, engines[False]).items()},
               **{f"{k}_t1": f for k, f in decoders(FasterWhisper(1), engines[True]).items()}}
    store: dict = {}
    baseline_pass(cuts, systems, store)
    return {name: summarise_baseline(store, cuts, subset, name)["final_ms"] for name in systems}


def sweep_all(sc: Scenario, offline: Offline, log: Callable[[str], None]) -> Tuple[List[dict], dict]:
    """The sweeps, then a second offline pass, then one- against N-thread offline decodes."""
    one = load_engine(dataclasses.replace(sc.config.asr, threads=1))
    one.warm_up()
    engines = {False: sc.engine, True: one}
    rounds, wavs = sweep_rounds(sc.utts, sc.tmp)
    sweeps = run_sweeps(rounds, wavs, engines, sc.config, sc.timing, log)
    offline.run_pass()
    return sweeps, offline_threads(rounds, wavs, engines, offline.fw, sc.config)


# --- report ----------------------------------------------------------------------------------------

def fmt(d: Optional[dict], key: str = "median", alt: str = "p95") -> str:
    a, b = (d.get(key), d.get(alt)) if d else (None, None)
    return f"{a:.0f} / {b:.0f}" if a is not None and b is not None else "-"


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.3f} ({1 / r:.1f}x)" if r > 0 else "0"


def goals(ours: dict, base: dict) -> dict:
    ratios = {stat: ratio(ours["final_ms"].get(stat), base["final_ms"].get(stat)) for stat in ("median", "p95", "mean")}
    ratios.update({f"{stat}_2to3s": ratio(ours["final_ms_2to3s"].get(stat), base["final_ms_2to3s"].get(stat))
                   for stat in ("median", "p95")})
    cmd = ours["final_ms_2to3s"]
    faster = {stat: (ratios[stat] or float("inf")) <= 1 / GOAL_RATIO for stat in ("median", "p95", "mean")}
    return {
        "final_within_150ms_median_2to3s": cmd["median"] is not None and cmd["median"] <= GOAL_MS,
        "final_within_150ms_p95_2to3s": cmd["p95"] is not None and cmd["p95"] <= GOAL_MS,
        "final_within_150ms_share_all": f"{ours['within_goal']}/{ours['single_segment']}",
        **{f"at_least_4x_faster_{stat}": ok for stat, ok in faster.items()},
        "ratio_ours_over_baseline": ratios,
        "true_end_to_final_median_ours_ms": ours["total_ms"]["median"],
        "true_end_to_final_median_baseline_ms": base["total_ms"]["median"],
    }


def baseline_total(ours: dict, base: dict) -> dict:
    """The baseline's true end -> final: the same live hangover, then its decode."""
    totals = [o["hangover_ms"] + b["ms"][0] for o, b in zip(ours["per_utterance"], base["per_utterance"])
              if o["segments"] == 1 and len(b["ms"]) == 1 and "hangover_ms" in o]
    return spread(totals)


def report_latency(result: dict) -> List[str]:
    o, b, cpp, g = result["ours"], result["baseline"], result["offline_whisper_cpp_same_cuts"], result["goals"]
    d = result["data"]
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    r = g["ratio_ours_over_baseline"]
    return [
        f"\n### Listening pipeline, tiny.en, {result['config']['threads']} threads, {d['utterances']} utterances "
        f"({d['real']} real), speech {d['speech_s']['min']:.1f}-{d['speech_s']['max']:.1f} s, median / p95 ms\n",
        "| system | true end -> final | hangover (true end -> speech_end) | speech_end -> final | "
        "speech_end -> final, 2-3 s | decode_ms | WER |", "|---|---|---|---|---|---|---|",
        f"| ours (shipped, live) | {fmt(o['total_ms'])} | {fmt(o['hangover_ms'])} | {fmt(o['final_ms'])} | "
        f"{fmt(o['final_ms_2to3s'])} | {fmt(o['decode_ms'])} | {o['wer']:.3f} |",
        f"| baseline: faster-whisper int8, 30 s window, same cuts | {fmt(b['total_ms'])} | same as ours | "
        f"{fmt(b['final_ms'])} | {fmt(b['final_ms_2to3s'])} | {fmt(b['final_ms'])} | {b['wer']:.3f} |",
        f"| whisper.cpp sized audio_ctx on the same cuts, offline (= no speculation) | - | - | {fmt(cpp['final_ms'])} "
        f"| {fmt(cpp['final_ms_2to3s'])} | {fmt(cpp['final_ms'])} | {cpp['wer']:.3f} |",
        f"\nours / baseline, speech_end -> final: median {fmt_ratio(r['median'])}, p95 {fmt_ratio(r['p95'])}, "
        f"mean {fmt_ratio(r['mean'])}; 2-3 s commands: median {fmt_ratio(r['median_2to3s'])}, "
        f"p95 {fmt_ratio(r['p95_2to3s'])}",
        f"goal <= {GOAL_MS:.0f} ms after the decision for 2-3 s commands (n={o['final_ms_2to3s']['n']}): median "
        f"{yes(g['final_within_150ms_median_2to3s'])}, p95 {yes(g['final_within_150ms_p95_2to3s'])}; "
        f"all utterances within {GOAL_MS:.0f} ms: {g['final_within_150ms_share_all']}. "
        f">= {GOAL_RATIO:.0f}x faster than the baseline: median {yes(g['at_least_4x_faster_median'])}, "
        f"p95 {yes(g['at_least_4x_faster_p95'])}, mean {yes(g['at_least_4x_faster_mean'])}",
    ]


def report_detail(result: dict) -> List[str]:
    o, cpp, n = result["ours"], result["offline_whisper_cpp_same_cuts"], result["ours"]["single_segment"]
    busy, calls, late = o["busy_at_decision"], o["whisper_calls"], o["block_lateness_ms"]
    rows = [
        ("speculative decode reused", f"{o['speculation_reused']}/{n}"),
        ("decoder at the end decision (idle/partial/speculative)",
         f"{busy['idle']}/{busy['partial']}/{busy['speculative']}"),
        ("speculation finished before the decision", f"{o['speculation_ready_at_decision']}/{n}"),
        ("speculation finished before the decision by, median / min ms (< 0: after)",
         fmt(o["spec_ready_before_decision_ms"], "median", "min")),
        ("speculation: wait for a busy decoder (from its estimated submission), median / p95 ms",
         fmt(o["spec_start_delay_ms"])),
        ("speculation: its decode, median / p95 ms", fmt(o["spec_decode_ms"])),
        ("finals that needed the repetition-loop retry in a wider window", f"{o['loop_retry_finals']}/{n}"),
        ("offline decodes of the same cuts that needed it (all passes)",
         f"{cpp['wider_window_retries']}/{cpp['decodes']}"),
        *[(f"speech_end -> final when the speculation met: {k} (n, median / max ms)",
           f"{v['n']}: {fmt(v, 'median', 'max')}") for k, v in o["by_cause"].items()],
        ("VAD end - true end, median / p95 ms", fmt(o["vad_end_error_ms"])),
        ("listener lag behind the audio at the decision, median / p95 ms", fmt(o["listener_lag_ms"])),
        ("partial interval, median / p95 ms", fmt(o["partial_interval_ms"])),
        ("utterances with >= 1 partial", f"{o['utterances_with_partial']}/{o['utterances']}"),
        ("whisper calls partial/speculative/final (partials aborted)",
         f"{calls['partial']}/{calls['speculative']}/{calls['final']} ({o['partials_aborted']})"),
        ("split / missed / false alarms", f"{o['split']} / {o['missed']} / {o['false_alarms']}"),
        (f"CPU, % of one core: {result['data']['silence_phase_s']:.0f} s silence / speech stream",
         f"{o['cpu_silence_pct']} / {o['cpu_speech_pct']}"),
        ("other processes on the machine during the run (cores of 2)", f"{o['other_processes_cores']}"),
        ("peak RSS (ru_maxrss, before faster-whisper loads)", f"{result['peak_rss_mb_maxrss']:.0f} MB"),
        ("listening event - stream t0 (ms); blocks read after due, median / max (ms)",
         f"{o['listening_offset_ms']}; {late['median']} / {late['max']}" if late else "-"),
        ("offline Segmenter cuts == live cuts", str(result["baseline"]["same_cuts_as_live"])),
    ]
    return ["\n| pipeline detail | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def report_sweeps(sweeps: List[dict], offline: Optional[dict]) -> List[str]:
    if not sweeps:
        return []
    lines = [f"\n### Sweeps: {sweeps[0]['utterances']} commands of 2-3 s, same stream each run, median / p95 ms\n",
             "| run | speech_end -> final | paired change vs default, median / mean | true end -> final | "
             "spec reused / ready in time | busy at decision (partial/spec) | spec decode | loop retries | "
             "partial interval | utts w/ partial | CPU % (speech) | others (cores) | WER |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sweeps:
        pd, n = r.get("paired_delta_vs_default_ms"), r["single_segment"]
        lines.append(
            f"| {r['label']} | {fmt(r['final_ms'])} | {fmt(pd, 'median', 'mean')} | {fmt(r['total_ms'])} | "
            f"{r['speculation_reused']} / {r['speculation_ready_at_decision']} of {n} | "
            f"{r['busy_at_decision']['partial']}/{r['busy_at_decision']['speculative']} | {fmt(r['spec_decode_ms'])} | "
            f"{r['loop_retry_finals']}/{n} | {fmt(r['partial_interval_ms'])} | "
            f"{r['utterances_with_partial']}/{r['utterances']} | {r['cpu_speech_pct']} | "
            f"{r['other_processes_cores']} | {r['wer']:.3f} |")
    if offline:
        names = {"fw": "faster-whisper", "cpp": "whisper.cpp"}
        lines.append(f"\nOffline decode of the same {sweeps[0]['utterances']} cuts, median / p95 ms: " + ", ".join(
            f"{names[n.split('_t')[0]]} threads {n.split('_t')[1]} {fmt(v)}" for n, v in offline.items()))
    return lines


# --- main --------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="whisper threads for both systems (default: config asr.threads; 0 = cores, max 4)")
    parser.add_argument("--quick", action="store_true", help="12 utterances, 10 s of silence, no sweeps (~2 min)")
    parser.add_argument("--silence", type=float, default=None,
                        help="seconds of the idle-CPU phase before the speech (default 30; 10 with --quick)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--keep", metavar="DIR", help="keep the generated stream WAVs here")
    parser.add_argument("--config", help="experiment: this config file instead of config.yaml")
    return parser.parse_args()


@dataclass(frozen=True)
class Scenario:
    config: Any
    engine: Engine
    tmp: Path  # the stream WAVs
    utts: List[Utt]  # as placed in the stream
    silence_s: float  # the idle-CPU phase before the speech
    stream: np.ndarray
    wav: Path
    timing: Timing


def scenario(args: argparse.Namespace) -> Scenario:
    """The configuration, the warmed-up engine and the stream (written to a WAV)."""
    config = config_mod.load(args.config) if args.config else config_mod.load()
    if args.threads is not None:
        config = dataclasses.replace(config, asr=dataclasses.replace(config.asr, threads=args.threads))
    engine = load_engine(config.asr)
    engine.warm_up()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_listen_"))
    tmp.mkdir(parents=True, exist_ok=True)
    utts = interleave(real_utterances() + synthetic_utterances())[: 12 if args.quick else None]
    silence_s = args.silence if args.silence is not None else 10.0 if args.quick else 30.0
    stream, utts = build_stream(utts, lead_s=silence_s + 1.0)
    timing = Timing(config.vad.hangover_ms / 1000, Segmenter(config.vad).tail_s, engine.audio_ctx_for)
    return Scenario(config, engine, tmp, utts, silence_s, stream, write_wav(tmp / "stream.wav", stream), timing)


def describe(sc: Scenario, load_before: tuple) -> dict:
    speech = [u.speech_s for u in sc.utts]
    return {
        "machine": {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "config": {"model": sc.config.asr.model, "threads": sc.engine.threads, "vad": dataclasses.asdict(sc.config.vad),
                   "partials": dataclasses.asdict(sc.config.partials), "block_ms": sc.config.audio.block_ms,
                   "tail_ms": round(sc.timing.tail_s * 1000)},
        "data": {"utterances": len(sc.utts), "real": sum(u.kind == "real" for u in sc.utts),
                 "speech_s": {"min": round(min(speech), 2), "median": round(float(np.median(speech)), 2),
                              "max": round(max(speech), 2)},
                 "gap_s": GAP_S, "noise_floor_dbfs": NOISE_DBFS, "silence_phase_s": sc.silence_s,
                 "stream_s": round(len(sc.stream) / SAMPLE_RATE, 1)},
    }


def main() -> int:
    args = parse_args()
    t_begin = time.time()
    log = lambda m: print(f"[{time.time() - t_begin:5.0f} s] {m}", file=sys.stderr, flush=True)  # noqa: E731
    sc = scenario(args)
    load_before = os.getloadavg()
    log(f"{len(sc.utts)} utterances, stream {len(sc.stream) / SAMPLE_RATE:.0f} s ({sc.silence_s:.0f} s silence "
        f"first); whisper threads {sc.engine.threads}, load {load_before[0]:.2f}")
    default = run_pipeline("default", sc.wav, sc.engine, sc.config, sc.silence_s)  # the shipped pipeline
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before faster-whisper loads
    ours = analyse([default], [sc.utts], sc.timing)
    log(f"default run: final {ours['final_ms']}, reused {ours['speculation_reused']}/{ours['single_segment']}")
    offline = Offline(default, sc.utts, sc.config, sc.engine, log)
    offline.run_pass()
    sweeps: List[dict] = []
    threads_offline: Optional[dict] = None
    if args.quick:  # the second pass at once; a full run makes it between the sweeps and the thread timings
        offline.run_pass()
    else:
        sweeps, threads_offline = sweep_all(sc, offline, log)
    base, cpp = offline.summaries()
    base["total_ms"] = baseline_total(ours, base)
    result = {**describe(sc, load_before), "ours": ours, "peak_rss_mb_maxrss": round(maxrss_mb, 1),
              "baseline": {"system": "faster-whisper int8 tiny.en, beam 1, no timestamps, 30 s window",
                           "passes": offline.passes, "same_cuts_as_live": offline.same_cuts, **base},
              "offline_whisper_cpp_same_cuts": cpp, "goals": goals(ours, base), "sweeps": sweeps,
              "runtime_s": round(time.time() - t_begin, 1)}
    if threads_offline:
        result["offline_decode_threads_subset"] = threads_offline
    print("\n".join(report_latency(result) + report_detail(result) + report_sweeps(sweeps, threads_offline)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nwrote {args.out} ({result['runtime_s']:.0f} s)")
    if not args.keep:
        shutil.rmtree(sc.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
