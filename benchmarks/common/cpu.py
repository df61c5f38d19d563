"""CPU and memory while a benchmark runs: this process's and the rest of the machine's."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import List, Optional


def busy_cpu_seconds() -> float:
    """Seconds of CPU used by everything on the machine (all cores) since boot, from /proc/stat
    (user + nice + system + irq + softirq + steal); NaN where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class Sample:
    wall: float  # time.time()
    cpu_s: float  # this process, all threads (time.process_time)
    rss: int  # bytes
    machine_s: float  # busy_cpu_seconds()


class Sampler(threading.Thread):
    """Samples every interval_s while running; use as `with Sampler() as cpu: ...`."""

    def __init__(self, interval_s: float = 0.2):
        super().__init__(name="cpu-sampler", daemon=True)
        import psutil

        self.interval_s = interval_s
        self.samples: List[Sample] = []
        self._process = psutil.Process()
        self._halt = threading.Event()

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self.join()

    def run(self) -> None:
        while True:
            self.samples.append(Sample(time.time(), time.process_time(), self._process.memory_info().rss,
                                       busy_cpu_seconds()))
            if self._halt.wait(self.interval_s):
                return

    def _span(self, a: float, b: float) -> Optional[tuple]:
        inside = [s for s in self.samples if a <= s.wall <= b]
        return (inside[0], inside[-1]) if len(inside) >= 2 else None

    def cpu_pct(self, a: float, b: float) -> Optional[float]:
        """% of one core this process used between walls a and b (the samples inside)."""
        span = self._span(a, b)
        if span is None:
            return None
        s0, s1 = span
        return 100.0 * (s1.cpu_s - s0.cpu_s) / (s1.wall - s0.wall)

    def others_cores(self, a: float, b: float) -> Optional[float]:
        """Cores the rest of the machine used between walls a and b: the noise of a shared machine."""
        span = self._span(a, b)
        if span is None:
            return None
        s0, s1 = span
        return ((s1.machine_s - s0.machine_s) - (s1.cpu_s - s0.cpu_s)) / (s1.wall - s0.wall)

    def rss_max(self, a: float, b: float) -> Optional[int]:
        inside = [s.rss for s in self.samples if a <= s.wall <= b]
        return max(inside) if inside else None
