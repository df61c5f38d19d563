"""The transcription engine: one loaded whisper.cpp model, safe to share between threads.

Two ways in:
- `transcribe_command()` for short utterances: the encoder window (audio_ctx) is sized to
  the audio, greedy, one segment, no timestamps. This is the real-time path.
- `transcribe()` for any length: windows of about 30 s cut at the quietest point, each
  decoded with timestamps, segments shifted to global time.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, List, Optional

import numpy as np

from ..audio import SAMPLE_RATE
from ..config import MAX_AUDIO_CTX, MAX_DECODE_S, AsrConfig

if TYPE_CHECKING:
    from .grammar.search import Steering

FRAMES_PER_SECOND = 50  # whisper's encoder: one frame per 20 ms of audio
FULL_AUDIO_CTX = MAX_AUDIO_CTX  # 30 s
# whisper.cpp (flash attention, the default) pads the encoder output to a multiple of 256 and,
# for other window sizes, reads stale values from the previous decode there: the same audio
# then gives different text depending on what was decoded before. Measured on 19 real
# commands decoded in three orders: 5 differ at multiples of 64, 2 at 128, none at 256.
AUDIO_CTX_STEP = 256
TOKENS_PER_SECOND = 8  # fast speech is ~4 words, ~6 tokens a second: more is a loop


# What whisper (tiny.en above all) writes for noise, a breath or a cough: its training data's
# subtitle habits. As a whole utterance it is not speech to answer.
NO_SPEECH = frozenset({"you", "thank you", "thanks", "thank you very much", "thanks for watching",
                       "thank you for watching", "bye", "okay", "oh", "um", "uh", "hmm", "so"})


def heard_nothing(text: str) -> bool:
    """True for an empty transcript or one of whisper's stock outputs for non-speech."""
    words = re.sub(r"[^a-z' ]+", " ", text.lower()).split()
    return " ".join(words) in NO_SPEECH or not words


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: List[Segment]
    audio_ctx: int  # encoder frames used (1500 = the full 30 s window)
    decode_ms: float
    duration: float  # seconds of audio
    # Decoded held to the intents' grammar: what that cost, in nats (grammar.Held.forced); the
    # text is the grammar's when this is within the engine's limits, else a free decode's.
    # None: decoded freely only.
    forced: Optional[float] = None
    held: bool = False  # the text is the grammar's
    # mean log-probability of the text's tokens (whisper's avg_logprob; 0.0 for no text): far
    # below -1 the text is a guess, most often at noise
    logprob: float = 0.0


class Aborted(Exception):
    """An in-flight decode was aborted by its caller."""


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class Engine:
    """A whisper.cpp model, through `libwhisper` (pywhispercpp's libwhisper, called directly: the
    grammar's search scores continuations with whisper_decode, which pywhispercpp's Python API
    does not expose, and two bindings would hold two copies of the model). Every call passes
    every parameter."""

    def __init__(self, model_path: os.PathLike, asr: AsrConfig):
        """The model in model_path, decoded as the asr section says (threads, use_gpu, language,
        audio_ctx_floor, audio_ctx_margin, window_s); asr.model is not read (see models.load_engine)."""
        from .libwhisper import Context, Library

        self.model_path = Path(model_path)
        self.threads = asr.threads or default_threads()
        self.language = asr.language
        self.audio_ctx_floor = asr.audio_ctx_floor
        self.audio_ctx_margin = asr.audio_ctx_margin
        self.window_s = asr.window_s
        self._lock = threading.Lock()
        self._steering: Optional["Steering"] = None  # grammar.Steering, when commands are held to the intents' grammar
        library = Library.shared()
        # whisper.cpp logs to stderr (e.g. "failed to encode" for every aborted partial): its lines
        # go to the "whisper.cpp" logger at debug level, installed once for the process
        library.forward_logs()
        self._model = Context(self.model_path, use_gpu=asr.use_gpu, library=library)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def audio_ctx_for(self, n_samples: int) -> int:
        """Encoder frames for this much audio: its own length plus a margin, above a floor
        below which tiny models lose words (see the benchmark)."""
        frames = int(np.ceil(n_samples / SAMPLE_RATE * FRAMES_PER_SECOND)) + self.audio_ctx_margin
        frames = max(self.audio_ctx_floor, -(-frames // AUDIO_CTX_STEP) * AUDIO_CTX_STEP)
        return int(min(FULL_AUDIO_CTX, frames))

    def use_grammar(self, grammar, asr: Optional[AsrConfig] = None) -> None:
        """Decode commands held to grammar (a grammar.CommandGrammar) when transcribe_command is
        asked to (constrained=True), within asr's limits (grammar_max_forced,
        grammar_max_forced_per_word, grammar_beam); grammar None: free decoding again."""
        steering = None
        if grammar is not None:
            from .grammar import Steering

            if asr is None:
                raise TypeError("use_grammar(grammar, asr): the limits come from the asr section")
            with self._lock:
                steering = Steering(grammar, self._model.vocabulary(), self._model.eot, asr.grammar_max_forced,
                                    asr.grammar_max_forced_per_word, asr.grammar_beam)
        self._steering = steering

    @property
    def grammar_ready(self) -> bool:
        return self._steering is not None

    def transcribe_command(
        self,
        audio: np.ndarray,
        prompt: Optional[str] = None,
        abort: Optional[Callable[[], bool]] = None,
        blocking: bool = True,
        audio_ctx: Optional[int] = None,
        constrained: bool = False,
        denoise: bool = False,
    ) -> Optional[Transcript]:
        """Transcribe one short utterance (at most 30 s). With blocking=False, returns None at
        once when the engine is busy (partials must never delay a final).

        constrained=True (and a grammar in use_grammar): the text is the intents' sentence the
        model finds likeliest on this audio (grammar.search, on the free decode's encoder output),
        unless holding it there cost more than max_forced: speech that is not a command is
        forced into one at a high cost, and then the free decode's text is returned.

        denoise=True: the noise of the audio's first 250 ms (the VAD's pre-roll) is subtracted
        first (assistant/denoise.py)."""
        audio = _as_float(audio)[: int(MAX_DECODE_S * SAMPLE_RATE)]
        if denoise:
            from ..audio.denoise import subtract_noise

            audio = subtract_noise(audio)
        first = audio_ctx if audio_ctx is not None else self.audio_ctx_for(audio.size)
        if not self._lock.acquire(blocking=blocking):
            return None
        try:
            start = time.perf_counter()
            # a small window sometimes sends tiny models into a repetition loop ("go forward ten
            # meters. Go forward ten meters. ..."): cap the tokens and cut the loop at its first
            # repeat (measured: lower WER and latency than decoding again); only text that
            # cannot be saved is decoded again in a wider window
            max_tokens = int(TOKENS_PER_SECOND * audio.size / SAMPLE_RATE) + 16
            text, forced, logprob, held = None, None, 0.0, False
            steering = self._steering if constrained else None
            for ctx in dict.fromkeys((first, min(FULL_AUDIO_CTX, 2 * first), FULL_AUDIO_CTX)):
                decoded = self._run(_pad(audio), ctx, prompt=prompt, abort=abort, max_tokens=max_tokens)
                if decoded is None:  # aborted
                    break
                if steering is not None:  # once, on the first window's encoder output
                    found = self._hold(prompt, abort, max_tokens)
                    if found is not None:
                        forced = round(found.forced, 3)
                        if steering.keeps(forced, found.text):
                            text, logprob, held = found.text, found.logprob, True
                            break
                    steering = None
                logprob = decoded.logprob
                text = cut_loop(decoded.text, audio.size)
                if text is not None:
                    break
            decode_ms = (time.perf_counter() - start) * 1000
        finally:
            self._lock.release()
        if abort is not None and abort():
            raise Aborted()
        text = (text or "").strip()
        duration = audio.size / SAMPLE_RATE
        # without timestamps whisper.cpp's segment times are meaningless: the utterance is the segment
        segments = [Segment(0.0, duration, text)] if text else []
        return Transcript(text, segments, ctx, decode_ms, duration, forced, held, round(logprob, 3))

    def _hold(self, prompt, abort, max_tokens):
        """The grammar's likeliest sentence (a grammar.Held) on the audio just decoded; None if
        aborted or none was found."""
        continuations = self._model.continuations(prompt or None, self.threads, self.language)
        return self._steering.search(continuations.after, max_tokens, abort)

    def warm_up(self) -> None:
        """The first decode allocates whisper.cpp's buffers (about a second); do it before a user waits."""
        self.transcribe_command(np.zeros(SAMPLE_RATE, np.float32))

    def transcribe(
        self,
        audio: np.ndarray,
        prompt: Optional[str] = None,
        progress: Optional[Callable[[float, float], None]] = None,
        max_chars: int = 0,
    ) -> Transcript:
        """Transcribe audio of any length with timestamps. progress(done_s, total_s) after each window.
        max_chars > 0 asks whisper.cpp for segments of at most that many characters (subtitles)."""
        audio = _as_float(audio)
        total = audio.size / SAMPLE_RATE
        segments: List[Segment] = []
        start_time = time.perf_counter()
        for start, window in windows(audio, self.window_s):
            offset = start / SAMPLE_RATE
            length = window.size / SAMPLE_RATE
            with self._lock:
                found = self._decode(_pad(window), FULL_AUDIO_CTX, timestamps=True,
                                     prompt=prompt, max_chars=max_chars)
            for s in found:
                # whisper can put an end past the audio it was given; keep times inside it
                s_start = min(max(s.start, 0.0), length)
                s_end = min(max(s.end, s_start), length)
                segments.append(Segment(round(offset + s_start, 3), round(offset + s_end, 3), s.text))
            if progress is not None:
                progress(offset + length, total)
        decode_ms = (time.perf_counter() - start_time) * 1000
        text = " ".join(s.text for s in segments).strip()
        return Transcript(text, segments, FULL_AUDIO_CTX, decode_ms, total)

    def _decode(self, audio, audio_ctx, timestamps, prompt=None, abort=None, max_chars=0,
                max_tokens=0) -> List[Segment]:
        decoded = self._run(audio, audio_ctx, timestamps, prompt, abort, max_chars, max_tokens)
        segments = decoded.segments if decoded is not None else []
        return [Segment(start, end, text.strip()) for start, end, text in segments if text.strip()]

    def _run(self, audio, audio_ctx, timestamps=False, prompt=None, abort=None, max_chars=0, max_tokens=0):
        """One whisper_full call; None when abort() stopped it."""
        return self._model.decode(
            audio, threads=self.threads, language=self.language,
            audio_ctx=0 if audio_ctx >= FULL_AUDIO_CTX else audio_ctx,
            timestamps=timestamps, prompt=prompt or None, max_len=max_chars, max_tokens=max_tokens,
            abort=abort,
            # Temperature fallback re-decodes with sampling: it fights repetition loops in long
            # audio, but on a command it costs a second decode and makes the text random.
            temperature_inc=0.2 if timestamps else 0.0)


def _key(token: str) -> str:
    return re.sub(r"[^a-z0-9']", "", token.lower())


def repeat_start(text: str) -> Optional[int]:
    """Index (in whitespace tokens) where a repetition begins: a phrase of two or more words
    said again at once, or one word a third time. None when nothing repeats."""
    words = [_key(t) for t in text.split()]
    for i in range(len(words)):
        if i + 2 < len(words) and words[i] == words[i + 1] == words[i + 2]:
            return i + 1
        for n in range(2, (len(words) - i) // 2 + 1):
            if words[i:i + n] == words[i + n:i + 2 * n]:
                return i + n
    return None


def cut_loop(text: str, n_samples: int) -> Optional[str]:
    """Text with a repetition loop cut off at its first repeat ("Go forward 10 meters. Go forward
    10 meters. ..." -> "Go forward 10 meters."); the text itself when it does not loop; None
    when it cannot be saved (too many words and no clean repeat): decode it again, wider."""
    tokens = text.split()
    cut = repeat_start(text)
    if cut is not None:
        tokens = tokens[:cut]
    words = re.findall(r"[a-z0-9']+", " ".join(tokens).lower())
    if len(words) > 5 * n_samples / SAMPLE_RATE + 4:  # more than anyone says in that time
        return None
    return " ".join(tokens)


def windows(audio: np.ndarray, window_s: float = 30.0) -> Iterator[tuple]:
    """Split long audio into windows of at most window_s, cut at the quietest 100 ms in the
    window's last third so a cut rarely falls inside a word. Yields (start_sample, window)."""
    size = int(window_s * SAMPLE_RATE)
    step = SAMPLE_RATE // 10
    start = 0
    while start < audio.size:
        end = start + size
        if end >= audio.size:
            yield start, audio[start:]
            return
        search_from = start + (2 * size) // 3
        tail = audio[search_from:end]
        n = tail.size // step
        energy = np.square(tail[: n * step].reshape(n, step)).mean(axis=1)
        cut = search_from + int(np.argmin(energy)) * step + step // 2
        yield start, audio[start:cut]
        start = cut


def _as_float(audio: np.ndarray) -> np.ndarray:
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    return np.ascontiguousarray(audio, dtype=np.float32)


def _pad(audio: np.ndarray) -> np.ndarray:
    # whisper.cpp refuses input under 100 ms and is unreliable just above; pad to 1 s with silence
    if audio.size >= SAMPLE_RATE:
        return audio
    return np.concatenate([audio, np.zeros(SAMPLE_RATE - audio.size, np.float32)])
