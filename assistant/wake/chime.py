"""The acknowledgement: a short sound that says the microphone is open (wake.ack_sound).

    chime = Chime("beep", config.speaker.device)   # or a WAV file; a SpeakerError if no device
    chime.play()                                   # returns at once
    chime.close()
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..audio.output import Device, Output, Player

log = logging.getLogger(__name__)


def beep() -> np.ndarray:
    """Two short rising notes (880 Hz, 1320 Hz; 70 ms each, -18 dBFS) at 16 kHz."""
    n = int(0.07 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms fades: no clicks
    notes = [np.sin(2 * np.pi * f * t) * ramp for f in (880.0, 1320.0)]
    return (0.125 * np.concatenate(notes)).astype(np.float32)


class Chime:
    """The acknowledgement, played at once on its own output stream: not in the speaker's queue
    (a reply may be playing, or be cut by this very wake), and without muting the microphone (a
    command said in one breath is already under way). Its thread opens the stream, so the
    listener never waits for the device."""

    def __init__(self, sound: str, device: Device = None):
        self.audio = beep() if sound == "beep" else load_audio(str(Path(sound).expanduser()))
        self._output = Output(device)  # the speaker's device check: a SpeakerError if there is none
        self._requests: "queue.Queue[bool]" = queue.Queue(maxsize=1)
        self._player: Optional[Player] = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="chime", daemon=True)
        self._thread.start()

    def play(self) -> None:
        try:
            self._requests.put_nowait(True)
        except queue.Full:  # one is about to play already
            pass

    def close(self) -> None:
        self._closed = True
        player = self._player
        if player is not None:
            player.cut()
        try:
            self._requests.put_nowait(False)
        except queue.Full:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while self._requests.get() and not self._closed:
            player = None
            try:
                player = self._player = Player(self._output, SAMPLE_RATE)
                player.feed(self.audio)
                player.end()
                if not self._closed:
                    player.start()
                    player.finished.wait(len(self.audio) / SAMPLE_RATE + 2.0)
            except Exception as e:  # noqa: BLE001 - a missing beep must not stop the assistant
                log.warning("acknowledgement sound failed: %s", e)
            finally:
                self._player = None
                if player is not None:
                    player.close()
