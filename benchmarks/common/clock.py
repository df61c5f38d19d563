"""The wall clock of a file played in real time, seen from outside the source.

A benchmark places speech at known seconds of a file and needs the wall time at which each
second was heard. FileSource paces its blocks from a clock it starts with its thread: block k
is due when its last sample is, t0 + samples / 16 kHz. ClockedSource wraps any source, takes
`wall0` when the pipeline starts it (the pacing thread starts its clock right after) and the
wall time each block reached the reader, so `wall0 + t` is when stream second t was due and
`lateness` says how far behind that the listener got each block."""

from __future__ import annotations

import time
from typing import List, Optional

import numpy as np

from assistant.audio import SAMPLE_RATE


class ClockedSource:
    """Delegates to `source`; records wall0 (start) and the lateness of every block read."""

    def __init__(self, source) -> None:
        self.source = source
        self.wall0 = 0.0
        self.lateness: List[float] = []  # seconds each block was read after it was due
        self._samples = 0

    def start(self) -> None:
        self.wall0 = time.time()
        self.source.start()

    def read(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        block = self.source.read(timeout=timeout)
        if block is not None:
            self._samples += len(block)
            self.lateness.append(time.time() - (self.wall0 + self._samples / SAMPLE_RATE))
        return block

    def __getattr__(self, name: str):
        return getattr(self.source, name)
