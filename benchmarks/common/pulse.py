"""A PulseAudio null sink of the benchmark's own for the assistant's speaker (other sessions use
the tests' vspk), drained by parecord at 50 ms latency as a sound card would drain it.

Measured (bench_intents): an unrecorded null sink, or one recorded at parecord's default latency,
renders in 2 s blocks, so every reply starts ~1.8 s late; recorded at 20 ms, PulseAudio drops
monitor data and replies come out cut short; at 50 and 100 ms say() -> audio is ~22 ms and whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class NullSink:
    """Loaded on construction, this process's default sink (PULSE_SINK) until close()."""

    def __init__(self, record_to: Path, latency_ms: int = 50):
        sys.path.insert(0, str(ROOT / "tests"))
        import pulse  # tests/pulse.py: the daemon the tests use

        pulse.ensure()  # sets XDG_RUNTIME_DIR, starts the daemon if none answers
        self._pulse = pulse
        self.name = f"bench_{os.getpid()}"
        out = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={self.name}"],
                             env=pulse.env(), capture_output=True, text=True, check=True)
        self.module = out.stdout.strip()
        os.environ["PULSE_SINK"] = self.name  # libpulse's default sink for this process
        self.recorder = subprocess.Popen(
            ["parecord", f"--device={self.name}.monitor", "--raw", "--rate=16000", "--channels=1",
             "--format=s16le", f"--latency-msec={latency_ms}", str(record_to)],
            env=pulse.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pulse.ensure()  # PortAudio lists its devices again, with this sink loaded

    def close(self) -> None:
        try:
            self.recorder.terminate()
            self.recorder.wait(timeout=5)
        finally:
            os.environ.pop("PULSE_SINK", None)
            subprocess.run(["pactl", "unload-module", self.module], env=self._pulse.env(), capture_output=True)
