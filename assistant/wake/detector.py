"""Wake-word detection with the microWakeWord models shipped in pymicro-wakeword.

A streaming detector: feed 16 kHz int16 audio in blocks of any size; it returns a Wake
when the word was heard. The models see 40 log-mel features every 10 ms and score every
third feature frame (30 ms); a wake is the mean of the last few scores (the model's
`sliding_window_size`, 5 = 150 ms) above a probability cutoff. Waiting costs little:
buffers are allocated once, and the 10 ms steps call pymicro-features' MicroFrontend and a
TFLite interpreter bound to those buffers (wake/tflite.py) instead of building arrays for
every step the way `MicroWakeWord.process_streaming_prob` does. From pymicro-wakeword only
its public API is used: the built-in model's file, probability cutoff and window size, and
the TFLite library it ships.

`t` in a Wake counts the audio fed since construction or reset(). The detector fires a
little after the word ends (the model waits to hear it all, then the window mean has to
rise); `end` subtracts that lag (DETECTION_LAG_S), so a caller that keeps the recent
audio can start a command that follows in the same breath at `end` rather than at `t`.
The models want a short pause after the word, though: with a recorded command spliced
straight after it, 4 of 10 real "alexa" speakers were missed (1 of 10 with a 0.25 s
pause); see benchmarks/results/wake.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import numpy as np
from pymicro_features import MicroFrontend
from pymicro_wakeword import MicroWakeWord, Model

from ..audio import SAMPLE_RATE
from .tflite import StreamingModel

STEP = 160  # samples per feature step (10 ms)
N_FEATURES = 40  # log-mel features per step, pymicro-features' frontend

WAKE_WORDS: tuple[str, ...] = tuple(m.value for m in Model)  # okay_nabu, hey_jarvis, ...

# Probability cutoffs: the model authors' json values, kept after benchmarks/bench_wake.py
# (results/wake.json). On 22 min of speech and noise, okay_nabu, hey_jarvis and hey_mycroft
# never false-woke at any cutoff >= 0.6 (max negative score 0.33-0.55), but only synthetic
# positives exist for them, not enough to move the authors' values. alexa false-wakes twice
# (one LJSpeech sentence, in noise) at every cutoff 0.7-0.99, so raising does not help, and
# its one missed real speaker (of 10) only wakes at 0.5, where false wakes double.
DEFAULT_CUTOFFS: dict[str, float] = {
    "okay_nabu": 0.85,
    "hey_jarvis": 0.97,
    "alexa": 0.90,
    "hey_mycroft": 0.95,
}

# Seconds from the end of the spoken word (by energy) to detection, median, measured by
# benchmarks/bench_wake.py: alexa on 10 real speakers (range 0.08-0.23 s); the others on
# espeak-ng voices only (hey_jarvis on the "hey javis" respelling that triggers it), where
# synthetic "alexa" lags 0.25 s against the real 0.17 s: rough values.
DETECTION_LAG_S: dict[str, float] = {
    "okay_nabu": 0.18,
    "hey_jarvis": 0.24,
    "alexa": 0.17,
    "hey_mycroft": 0.10,
}


# A second opinion (WakeConfig.verify): whisper transcribes the audio that woke the detector,
# and the wake counts only if the word is in the text. Measured with tiny.en: the 10 real
# "alexa" speakers are all written "Alexa"; the detector's false wakes on LJSpeech in noise are
# "The Neplu Ultra", "When they flew all track". espeak-ng's "okay nabu" and "hey mycroft" come
# out as "Okay, not move", "Hey me Croft": for those words the check would refuse real wakes
# unless their speakers are clearer, so it is on for alexa only by default.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "alexa": ("alexa",),
    "hey_jarvis": ("jarvis",),
    "hey_mycroft": ("mycroft",),
    "okay_nabu": ("nabu",),
}
# The words of each wake phrase: whisper sometimes hears the end of the wake word at the start of
# the command (Wake.end is an estimate), and a leading run of these is never part of a command.
WAKE_PHRASE_WORDS = {
    "okay_nabu": {"okay", "ok", "nabu"},
    "hey_jarvis": {"hey", "jarvis"},
    "alexa": {"alexa"},
    "hey_mycroft": {"hey", "mycroft"},
}
VERIFY_WINDOW_S = 1.5  # audio before the detection that whisper checks: the longest word and a margin
SPELLING_SIMILARITY = 0.75  # "Alexia", "Lexa" count; "electric" does not


def heard_wake_word(word: str, text: str) -> bool:
    """Whether whisper's text of the waking audio contains the wake word, or a near spelling."""
    tokens = re.findall(r"[a-z]+", text.lower())
    return any(SequenceMatcher(None, t, s).ratio() >= SPELLING_SIMILARITY
               for t in tokens for s in SPELLINGS.get(word, ()))


@dataclass(frozen=True)
class Wake:
    word: str
    score: float  # window-mean probability at detection (0..1)
    t: float  # seconds of stream audio when it fired
    end: float  # estimated end of the wake word: command audio starts after this


@dataclass
class Gate:
    """Cutoff plus refractory period: one utterance wakes once.

    After a wake, scores are ignored for `refractory_s` of stream time *and* until the
    score has dropped below the cutoff, so a long or repeated positive stretch (the
    window mean stays high for a few hundred ms) cannot fire twice.
    """

    cutoff: float
    refractory_s: float
    _until: float = field(default=float("-inf"), repr=False)
    _armed: bool = field(default=True, repr=False)

    def update(self, score: float, t: float) -> bool:
        if score <= self.cutoff:
            self._armed = True
            return False
        if t < self._until or not self._armed:
            return False
        self._until = t + self.refractory_s
        self._armed = False
        return True

    def reset(self) -> None:
        self._until = float("-inf")
        self._armed = True


class WakeDetector:
    def __init__(self, word: str, sensitivity: float | None, refractory_s: float):
        """sensitivity is the probability cutoff (0..1): higher = fewer false wakes, more
        misses; None = DEFAULT_CUTOFFS[word]. Both come from WakeConfig (sensitivity maps
        word -> cutoff), which checks their ranges."""
        if word not in WAKE_WORDS:
            raise ValueError(f"unknown wake word {word!r}; valid words: {', '.join(WAKE_WORDS)}")
        self.word = word
        # pymicro-wakeword's own loader, for the model's file, settings and TFLite library; the
        # model then runs in an interpreter of ours (see the module docstring)
        builtin = MicroWakeWord.from_builtin(Model(word))
        try:
            self._model = StreamingModel(builtin.tflite_model, builtin.libtensorflowlite_c_path)
            json_cutoff, self._window = float(builtin.probability_cutoff), int(builtin.sliding_window_size)
        finally:
            builtin.close()
        self.authors_cutoff = json_cutoff  # the model authors' cutoff (its json), for comparisons
        default = DEFAULT_CUTOFFS.get(word, json_cutoff)
        self.cutoff = float(default if sensitivity is None else sensitivity)
        self.gate = Gate(self.cutoff, refractory_s)
        self.lag_s = DETECTION_LAG_S.get(word, 0.15)
        model = self._model
        if len(model.input_shape) != 3 or model.input_shape[0] != 1 or model.input_shape[2] != N_FEATURES:
            raise ValueError(f"{word}: model input {model.input_shape}, not (1, stride, {N_FEATURES})")
        self._stride = model.input_shape[1]  # feature steps per inference: 3 = 30 ms
        # quantisation: int8 = round(f / scale + zero_point), clipped to the type's range
        self._in_scale = 1.0 / model.input_scale
        self._in_zero = float(model.input_zero_point)
        info = np.iinfo(model.input_dtype)
        self._q_lo, self._q_hi = float(info.min), float(info.max)
        self._out_scale = model.output_scale
        self._out_zero = model.output_zero_point
        self._frontend = MicroFrontend()
        # preallocated once; the 10 ms loop only fills them in
        self._feats = np.zeros((1, self._stride, N_FEATURES), np.float32)
        self._quant = np.zeros((1, self._stride, N_FEATURES), model.input_dtype)
        self._out = np.zeros(model.output_nbytes // model.output_dtype.itemsize, model.output_dtype)
        model.bind(self._quant, self._out)
        self._carry = np.zeros(STEP, np.int16)  # partial 10 ms step between blocks
        self._probs = [0.0] * self._window  # ring of the last scores
        self.reset()

    def reset(self) -> None:
        """Forget all audio: model state, features, refractory; t restarts at 0."""
        self._model.reset()  # a new interpreter (~0.4 ms): the model's streaming state lives there
        self._frontend.reset()
        self.gate.reset()
        self._n_carry = 0
        self._n_feats = 0
        self._n_probs = 0
        self._probs[:] = [0.0] * self._window
        self._prob_sum = 0.0
        self._samples = 0
        self.score = 0.0  # latest window mean, for tuning and display

    def close(self) -> None:
        self._model.close()

    def process(self, block: np.ndarray) -> Wake | None:
        """Feed 16 kHz mono int16 audio; returns the first Wake it contains, if any."""
        if block.dtype != np.int16:
            raise TypeError(f"wake detector needs int16 audio, not {block.dtype}")
        block = np.ascontiguousarray(block).reshape(-1)  # no copy for the usual 1-D block
        n = len(block)
        wake = None
        i = 0
        if self._n_carry:  # complete the 10 ms step the last block left open
            i = min(STEP - self._n_carry, n)
            self._carry[self._n_carry:self._n_carry + i] = block[:i]
            self._n_carry += i
            if self._n_carry == STEP:
                self._n_carry = 0
                if self._step(self._carry):
                    wake = self._gate()
        while i + STEP <= n:
            if self._step(block[i:i + STEP]):
                w = self._gate()
                wake = wake or w
            i += STEP
        if i < n:
            self._carry[:n - i] = block[i:]
            self._n_carry = n - i
        return wake

    def scores(self, audio: np.ndarray) -> np.ndarray:
        """Rows of (t, score) for every model inference over int16 `audio`, ungated: for
        tuning cutoffs offline (replay the rows through a Gate). Continues the stream."""
        if self._n_carry:
            raise ValueError("scores() needs the stream at a 10 ms boundary: reset() first")
        rows: list[tuple[float, float]] = []
        for i in range(0, len(audio) - STEP + 1, STEP):
            if self._step(audio[i:i + STEP]):
                rows.append((self._samples / SAMPLE_RATE, self.score))
        return np.array(rows, np.float64).reshape(-1, 2)

    def _gate(self) -> Wake | None:
        t = self._samples / SAMPLE_RATE
        if self.gate.update(self.score, t):
            return Wake(self.word, self.score, t, max(0.0, t - self.lag_s))
        return None

    def _step(self, chunk: np.ndarray) -> bool:
        """One 10 ms step; True when the model ran and self.score is new (every 30 ms)."""
        self._samples += STEP
        feats = self._frontend.process_samples(chunk.tobytes()).features
        if not feats:  # the first 20 ms only fill the 30 ms analysis window
            return False
        f = self._feats
        f[0, self._n_feats] = feats
        self._n_feats += 1
        if self._n_feats < self._stride:
            return False
        self._n_feats = 0
        np.multiply(f, self._in_scale, out=f)  # quantise in place, no temporaries
        np.add(f, self._in_zero, out=f)
        np.rint(f, out=f)
        np.clip(f, self._q_lo, self._q_hi, out=f)
        np.copyto(self._quant, f, casting="unsafe")
        self._model.invoke()  # self._quant in, self._out out
        prob = (int(self._out[0]) - self._out_zero) * self._out_scale
        # running mean of the last `window` scores (0 until it is full, as upstream); the
        # shipped models' scores are multiples of 1/256, so the sum is exact: no drift
        slot = self._n_probs % self._window
        self._prob_sum += prob - self._probs[slot]
        self._probs[slot] = prob
        self._n_probs += 1
        self.score = self._prob_sum / self._window if self._n_probs >= self._window else 0.0
        return True
