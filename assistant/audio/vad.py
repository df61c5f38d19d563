"""Speech segmentation: a stream of 16 kHz int16 audio in, utterances out.

    seg = Segmenter(config.vad)
    for block in blocks:                       # any block size
        for result in seg.feed(block):
            if isinstance(result, SpeechStart): ...
            elif isinstance(result, SpeechEnd): transcribe(result.audio)
    for result in seg.flush(): ...             # end of stream: finish the current utterance

A SpeechStart is reported once the utterance holds min_utterance_ms of speech (~270 ms after
it began; its t still says where it began), so an utterance once reported is never taken back:
every SpeechStart is followed by its SpeechEnd. A SpeechEnd with cut=True (max_utterance_s) is
followed at once by the SpeechStart of the rest of the monologue.

A frame counts as speech when webrtcvad says so *and* it is louder than the background. The
loudness check is there because webrtcvad holds its decision for ~100 ms after any burst
("overhang"): without it a 10 ms click looks like 120 ms of speech (enough to start an
utterance), and every end of speech would be placed ~100 ms late.

Why hangover_ms defaults to 480 (VadConfig): measured on the 59 real recordings in
../shared/speech (LJSpeech, LibriVox, LibriSpeech, CMU ARCTIC, pocketsphinx commands and
digits, JFK; each one sentence, 1 s of padding, real fridge noise at -55 dBFS), counting the
sentences this segmenter splits in two at each hangover:
    300 ms: 23/59   360: 16/59   420: 9/59   450: 4/59   480: 3/59   ...   630: 3/59
The knee is at 480: below it read sentences break at commas; the 3 left are pauses of
630-840 ms between clauses of read speech (LibriSpeech, JFK, LJ001-0022), which only a much
longer hangover would keep, at the cost of that much more latency on every command. Command-
length clips (22 of them) never pause longer than 270 ms inside, so 480 leaves room for
hesitation. 480 is also a whole number of 10, 20 and 30 ms frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import webrtcvad

from ..config import VadConfig
from . import SAMPLE_RATE

# How much louder than the background (dB) a voiced frame must be to start an utterance, and
# to keep one going. Overhang frames sit at the background level; speech in a quiet room is
# 20-40 dB above it. The lower second threshold (hysteresis) keeps weak syllables in noise from
# splitting an utterance. Measured on 13 sentences in real traffic / exercise-bike noise at
# -35 dBFS: 6/6 dB gave 6/6 extra segments, 6/3 dB 5/4, no loudness check 3/3; but without
# it the end of speech lands later (median +80 ms against +30 ms in a quiet room).
START_DB = 6.0
CONTINUE_DB = 3.0
# How fast the background estimate follows the level of non-speech frames (per frame, in dB).
FLOOR_FOLLOW = 0.05
# The start trigger looks for start_ms of speech frames in a window this many times longer,
# so a start survives a short dip (a stop consonant) but scattered noise frames do not add up.
WINDOW_FACTOR = 2
# Utterance audio keeps this much after the end of speech (capped by the hangover): weak final
# consonants ("-s", "-t") fall below the loudness check, and whisper wants a little silence.
TAIL_MS = 200
# A long monologue is cut at the quietest frame within this much before the limit.
CUT_LOOKBACK_S = 1.0


@dataclass(frozen=True)
class SpeechStart:
    t: float  # stream seconds where speech begins (its first speech frame)
    detected_at: float  # stream seconds when the segmenter decided (t + min_utterance_ms or so)


@dataclass(frozen=True, eq=False)
class SpeechEnd:
    t: float  # stream seconds where the VAD put the end of speech (before hangover and tail)
    audio: np.ndarray  # int16 16 kHz mono: pre-roll + speech + tail, a copy the caller owns
    start: float  # stream seconds of audio[0]
    detected_at: float  # stream seconds when the segmenter decided (t + hangover, or the cut)
    cut: bool = False  # ended by max_utterance_s: the speaker goes on in the next utterance

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE


Result = Union[SpeechStart, SpeechEnd]

_SILENCE, _PENDING, _SPEECH = 0, 1, 2  # _PENDING: started, not yet min_utterance_ms long


class Segmenter:
    """Cuts a stream of audio into utterances with webrtcvad; see the module docstring."""

    def __init__(self, config: Optional[VadConfig] = None) -> None:
        c = config or VadConfig()  # checked when made (VadConfig.__post_init__)
        self.config = c
        self._vad = webrtcvad.Vad(c.aggressiveness)
        self.frame_len = SAMPLE_RATE * c.frame_ms // 1000
        frames = lambda ms: max(1, math.ceil(ms / c.frame_ms))  # noqa: E731
        self._start_frames = frames(c.start_ms)
        self._window = self._start_frames * WINDOW_FACTOR
        self._preroll = math.ceil(c.preroll_ms / c.frame_ms)
        self._hangover = frames(c.hangover_ms)
        self._min_frames = frames(c.min_utterance_ms)
        self._tail = min(self._hangover, math.ceil(TAIL_MS / c.frame_ms))
        self._max_frames = max(self._min_frames + self._preroll + 1, int(c.max_utterance_s * 1000 / c.frame_ms))
        self._lookback = int(CUT_LOOKBACK_S * 1000 / c.frame_ms)

        # Preallocated once: the frame being assembled (and the bytes webrtcvad reads), a float
        # copy for the level, the recent frames (pre-roll + trigger window) and the utterance.
        self._frame = np.zeros(self.frame_len, np.int16)
        self._frame_bytes = memoryview(self._frame.data).cast("B")
        self._frame_f = np.zeros(self.frame_len, np.float32)
        self._history = np.zeros((self._preroll + self._window, self.frame_len), np.int16)
        self._recent = np.zeros(self._window, bool)  # speech flags of the last frames
        self._utt = np.zeros((self._max_frames, self.frame_len), np.int16)
        self._utt_level = np.zeros(self._max_frames, np.float32)  # dB above the background
        self.reset()

    # -- public ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything, including the stream clock."""
        self._fill = 0  # samples of self._frame already filled
        self._n = 0  # frames processed since the stream began
        self._state = _SILENCE
        self._recent[:] = False
        self._recent_count = 0
        self._floor_db: Optional[float] = None
        self._count = 0  # frames in the utterance buffer
        self._first = 0  # stream frame index of self._utt[0]
        self._onset = 0  # stream frame index where the utterance's speech begins
        self._last_speech = 0  # stream frame index of the last speech frame
        self._silent_run = 0

    @property
    def t(self) -> float:
        """Stream seconds fed so far."""
        return (self._n * self.frame_len + self._fill) / SAMPLE_RATE

    @property
    def in_speech(self) -> bool:
        """True between a SpeechStart and its SpeechEnd."""
        return self._state == _SPEECH

    @property
    def silence_s(self) -> float:
        """Seconds of non-speech since the utterance's last speech frame (0 outside speech)."""
        return self._silent_run * self.frame_len / SAMPLE_RATE if self._state == _SPEECH else 0.0

    @property
    def tail_s(self) -> float:
        """Silence kept after the speech in SpeechEnd.audio: when silence_s reaches it,
        current_audio() is exactly the audio SpeechEnd will carry if the speaker stops here."""
        return self._tail * self.frame_len / SAMPLE_RATE

    def current_audio(self) -> Optional[np.ndarray]:
        """The current utterance so far (pre-roll included; a copy), or None outside speech."""
        if self._state != _SPEECH:
            return None
        return self._utt[: self._count].reshape(-1).copy()

    def feed(self, audio: np.ndarray) -> List[Result]:
        """Process a block of 16 kHz mono audio (int16, or float in [-1, 1]); any length."""
        x = np.asarray(audio).reshape(-1)
        if x.dtype != np.int16:
            if not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"audio must be int16 or float, not {x.dtype}")
            x = (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)
        out: List[Result] = []
        pos, n, size = 0, len(x), self.frame_len
        while pos < n:
            take = min(size - self._fill, n - pos)
            self._frame[self._fill : self._fill + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == size:
                self._fill = 0
                self._process(out)
        return out

    def flush(self) -> List[Result]:
        """End of stream: finish (or drop, if too short) the current utterance."""
        out: List[Result] = []
        if self._state != _SILENCE:
            if self._state == _PENDING and self._long_enough():
                self._confirm(out)
            if self._state == _SPEECH:
                self._end(out)
        self._to_silence()
        self._fill = 0  # a partial frame (< frame_ms) at the very end is not worth a decision
        return out

    # -- per frame ------------------------------------------------------------------------

    def _process(self, out: List[Result]) -> None:
        i = self._n
        self._n += 1
        voiced, above = self._classify()
        starts = voiced and above > START_DB
        speech = voiced and above > CONTINUE_DB
        self._history[i % len(self._history)] = self._frame
        slot = i % self._window
        self._recent_count += int(starts) - int(self._recent[slot])
        self._recent[slot] = starts

        if self._state == _SILENCE:
            if self._recent_count >= self._start_frames:
                self._begin(i)
            return

        self._utt[self._count] = self._frame
        self._utt_level[self._count] = above
        self._count += 1
        if speech:
            self._last_speech = i
            self._silent_run = 0
        else:
            self._silent_run += 1
        if self._state == _PENDING and self._long_enough():
            self._confirm(out)
        if self._silent_run >= self._hangover:
            if self._state == _SPEECH:
                self._end(out)
            self._to_silence()  # a pending utterance that ends this soon is dropped, unreported
        elif self._count == self._max_frames:
            if self._state == _SPEECH:
                self._cut(out)
            else:  # max_utterance_s of mostly silence never reached min_utterance_ms: drop it
                self._to_silence()

    def _classify(self) -> Tuple[bool, float]:
        """webrtcvad's decision on the frame, and how many dB it is above the background."""
        frame = self._frame_f
        np.copyto(frame, self._frame)
        energy = float(np.dot(frame, frame))
        if energy == 0.0:
            # digital silence (the half-duplex mute): not speech, and not the room's background;
            # taken as background, it made the noise after every reply look like speech
            return False, 0.0
        level = 10.0 * math.log10(energy / len(frame) + 1.0)
        voiced = self._vad.is_speech(self._frame_bytes, SAMPLE_RATE)
        floor = self._floor_db
        if floor is None or level < floor:
            floor = self._floor_db = level
        elif not voiced:
            self._floor_db = floor + FLOOR_FOLLOW * (level - floor)
        return voiced, level - floor

    # -- utterance boundaries -------------------------------------------------------------

    def _begin(self, i: int) -> None:
        # The speech began at the first speech frame of the trigger window, pre-roll before it.
        first_speech = next(
            j for j in range(i - self._window + 1, i + 1) if j >= 0 and self._recent[j % self._window]
        )
        first = max(0, first_speech - self._preroll, i - len(self._history) + 1)
        for k, j in enumerate(range(first, i + 1)):
            self._utt[k] = self._history[j % len(self._history)]
        self._utt_level[: i + 1 - first] = np.inf  # the pre-roll is never where to cut
        self._count = i + 1 - first
        self._first = first
        self._onset = first_speech
        self._last_speech = i
        self._silent_run = 0
        self._state = _PENDING

    def _to_silence(self) -> None:
        self._state = _SILENCE
        self._count = 0
        self._silent_run = 0
        self._recent[:] = False  # the next start needs start_ms of new speech
        self._recent_count = 0

    def _long_enough(self) -> bool:
        return self._last_speech + 1 - self._onset >= self._min_frames

    def _confirm(self, out: List[Result]) -> None:
        self._state = _SPEECH
        out.append(SpeechStart(t=self._seconds(self._onset), detected_at=self._seconds(self._n)))

    def _end(self, out: List[Result]) -> None:
        end = self._last_speech + 1  # stream frame index just after the speech
        keep = max(1, min(self._count, end + self._tail - self._first))
        out.append(
            SpeechEnd(
                t=self._seconds(end),
                audio=self._utt[:keep].reshape(-1).copy(),
                start=self._seconds(self._first),
                detected_at=self._seconds(self._n),
            )
        )

    def _cut(self, out: List[Result]) -> None:
        # Cut after the quietest frame of the last second: in fluent speech webrtcvad hears no
        # pause at all, but the quietest 30 ms falls between words far more often than not.
        k = self._count
        lo = max(1, k - self._lookback)
        cut = lo + int(np.argmin(self._utt_level[lo:k])) + 1
        cut_t = self._seconds(self._first + cut)
        out.append(
            SpeechEnd(
                t=cut_t,
                audio=self._utt[:cut].reshape(-1).copy(),
                start=self._seconds(self._first),
                detected_at=self._seconds(self._n),
                cut=True,
            )
        )
        # The rest begins the next utterance at once (the speaker has not stopped); like any
        # other it is reported when min_utterance_ms long, and dropped if it never gets there.
        rest = k - cut
        self._utt[:rest] = self._utt[cut:k]
        self._utt_level[:rest] = self._utt_level[cut:k]
        self._count = rest
        self._first += cut
        self._onset = self._first
        self._state = _PENDING
        if self._long_enough():
            self._confirm(out)

    def _seconds(self, frame_index: int) -> float:
        return frame_index * self.frame_len / SAMPLE_RATE
