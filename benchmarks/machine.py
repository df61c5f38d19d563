"""What the benchmarks read about the machine they share: the CPU everything on it used."""

from __future__ import annotations

import os


def busy_cpu_seconds() -> float:
    """Seconds of CPU used by everything on the machine (all cores) since boot, from /proc/stat
    (user + nice + system + irq + softirq + steal); NaN where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return float("nan")
