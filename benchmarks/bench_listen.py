"""Listening-pipeline benchmark: end of speech -> final text, through the real threads in real time,
against a RealtimeSTT-style baseline (faster-whisper int8, full 30 s window, started at the end decision).

    pip install -e '.[bench]' && python benchmarks/bench_listen.py [--threads N] [--quick]

Prints markdown tables and writes benchmarks/results/listen.json (README-listen.md explains them).
A full run takes about 8 minutes; --quick about 2 (12 utterances, a 10 s silence phase, no sweeps).

The stream (built fresh each run, written to a temporary WAV and played by the real FileSource):
- 30 s of a very low noise floor (-70 dBFS Gaussian) for the idle-CPU phase, then
- 32 utterances of 1.3-3.5 s of speech: 16 real recordings from /work/shared/speech (pocketsphinx
  cards / goforward / LibriVox, CMU ARCTIC, misc/commands lamp + light, LJSpeech and the lhotse LJ
  clips) and 16 assistant commands synthesised with espeak-ng (9 voices, 120-180 wpm; a command
  under 1.5 s is said slower), alternating, each trimmed to its speech +0.2 s before / +0.3 s after,
  separated by 2 s of the noise floor. The true start / end of each utterance is where it was placed
  plus its energy bounds on the clip itself (10 ms frames, 30 ms smoothing, frames within 35 dB of
  the clip's peak and 10 dB above its floor).
Timing: FileSource delivers a block when its last sample is due (t0 + samples / 16 kHz, t0 =
time.monotonic() when its thread starts); the benchmark wraps FileSource._play to take wall0 =
time.time() at that moment, so the true end of utterance i is heard at wall0 + true_end_i. The
`listening` event is emitted just before source.start(); its offset to wall0 is reported, and so is
how late each block was queued.
Instrumentation (no assistant/ code is changed): the decoder's job queue is replaced by a Queue
subclass that timestamps put/get of each job, and the engine is wrapped in a proxy that timestamps
every whisper call and tags it with the job it serves (partial / speculative / final). Both add
microseconds. A final whose job made no whisper call reused the speculative decode. CPU is
time.process_time() over wall time (all threads, % of one core); the load of other processes on
the machine is /proc/stat busy time minus ours.

Baseline: the same stream fed to a Segmenter offline gives the same cuts as the live pipeline
(checked: every live speech_end t must match); each cut's audio is decoded by faster-whisper int8
(beam 1, no timestamps, 30 s window) -- its latency from the end decision is its decode time, since
it can only start there. The baseline, an offline whisper.cpp decode of the same cut (the shipped
transcribe_command: what a final costs without speculation) and a patched single-window decode are
timed one after another per cut, rotating which goes first, in two passes (after the default run
and after the sweeps); per-cut medians.

Sweeps (full run only): 8 commands of 2-3 s through the pipeline with threads 1/N, partial cadence
0.5/1.0 s, and a patched engine call (one sized window; a repetition loop is cut at its first
repeat instead of being redone in wider windows), in two rounds of 4 commands (the configurations
in order, then in reverse order), with per-utterance changes paired against the default. The
default row of every table is the shipped code and config.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf

from machine import busy_cpu_seconds  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import assistant.pipeline.app as listen_mod  # noqa: E402
from assistant import config as config_mod  # noqa: E402
from assistant.pipeline import events as ev  # noqa: E402
from assistant.audio import SAMPLE_RATE, load_audio  # noqa: E402
from assistant.audio.sources import FileSource  # noqa: E402
from assistant.pipeline.app import Pipeline  # noqa: E402
from assistant.asr.models import ct2_folder, resolve  # noqa: E402
from assistant.audio.vad import Segmenter, SpeechEnd  # noqa: E402
from assistant.asr.wer import wer  # noqa: E402
from assistant.asr.engine import (TOKENS_PER_SECOND, Aborted, Engine, Transcript, Segment,  # noqa: E402
                               _as_float, _pad)

SHARED = Path(os.environ.get("SPEECH_DIR", ROOT.parent / "shared" / "speech"))
OUT = ROOT / "benchmarks" / "results" / "listen.json"
FRAME = 160  # 10 ms, for the energy bounds
NOISE_DBFS = -70.0
GAP_S = 2.0
PRE_S, POST_S = 0.2, 0.3  # clip context kept around the speech
GOAL_MS = 150.0
GOAL_RATIO = 4.0

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


# --- data ---------------------------------------------------------------------------------------

@dataclass
class Utt:
    name: str
    kind: str  # real | espeak
    text: str
    audio: np.ndarray  # float32 16 kHz, speech + context
    on: float  # speech bounds inside `audio`, seconds
    off: float
    start: float = 0.0  # true bounds in the stream, seconds
    end: float = 0.0

    @property
    def speech_s(self) -> float:
        return self.off - self.on


def frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    f = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10((f ** 2).mean(axis=1) + 1e-10)


def speech_bounds(x: np.ndarray) -> tuple:
    db = np.convolve(np.pad(frame_db(x), 1, mode="edge"), np.ones(3) / 3, mode="valid")
    live = db[db > -95]
    floor = float(np.percentile(live, 10)) if len(live) else -100.0
    on = np.nonzero(db > max(db.max() - 35, floor + 10))[0]
    return on[0] * FRAME / SAMPLE_RATE, (on[-1] + 1) * FRAME / SAMPLE_RATE


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


def trim(audio: np.ndarray) -> tuple:
    on, off = speech_bounds(audio)
    a = max(0, int((on - PRE_S) * SAMPLE_RATE))
    b = min(len(audio), int((off + POST_S) * SAMPLE_RATE))
    clip = audio[a:b].copy()
    fade = min(160, len(clip) // 4)  # 10 ms fades: no click at the joins
    clip[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
    clip[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return clip, on - a / SAMPLE_RATE, off - a / SAMPLE_RATE


def build_utterances(tmp: Path) -> List[Utt]:
    refs = references()
    utts = []
    for rel in REAL:
        clip, on, off = trim(load_audio(SHARED / rel))
        utts.append(Utt(Path(rel).stem, "real", refs[rel], clip, on, off))
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed for the synthesised commands: apt-get install espeak-ng")
    for i, text in enumerate(SYNTH):
        voice, speed = VOICES[i % len(VOICES)], SPEEDS[i % len(SPEEDS)]
        while True:
            wav = tmp / f"espeak_{i}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            audio = load_audio(wav)
            audio = audio * (0.5 / max(1e-6, float(np.abs(audio).max())))  # peak -6 dBFS
            clip, on, off = trim(audio)
            if off - on >= 1.5 or speed <= 120:
                break
            speed -= 15  # too short a command: say it slower
        utts.append(Utt(f"espeak:{voice}@{speed}", "espeak", text, clip.astype(np.float32), on, off))
    return utts


def interleave(utts: List[Utt]) -> List[Utt]:
    """Real and synthetic alternately, so load bursts on the machine hit both kinds."""
    real = [u for u in utts if u.kind == "real"]
    synth = [u for u in utts if u.kind == "espeak"]
    out = []
    for i in range(max(len(real), len(synth))):
        out += real[i:i + 1] + synth[i:i + 1]
    return out


def build_stream(utts: List[Utt], lead_s: float, seed: int = 0) -> np.ndarray:
    """lead_s of noise floor, then each clip followed by GAP_S of it. Sets utt.start / utt.end."""
    rng = np.random.default_rng(seed)
    parts, pos = [np.zeros(int(lead_s * SAMPLE_RATE), np.float32)], int(lead_s * SAMPLE_RATE)
    for u in utts:
        u.start = (pos / SAMPLE_RATE) + u.on
        u.end = (pos / SAMPLE_RATE) + u.off
        parts += [u.audio, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        pos += len(u.audio) + int(GAP_S * SAMPLE_RATE)
    x = np.concatenate(parts)
    x = x + rng.normal(0, 10 ** (NOISE_DBFS / 20), x.size).astype(np.float32)
    return np.clip(x, -1, 1)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    sf.write(str(path), np.round(audio * 32767).astype(np.int16), SAMPLE_RATE, subtype="PCM_16")
    return path


# --- instrumentation ------------------------------------------------------------------------------

class TimedFileSource(FileSource):
    """The shipped FileSource; records the wall clock of its t0 and how late each block was put."""

    wall0 = 0.0
    lateness: List[float]

    def _play(self, block: int) -> None:
        self.lateness = []
        q = self._queue
        put = q.put
        mono0 = time.monotonic()
        self.wall0 = time.time()
        sent = [0]

        def timed_put(chunk):
            sent[0] += len(chunk)
            self.lateness.append(time.monotonic() - (mono0 + sent[0] / SAMPLE_RATE))
            put(chunk)

        q.put = timed_put
        super()._play(block)


class Trace:
    def __init__(self):
        self.jobs: List[dict] = []  # every job put on the decoder's queue
        self.calls: List[dict] = []  # every whisper call
        self.current: Optional[dict] = None
        self.on_speculative = None  # called when the decoder takes a speculative job (a patch's hook)


class TracingQueue(queue.Queue):
    def __init__(self, trace: Trace, maxsize: int):
        super().__init__(maxsize)
        self.trace = trace

    def put(self, item, block=True, timeout=None):
        super().put(item, block, timeout)
        self.trace.jobs.append({"job": item, "kind": item.kind, "utt": item.utterance, "put": time.time(),
                                "n": 0 if item.audio is None else len(item.audio), "got": None})

    def get(self, block=True, timeout=None):
        item = super().get(block, timeout)
        if item.kind == "speculative" and self.trace.on_speculative is not None:
            self.trace.on_speculative()
        for rec in reversed(self.trace.jobs):
            if rec["job"] is item:
                rec["got"] = time.time()
                self.trace.current = rec
                break
        return item


def cut_repetition(text: str, n_samples: int) -> str:
    """The text up to where it starts repeating itself (a phrase of >= 2 words said again at once,
    or one word three times), capped at 5 words a second + 4."""
    words = text.split()
    keys = [re.sub(r"[^a-z0-9']", "", w.lower()) for w in words]
    for i in range(len(keys)):
        for n in range(2, (len(keys) - i) // 2 + 1):
            if keys[i:i + n] == keys[i + n:i + 2 * n]:
                return " ".join(words[:i + n])
        if i + 2 < len(keys) and keys[i] == keys[i + 1] == keys[i + 2]:
            return " ".join(words[:i + 1])
    return " ".join(words[: int(5 * n_samples / SAMPLE_RATE + 4)])


def one_window_truncated(engine: Engine, audio, prompt=None, abort=None, **_):
    """An alternative to Engine.transcribe_command (not the shipped code): one decode in the sized
    window; a repetition loop is cut at its first repeat instead of redone in wider windows."""
    audio = _as_float(audio)[: int(30 * SAMPLE_RATE)]
    ctx = engine.audio_ctx_for(audio.size)
    with engine._lock:
        start = time.perf_counter()
        max_tokens = int(TOKENS_PER_SECOND * audio.size / SAMPLE_RATE) + 16
        segments = engine._decode(_pad(audio), ctx, timestamps=False, prompt=prompt, abort=abort,
                                  max_tokens=max_tokens)
        decode_ms = (time.perf_counter() - start) * 1000
    if abort is not None and abort():
        raise Aborted()
    text = " ".join(s.text for s in segments).strip()
    text = cut_repetition(text, audio.size)
    duration = audio.size / SAMPLE_RATE
    return Transcript(text, [Segment(0.0, duration, text)] if text else [], ctx, decode_ms, duration)


class TracedEngine:
    """The real Engine; each transcribe_command is timed and tagged with the decoder's current job.
    With `alternative`, that function replaces Engine.transcribe_command (a patched run)."""

    def __init__(self, engine: Engine, trace: Trace, alternative=None):
        self._engine = engine
        self._trace = trace
        self._alternative = alternative

    def transcribe_command(self, audio, *args, **kwargs):
        rec = self._trace.current
        call = {"kind": rec["kind"] if rec else "?", "job": rec, "n": len(audio), "start": time.time()}
        try:
            if self._alternative is not None:
                result = self._alternative(self._engine, audio, *args, **kwargs)
            else:
                result = self._engine.transcribe_command(audio, *args, **kwargs)
            call["status"] = "ok"
            call["decode_ms"] = result.decode_ms if result is not None else None
            return result
        except Aborted:
            call["status"] = "aborted"
            raise
        finally:
            call["end"] = time.time()
            self._trace.calls.append(call)

    def __getattr__(self, name):
        return getattr(self._engine, name)


class Sampler(threading.Thread):
    """(wall, process CPU seconds, RSS bytes) every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process()
        self.samples: List[tuple] = []
        self.stop_ = threading.Event()

    def run(self):
        while not self.stop_.is_set():
            self.samples.append((time.time(), time.process_time(), self.proc.memory_info().rss, busy_cpu_seconds()))
            self.stop_.wait(0.2)

    def others(self, a: float, b: float) -> Optional[float]:
        """Cores used by other processes between walls a and b (the machine's noise)."""
        inside = [s for s in self.samples if a <= s[0] <= b]
        if len(inside) < 2:
            return None
        s0, s1 = inside[0], inside[-1]
        return ((s1[3] - s0[3]) - (s1[1] - s0[1])) / (s1[0] - s0[0])

    def cpu(self, a: float, b: float) -> Optional[float]:
        """% of one core between walls a and b (nearest samples inside)."""
        inside = [s for s in self.samples if a <= s[0] <= b]
        if len(inside) < 2:
            return None
        (w0, c0, *_), (w1, c1, *_) = inside[0], inside[-1]
        return 100.0 * (c1 - c0) / (w1 - w0)

    def rss_max(self, a: float, b: float) -> Optional[int]:
        inside = [s[2] for s in self.samples if a <= s[0] <= b]
        return max(inside) if inside else None


# --- running the pipeline -------------------------------------------------------------------------

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


def abort_partials_on_speculation(pipeline, trace: Trace) -> None:
    """An alternative (not the shipped code): a speculative job aborts an in-flight partial, as a
    final does, instead of queueing behind it."""
    decoder = pipeline.decoder
    pending = threading.Event()
    speculate, abort = decoder.speculate, decoder._abort

    def speculate_first(utterance, audio):
        pending.set()
        speculate(utterance, audio)

    decoder.speculate = speculate_first
    decoder._abort = lambda: abort() or pending.is_set()
    trace.on_speculative = pending.clear


def run_pipeline(label: str, wav: Path, engine: Engine, config, silence_s: float, *, speculation=True,
                 patch=None, alternative=None) -> Run:
    run = Run(label, engine.threads, config.partials.interval_s, config.partials.enabled, speculation)
    source = TimedFileSource(wav, config.audio)
    run.source_audio = source.audio
    sink = lambda e: run.events.append((time.time(), e))  # noqa: E731
    pipeline = Pipeline(source, TracedEngine(engine, run.trace, alternative), config, [sink])
    pipeline.decoder.jobs = TracingQueue(run.trace, pipeline.decoder.jobs.maxsize)
    if patch is not None:
        patch(pipeline, run.trace)
    sampler = Sampler()
    sampler.start()
    saved_tail = listen_mod.TAIL_MS
    if not speculation:
        listen_mod.TAIL_MS = 10 ** 6  # silence never gets there: no speculative decode
    try:
        pipeline.run()
    finally:
        listen_mod.TAIL_MS = saved_tail
        sampler.stop_.set()
        sampler.join()
    run.wall0 = source.wall0
    run.wall_end = time.time()
    run.lateness = source.lateness
    run.dropped = source.dropped
    listening = [e for _, e in run.events if isinstance(e, ev.Listening)]
    run.listening_offset_ms = (listening[0].wall - run.wall0) * 1000 if listening else float("nan")
    if silence_s > 0:
        run.cpu_silence = sampler.cpu(run.wall0 + 1.0, run.wall0 + silence_s - 0.5)
    run.cpu_speech = sampler.cpu(run.wall0 + silence_s, run.wall_end)
    run.others_cores = sampler.others(run.wall0, run.wall_end)
    peak = sampler.rss_max(run.wall0, run.wall_end)
    run.rss_peak_mb = peak / 2 ** 20 if peak else None
    return run


# --- analysis -------------------------------------------------------------------------------------

def pct(values, q) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 1) if values else None


def med(values) -> Optional[float]:
    return pct(values, 50)


def assign(t0: float, t1: float, utts: List[Utt]) -> Optional[int]:
    """The utterance a segment [t0, t1] (stream seconds) overlaps most, if any."""
    best, idx = 0.0, None
    for i, u in enumerate(utts):
        overlap = min(t1, u.end + 0.3) - max(t0, u.start - 0.3)
        if overlap > best:
            best, idx = overlap, i
    return idx


def segments(run: Run) -> List[dict]:
    """speech_start / speech_end / final triples in stream order, with their partials."""
    segs, cur = [], None
    finals = [e for _, e in run.events if isinstance(e, ev.Final)]
    ends = []
    for recv, e in run.events:
        if isinstance(e, ev.SpeechStarted):
            cur = {"start": e, "partials": []}
            segs.append(cur)
        elif isinstance(e, ev.SpeechEnded):
            if cur is None or "end" in cur:  # a cut monologue goes on without a new start event
                cur = {"start": None, "partials": []}
                segs.append(cur)
            cur["end"] = e
            ends.append(cur)
        elif isinstance(e, ev.Partial) and cur is not None:
            cur["partials"].append((recv, e))
    for seg, fin in zip(ends, finals):  # the decoder serves finals in order, one per speech_end
        seg["final"] = fin
    return segs


def utterance_rows(run: Run, utts: List[Utt], hangover_ms: float, engine: Engine) -> tuple:
    """One row per utterance of the stream, and the number of segments that matched none."""
    segs = segments(run)
    finals_by_wall = {j["job"].end_wall: j for j in run.trace.jobs if j["kind"] == "final"}
    calls_by_job: Dict[int, list] = {}
    for c in run.trace.calls:
        if c["job"] is not None:
            calls_by_job.setdefault(id(c["job"]), []).append(c)
    per: List[dict] = [{"name": u.name, "kind": u.kind, "ref": u.text, "speech_s": round(u.speech_s, 2),
                        "segments": 0, "text": ""} for u in utts]
    false_alarms = 0
    for seg in segs:
        end = seg.get("end")
        if end is None:
            continue
        t0 = seg["start"].t if seg["start"] is not None else end.t - 0.5
        i = assign(t0, end.t, utts)
        if i is None:
            false_alarms += 1
            continue
        u, row = utts[i], per[i]
        row["segments"] += 1
        fin = seg.get("final")
        row["text"] = (row["text"] + " " + (fin.text if fin else "")).strip()
        true_end_wall = run.wall0 + u.end
        row["vad_end_error_ms"] = round((end.t - u.end) * 1000, 1)
        row["hangover_ms"] = round((end.wall - true_end_wall) * 1000, 1)
        row["listener_lag_ms"] = round((end.wall - run.wall0 - end.t - hangover_ms / 1000) * 1000, 1)
        row["partials"] = len(seg["partials"])
        walls = [e.wall for _, e in seg["partials"]]
        row["partial_intervals_ms"] = [round((b - a) * 1000, 1) for a, b in zip(walls, walls[1:])]
        row["first_partial_ms"] = round((walls[0] - (run.wall0 + u.start)) * 1000, 1) if walls else None
        if fin is not None:
            row["final_ms"] = round((fin.wall - end.wall) * 1000, 1)
            row["latency_ms_event"] = fin.latency_ms
            row["total_ms"] = round((fin.wall - true_end_wall) * 1000, 1)
            row["decode_ms"] = fin.decode_ms
            row["audio_ctx"] = fin.audio_ctx
            # wider than the window sized to the audio: transcribe_command's repetition-loop retry
            row["loop_retry"] = fin.audio_ctx > engine.audio_ctx_for(len(end_audio(run, end)))
            row["sink_delay_ms"] = round((next(r for r, e in run.events if e is fin) - fin.wall) * 1000, 1)
        job = finals_by_wall.get(end.wall)
        if job is not None:
            own = calls_by_job.get(id(job), [])
            row["reused_speculation"] = not own
            row["queue_wait_ms"] = round((job["got"] - job["put"]) * 1000, 1) if job["got"] else None
            busy = [c for c in run.trace.calls if c["start"] <= job["put"] < c["end"]]
            row["busy_at_decision"] = busy[0]["kind"] if busy else "idle"
            specs = [c for c in run.trace.calls if c["kind"] == "speculative" and c["job"]["utt"] == job["utt"]]
            if specs:
                last = specs[-1]
                row["spec_ready_before_decision_ms"] = round((job["put"] - last["end"]) * 1000, 1)
                row["spec_submit_before_decision_ms"] = round((job["put"] - last["job"]["put"]) * 1000, 1)
                row["spec_decode_ms"] = round((last["end"] - last["start"]) * 1000, 1)
                row["spec_started_after_submit_ms"] = round((last["start"] - last["job"]["put"]) * 1000, 1)
    return per, false_alarms


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
    return {k: {"n": len(v), "median": med(v), "max": pct(v, 100)} for k, v in groups.items()}


def end_audio(run: Run, end) -> list:
    """The audio of the final job for this speech_end (from the trace), or [] if not found."""
    for j in run.trace.jobs:
        if j["kind"] == "final" and j["job"].end_wall == end.wall:
            return j["job"].audio
    return []


def analyse(runs: List[Run], utt_sets: List[List[Utt]], hangover_ms: float, engine: Engine) -> dict:
    """Summary of one configuration over one or more runs (rounds) of it."""
    per, false_alarms = [], 0
    for run, utts in zip(runs, utt_sets):
        rows, fa = utterance_rows(run, utts, hangover_ms, engine)
        per += rows
        false_alarms += fa
    run = runs[0]
    single = [r for r in per if r["segments"] == 1 and "final_ms" in r]
    cmd = [r for r in single if 2.0 <= r["speech_s"] <= 3.0]
    intervals = [x for r in per for x in r.get("partial_intervals_ms", [])]
    calls = [c for r in runs for c in r.trace.calls]
    busy_s = {k: sum(c["end"] - c["start"] for c in calls if c["kind"] == k) for k in ("partial", "speculative", "final")}
    weights = [r.wall_end - r.wall0 for r in runs]

    def avg(values):
        pairs = [(v, w) for v, w in zip(values, weights) if v is not None]
        return round(sum(v * w for v, w in pairs) / sum(w for _, w in pairs), 2) if pairs else None

    lateness = [x for r in runs for x in r.lateness]
    return {
        "label": run.label, "threads": run.threads, "partial_interval_s": run.interval_s,
        "partials": run.partials, "speculation": run.speculation, "runs": len(runs),
        "utterances": len(per), "single_segment": len(single),
        "split": sum(r["segments"] > 1 for r in per), "missed": sum(r["segments"] == 0 for r in per),
        "false_alarms": false_alarms,
        "total_ms": {"median": med([r["total_ms"] for r in single]), "p95": pct([r["total_ms"] for r in single], 95)},
        "hangover_ms": {"median": med([r["hangover_ms"] for r in single]), "p95": pct([r["hangover_ms"] for r in single], 95)},
        "vad_end_error_ms": {"median": med([r["vad_end_error_ms"] for r in single]),
                             "p95": pct([r["vad_end_error_ms"] for r in single], 95)},
        "listener_lag_ms": {"median": med([r["listener_lag_ms"] for r in single]),
                            "p95": pct([r["listener_lag_ms"] for r in single], 95)},
        "final_ms": {"median": med([r["final_ms"] for r in single]), "p95": pct([r["final_ms"] for r in single], 95),
                     "max": pct([r["final_ms"] for r in single], 100),
                     "mean": round(float(np.mean([r["final_ms"] for r in single])), 1) if single else None},
        "final_ms_2to3s": {"n": len(cmd), "median": med([r["final_ms"] for r in cmd]),
                           "p95": pct([r["final_ms"] for r in cmd], 95)},
        "within_goal": sum(r["final_ms"] <= GOAL_MS for r in single),
        "decode_ms": {"median": med([r["decode_ms"] for r in single]), "p95": pct([r["decode_ms"] for r in single], 95)},
        "sink_delay_ms": {"median": med([r["sink_delay_ms"] for r in single]), "max": pct([r["sink_delay_ms"] for r in single], 100)},
        "speculation_reused": sum(bool(r.get("reused_speculation")) for r in single),
        "speculation_ready_at_decision": sum((r.get("spec_ready_before_decision_ms") or -1) >= 0 for r in single),
        "spec_start_delay_ms": {"median": med([r.get("spec_started_after_submit_ms") for r in single]),
                                "p95": pct([r.get("spec_started_after_submit_ms") for r in single], 95)},
        "spec_decode_ms": {"median": med([r.get("spec_decode_ms") for r in single]),
                           "p95": pct([r.get("spec_decode_ms") for r in single], 95)},
        "loop_retry_finals": sum(bool(r.get("loop_retry")) for r in single),
        "by_cause": by_cause(single),
        "busy_at_decision": {k: sum(r.get("busy_at_decision") == k for r in single)
                             for k in ("idle", "partial", "speculative", "final")},
        "queue_wait_ms": {"median": med([r.get("queue_wait_ms") for r in single]),
                          "p95": pct([r.get("queue_wait_ms") for r in single], 95)},
        "spec_ready_before_decision_ms": {"median": med([r.get("spec_ready_before_decision_ms") for r in single]),
                                          "min": pct([r.get("spec_ready_before_decision_ms") for r in single], 0)},
        "partial_interval_ms": {"median": med(intervals), "p95": pct(intervals, 95), "n": len(intervals)},
        "utterances_with_partial": sum(r.get("partials", 0) > 0 for r in per),
        "first_partial_ms": {"median": med([r.get("first_partial_ms") for r in per])},
        "whisper_calls": {k: sum(c["kind"] == k for c in calls) for k in ("partial", "speculative", "final")},
        "partials_aborted": sum(c["kind"] == "partial" and c["status"] == "aborted" for c in calls),
        "decoder_busy_s": {k: round(v, 2) for k, v in busy_s.items()},
        "wer": round(wer([(r["ref"], r["text"]) for r in per]), 4),
        "cpu_silence_pct": avg([r.cpu_silence for r in runs]),
        "cpu_speech_pct": avg([r.cpu_speech for r in runs]),
        "rss_peak_mb_sampled": max((r.rss_peak_mb or 0) for r in runs) or None,
        "other_processes_cores": avg([r.others_cores for r in runs]),
        "listening_offset_ms": round(max(r.listening_offset_ms for r in runs), 2),
        "block_lateness_ms": {"median": round(1000 * float(np.median(lateness)), 2),
                              "max": round(1000 * float(np.max(lateness)), 2)} if lateness else None,
        "dropped_blocks": sum(r.dropped for r in runs),
        "per_utterance": per,
    }


# --- baseline -------------------------------------------------------------------------------------

def offline_cuts(audio: np.ndarray, vad_config, utts: List[Utt]) -> Dict[int, List[SpeechEnd]]:
    seg = Segmenter(vad_config)
    ends = [r for r in seg.feed(audio) + seg.flush() if isinstance(r, SpeechEnd)]
    by_utt: Dict[int, List[SpeechEnd]] = {}
    for e in ends:
        i = assign(e.start, e.t, utts)
        if i is not None:
            by_utt.setdefault(i, []).append(e)
    return by_utt


class Baseline:
    """faster-whisper int8 at its fixed 30 s window, as RealtimeSTT-style assistants run it."""

    def __init__(self, threads: int):
        import faster_whisper

        self.model = faster_whisper.WhisperModel(str(ct2_folder("tiny.en")), device="cpu",
                                                 compute_type="int8", cpu_threads=threads)
        self.decode(np.zeros(SAMPLE_RATE, np.float32))

    def decode(self, audio: np.ndarray) -> tuple:
        start = time.perf_counter()
        segs, _ = self.model.transcribe(audio, beam_size=1, without_timestamps=True, language="en")
        text = " ".join(s.text.strip() for s in segs)
        return (time.perf_counter() - start) * 1000, text


def decoders(fw: "Baseline", engine: Engine, patched: bool = False) -> dict:
    def cpp(audio16):
        r = engine.transcribe_command(audio16)
        return r.decode_ms, r.text, r.audio_ctx

    def cpp_cut(audio16):
        r = one_window_truncated(engine, audio16)
        return r.decode_ms, r.text, r.audio_ctx

    systems = {"fw": lambda audio16: (*fw.decode(audio16.astype(np.float32) / 32768.0), 1500), "cpp": cpp}
    if patched:
        systems["cpp_cut"] = cpp_cut
    return systems


def baseline_pass(cuts: Dict[int, List[SpeechEnd]], systems: dict, store: dict, shift: int = 0) -> None:
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
    per, lat, lat_cmd = [], [], []
    for i, u in enumerate(utts):
        keys = [(i, j) for j in range(len(cuts.get(i, [])))]
        text = " ".join(store[system][k]["text"] for k in keys).strip()
        ms = [statistics.median(store[system][k]["ms"]) for k in keys]
        per.append({"name": u.name, "ref": u.text, "text": text, "ms": [round(m, 1) for m in ms],
                    "audio_ctx": [store[system][k]["ctx"] for k in keys]})
        if len(keys) == 1:
            lat.append(ms[0])
            if 2.0 <= u.speech_s <= 3.0:
                lat_cmd.append(ms[0])
    return {"final_ms": {"median": med(lat), "p95": pct(lat, 95), "mean": round(float(np.mean(lat)), 1) if lat else None},
            "wider_window_retries": None if engine is None else sum(
                c > engine.audio_ctx_for(rec["n"]) for rec in store[system].values() for c in rec["ctx"]),
            "decodes": sum(len(rec["ms"]) for rec in store[system].values()),
            "final_ms_2to3s": {"n": len(lat_cmd), "median": med(lat_cmd), "p95": pct(lat_cmd, 95)},
            "wer": round(wer([(r["ref"], r["text"]) for r in per]), 4), "per_utterance": per}


# --- main -----------------------------------------------------------------------------------------

def fmt(d, key="median", alt="p95") -> str:
    a, b = d.get(key), d.get(alt)
    return f"{a:.0f} / {b:.0f}" if a is not None and b is not None else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None,
                        help="whisper threads for both systems (default: config asr.threads; 0 = cores, max 4)")
    parser.add_argument("--quick", action="store_true", help="12 utterances, 10 s of silence, no sweeps (~2 min)")
    parser.add_argument("--silence", type=float, default=None,
                        help="seconds of the idle-CPU phase before the speech (default 30; 10 with --quick)")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--keep", metavar="DIR", help="keep the generated stream WAVs here")
    parser.add_argument("--config", help="experiment: this config file instead of config.yaml")
    args = parser.parse_args()
    t_begin = time.time()

    config = config_mod.load(args.config) if args.config else config_mod.load()
    if args.threads is not None:
        config.asr.threads = args.threads
    engine = Engine.from_config(config.asr, resolve(config.asr.model))
    engine.warm_up()
    threads = engine.threads
    load_before = os.getloadavg()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_listen_"))
    tmp.mkdir(parents=True, exist_ok=True)
    utts = interleave(build_utterances(tmp))
    if args.quick:
        utts = utts[:12]
    silence_s = args.silence if args.silence is not None else 10.0 if args.quick else 30.0
    stream = build_stream(utts, lead_s=silence_s + 1.0)
    wav = write_wav(tmp / "stream.wav", stream)
    speech = [u.speech_s for u in utts]
    log = lambda m: print(f"[{time.time() - t_begin:5.0f} s] {m}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"{len(utts)} utterances ({sum(u.kind == 'real' for u in utts)} real), speech {min(speech):.2f}-"
        f"{max(speech):.2f} s, stream {len(stream) / SAMPLE_RATE:.0f} s ({silence_s:.0f} s silence first); "
        f"whisper threads {threads}, load {load_before[0]:.2f}")

    hangover_ms = config.vad.hangover_ms
    # 1. the shipped pipeline on the whole stream: silence phase, then the commands
    default = run_pipeline("default", wav, engine, config, silence_s)
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before faster-whisper loads
    res_default = analyse([default], [utts], hangover_ms, engine)
    log(f"default run: final {res_default['final_ms']}, reused {res_default['speculation_reused']}/"
        f"{res_default['single_segment']}")

    # 2. the same cuts offline, checked against the live ones
    cuts = offline_cuts(default.source_audio, config.vad, utts)
    live_ends = sorted(round(e.t, 3) for _, e in default.events if isinstance(e, ev.SpeechEnded))
    off_ends = sorted(round(e.t, 3) for c in cuts.values() for e in c)
    same_cuts = live_ends == off_ends
    fw = Baseline(threads)
    systems = decoders(fw, engine, patched=True)
    store: dict = {}
    passes = 0

    def full_pass():
        nonlocal passes
        baseline_pass(cuts, systems, store, shift=passes)
        passes += 1
        log(f"baseline pass {passes} done")

    full_pass()

    # 3. sweeps on 8 commands of 2-3 s, in two rounds of 4 (configs in order, then in reverse order:
    #    slow drifts of the machine's load hit every config alike), then the one- vs N-thread
    #    decode times of both engines on their cuts (offline, interleaved per cut)
    sweeps, threads_offline, subset = [], None, []
    if not args.quick:
        pool = [u for u in utts if 2.0 <= u.speech_s <= 3.0]
        subset = interleave([copy.copy(u) for u in pool])[:8]
        rounds = [subset[0::2], subset[1::2]]
        round_wavs = [write_wav(tmp / f"round{k}.wav", build_stream(r, lead_s=1.0, seed=k + 1))
                      for k, r in enumerate(rounds)]
        engine1 = Engine.from_config(dataclass_replace(config.asr, threads=1), resolve(config.asr.model))
        engine1.warm_up()
        plan = [(f"default (threads {threads}, cadence 0.5 s)", engine, 0.5, True, None),
                ("threads 1", engine1, 0.5, True, None),
                ("cadence 1.0 s", engine, 1.0, True, None),
                ("threads 1, cadence 1.0 s", engine1, 1.0, True, None),
                ("one window, loop cut at the repeat (patched)", engine, 0.5, True, one_window_truncated)]
        runs: Dict[str, list] = {label: [] for label, *_ in plan}
        for k, (order, wav_k) in enumerate(zip((plan, plan[::-1]), round_wavs)):
            for label, eng, interval, partials, alternative in order:
                cfg = copy.deepcopy(config)
                cfg.partials.interval_s = interval
                cfg.partials.enabled = partials
                runs[label].append(run_pipeline(label, wav_k, eng, cfg, 0.0, alternative=alternative))
            log(f"sweep round {k + 1} done")
        for label, eng, *_ in plan:
            r = analyse(runs[label], rounds, hangover_ms, eng)
            if sweeps:  # paired with the default run: same utterance, same stream
                d = [a["final_ms"] - b["final_ms"] for a, b in zip(r["per_utterance"], sweeps[0]["per_utterance"])
                     if "final_ms" in a and "final_ms" in b]
                r["paired_delta_vs_default_ms"] = {"median": med(d), "mean": round(float(np.mean(d)), 1) if d else None}
            sweeps.append(r)
            log(f"sweep {label}: final {r['final_ms']}, ready {r['speculation_ready_at_decision']}/"
                f"{r['single_segment']}, cpu {r['cpu_speech_pct']}%, others {r['other_processes_cores']} cores")
        full_pass()
        sub_cuts: Dict[int, List[SpeechEnd]] = {}
        for k, (r, wav_k) in enumerate(zip(rounds, round_wavs)):
            for i, c in offline_cuts(load_audio(wav_k), config.vad, r).items():
                sub_cuts[next(j for j, u in enumerate(subset) if u is r[i])] = c
        fw1 = Baseline(1)
        both = {**{f"{n}_t{threads}": f for n, f in decoders(fw, engine).items()},
                **{f"{n}_t1": f for n, f in decoders(fw1, engine1).items()}}
        store_t: dict = {}
        baseline_pass(sub_cuts, both, store_t)
        threads_offline = {n: summarise_baseline(store_t, sub_cuts, subset, n)["final_ms"] for n in both}
        del fw1
        log(f"offline threads 1 vs {threads}: {threads_offline}")
    else:
        full_pass()
    base = summarise_baseline(store, cuts, utts, "fw")
    offline_cpp = summarise_baseline(store, cuts, utts, "cpp", engine)

    offline_cut = summarise_baseline(store, cuts, utts, "cpp_cut", engine)

    def ratio_of(stat, key="final_ms"):
        ours_v, theirs_v = res_default[key].get(stat), base[key].get(stat)
        return round(ours_v / theirs_v, 4) if ours_v is not None and theirs_v else None

    cmd_ours = res_default["final_ms_2to3s"]
    ratios = {"median": ratio_of("median"), "p95": ratio_of("p95"), "mean": ratio_of("mean"),
              "median_2to3s": ratio_of("median", "final_ms_2to3s"), "p95_2to3s": ratio_of("p95", "final_ms_2to3s")}
    # the baseline's true end -> final: the same live hangover, then its decode
    totals = [o_row["hangover_ms"] + b_row["ms"][0] for o_row, b_row in zip(res_default["per_utterance"],
                                                                           base["per_utterance"])
              if o_row["segments"] == 1 and len(b_row["ms"]) == 1 and "hangover_ms" in o_row]
    base["total_ms"] = {"median": med(totals), "p95": pct(totals, 95)}
    theirs_total = base["total_ms"]["median"]
    goals = {
        "final_within_150ms_median_2to3s": cmd_ours["median"] is not None and cmd_ours["median"] <= GOAL_MS,
        "final_within_150ms_p95_2to3s": cmd_ours["p95"] is not None and cmd_ours["p95"] <= GOAL_MS,
        "final_within_150ms_share_all": f"{res_default['within_goal']}/{res_default['single_segment']}",
        "at_least_4x_faster_median": ratios["median"] is not None and ratios["median"] <= 1 / GOAL_RATIO,
        "at_least_4x_faster_p95": ratios["p95"] is not None and ratios["p95"] <= 1 / GOAL_RATIO,
        "at_least_4x_faster_mean": ratios["mean"] is not None and ratios["mean"] <= 1 / GOAL_RATIO,
        "ratio_ours_over_baseline": ratios,
        "true_end_to_final_median_ours_ms": res_default["total_ms"]["median"],
        "true_end_to_final_median_baseline_ms": theirs_total,
    }
    result = {
        "machine": {"cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in os.getloadavg()]},
        "config": {"model": config.asr.model, "threads": threads, "vad": vars(config.vad),
                   "partials": vars(config.partials), "block_ms": config.audio.block_ms,
                   "tail_ms": listen_mod.TAIL_MS},
        "data": {"utterances": len(utts), "real": sum(u.kind == "real" for u in utts),
                 "speech_s": {"min": round(min(speech), 2), "median": round(statistics.median(speech), 2),
                              "max": round(max(speech), 2)},
                 "gap_s": GAP_S, "noise_floor_dbfs": NOISE_DBFS, "silence_phase_s": silence_s,
                 "stream_s": round(len(stream) / SAMPLE_RATE, 1)},
        "ours": res_default,
        "peak_rss_mb_maxrss": round(maxrss_mb, 1),
        "baseline": {"system": "faster-whisper int8 tiny.en, beam 1, no timestamps, 30 s window",
                     "passes": passes, "same_cuts_as_live": same_cuts, **base},
        "offline_whisper_cpp_same_cuts": offline_cpp,
        "offline_whisper_cpp_one_window_cut_repeat_patched": offline_cut,
        "goals": goals,
        "sweeps": sweeps,
        "runtime_s": None,
    }
    if threads_offline:
        result["offline_decode_threads_subset"] = threads_offline
    result["runtime_s"] = round(time.time() - t_begin, 1)

    # --- tables ---
    o, b = res_default, result["baseline"]
    print(f"\n### Listening pipeline, tiny.en, {threads} threads, {len(utts)} utterances "
          f"({result['data']['real']} real), speech {min(speech):.1f}-{max(speech):.1f} s, median / p95 ms\n")
    print("| system | true end -> final | hangover (true end -> speech_end) | speech_end -> final | "
          "speech_end -> final, 2-3 s | decode_ms | WER |")
    print("|---|---|---|---|---|---|---|")
    print(f"| ours (shipped, live) | {fmt(o['total_ms'])} | {fmt(o['hangover_ms'])} | {fmt(o['final_ms'])} | "
          f"{fmt(o['final_ms_2to3s'])} | {fmt(o['decode_ms'])} | {o['wer']:.3f} |")
    bt = b["final_ms"]
    print(f"| baseline: faster-whisper int8, 30 s window, same cuts | "
          f"{fmt(b['total_ms'])} | same as ours | {fmt(bt)} | "
          f"{fmt(b['final_ms_2to3s'])} | {fmt(bt)} | {b['wer']:.3f} |")
    for label, off in (("whisper.cpp sized audio_ctx on the same cuts, offline (= no speculation)", offline_cpp),
                       ("whisper.cpp one window, loop cut at the repeat (patched), offline", offline_cut)):
        print(f"| {label} | - | - | {fmt(off['final_ms'])} | {fmt(off['final_ms_2to3s'])} | {fmt(off['final_ms'])} | "
              f"{off['wer']:.3f} |")
    yes = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    fmt_r = lambda r: "-" if r is None else f"{r:.3f} ({1 / r:.1f}x)" if r > 0 else "0"  # noqa: E731
    print(f"\nours / baseline, speech_end -> final: median {fmt_r(ratios['median'])}, p95 {fmt_r(ratios['p95'])}, "
          f"mean {fmt_r(ratios['mean'])}; 2-3 s commands: median {fmt_r(ratios['median_2to3s'])}, "
          f"p95 {fmt_r(ratios['p95_2to3s'])}")
    print(f"goal <= {GOAL_MS:.0f} ms after the decision for 2-3 s commands (n={cmd_ours['n']}): median "
          f"{yes(goals['final_within_150ms_median_2to3s'])}, p95 {yes(goals['final_within_150ms_p95_2to3s'])}; "
          f"all utterances within {GOAL_MS:.0f} ms: {goals['final_within_150ms_share_all']}. "
          f">= {GOAL_RATIO:.0f}x faster than the baseline: median {yes(goals['at_least_4x_faster_median'])}, "
          f"p95 {yes(goals['at_least_4x_faster_p95'])}, mean {yes(goals['at_least_4x_faster_mean'])}")
    print("\n| pipeline detail | value |\n|---|---|")
    rows = [
        ("speculative decode reused", f"{o['speculation_reused']}/{o['single_segment']}"),
        ("decoder at the end decision (idle/partial/speculative)",
         f"{o['busy_at_decision']['idle']}/{o['busy_at_decision']['partial']}/{o['busy_at_decision']['speculative']}"),
        ("speculation finished before the decision", f"{o['speculation_ready_at_decision']}/{o['single_segment']}"),
        ("speculation finished before the decision by, median / min ms (< 0: after)",
         fmt(o["spec_ready_before_decision_ms"], "median", "min")),
        ("speculation: wait for a busy decoder, median / p95 ms", fmt(o["spec_start_delay_ms"])),
        ("speculation: its decode, median / p95 ms", fmt(o["spec_decode_ms"])),
        ("finals that needed the repetition-loop retry in a wider window",
         f"{o['loop_retry_finals']}/{o['single_segment']}"),
        ("offline decodes of the same cuts that needed it (all passes)",
         f"{offline_cpp['wider_window_retries']}/{offline_cpp['decodes']}"),
        *[(f"speech_end -> final when the speculation met: {k} (n, median / max ms)",
           f"{v['n']}: {fmt(v, 'median', 'max')}") for k, v in o["by_cause"].items()],
        ("VAD end - true end, median / p95 ms", fmt(o["vad_end_error_ms"])),
        ("listener lag behind the audio at the decision, median / p95 ms", fmt(o["listener_lag_ms"])),
        ("partial interval, median / p95 ms", fmt(o["partial_interval_ms"])),
        ("utterances with >= 1 partial", f"{o['utterances_with_partial']}/{o['utterances']}"),
        ("whisper calls partial/speculative/final (partials aborted)",
         f"{o['whisper_calls']['partial']}/{o['whisper_calls']['speculative']}/{o['whisper_calls']['final']} "
         f"({o['partials_aborted']})"),
        ("split / missed / false alarms", f"{o['split']} / {o['missed']} / {o['false_alarms']}"),
        (f"CPU, % of one core: {silence_s:.0f} s silence / speech stream",
         f"{o['cpu_silence_pct']} / {o['cpu_speech_pct']}"),
        ("other processes on the machine during the run (cores of 2)", f"{o['other_processes_cores']}"),
        ("peak RSS (ru_maxrss, before faster-whisper loads)", f"{maxrss_mb:.0f} MB"),
        ("listening event - stream t0 (ms); block lateness median / max (ms)",
         f"{o['listening_offset_ms']}; {o['block_lateness_ms']['median']} / {o['block_lateness_ms']['max']}"),
        ("offline Segmenter cuts == live cuts", str(same_cuts)),
    ]
    for k, v in rows:
        print(f"| {k} | {v} |")
    if sweeps:
        print(f"\n### Sweeps: {len(subset)} commands of 2-3 s, same stream each run, median / p95 ms\n")
        print("| run | speech_end -> final | paired change vs default, median / mean | true end -> final | "
              "spec reused / ready in time | busy at decision (partial/spec) | spec decode | loop retries | "
              "partial interval | utts w/ partial | CPU % (speech) | others (cores) | WER |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sweeps:
            pd = r.get("paired_delta_vs_default_ms")
            print(f"| {r['label']} | {fmt(r['final_ms'])} | {fmt(pd, 'median', 'mean') if pd else '-'} | "
                  f"{fmt(r['total_ms'])} | {r['speculation_reused']} / "
                  f"{r['speculation_ready_at_decision']} of {r['single_segment']} | "
                  f"{r['busy_at_decision']['partial']}/{r['busy_at_decision']['speculative']} | "
                  f"{fmt(r['spec_decode_ms'])} | {r['loop_retry_finals']}/{r['single_segment']} | "
                  f"{fmt(r['partial_interval_ms'])} | "
                  f"{r['utterances_with_partial']}/{r['utterances']} | {r['cpu_speech_pct']} | "
                  f"{r['other_processes_cores']} | {r['wer']:.3f} |")
        if threads_offline:
            print(f"\nOffline decode of the same {len(subset)} cuts, median / p95 ms: " + ", ".join(
                f"{n.replace('fw', 'faster-whisper').replace('cpp', 'whisper.cpp').replace('_t', ' threads ')} "
                f"{fmt(v)}" for n, v in threads_offline.items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"\nwrote {out} ({result['runtime_s']:.0f} s)")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


if __name__ == "__main__":
    sys.exit(main())
