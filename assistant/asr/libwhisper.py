"""A small ctypes binding to the libwhisper that pywhispercpp ships, for what pywhispercpp
does not expose: the decoder's log-probabilities for any continuation of the text, on the
audio of the last decode (`Context.continuations`), which `grammar.py` searches to hold a
command to the intents' sentences; and each decode's mean token log-probability.

Both parameter structs are passed to C by value, so a layout that does not match the library
would corrupt memory. `Library` therefore refuses, before anything is decoded:
- a whisper.cpp whose `whisper_version()` is not one of SUPPORTED_VERSIONS (a release can append
  fields, which the check below cannot see);
- a library whose struct defaults differ from whisper.cpp's documented ones at the offsets this
  binding uses (the second line of defence, for a build that reports a version it is not).
Every call in the signature table that can fail has an errcheck, and a closed Context cannot
reach C.
"""

from __future__ import annotations

import atexit
import ctypes
import glob
import logging
import math
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_void_p)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import BindingError

_LOGGER = logging.getLogger(__name__)
_WHISPER_LOGGER = logging.getLogger("whisper.cpp")

# The whisper.cpp releases this binding was checked against: the same struct sizes (read from
# the *_by_ref functions' allocations) and defaults, every function in _SIGNATURES, and the same
# decodes, log-probabilities and continuations on the test clips. They are the libwhisper of
# pywhispercpp 1.5.1 (1.8.5) and 1.5.0 (1.8.4). pywhispercpp 1.4.x ships 1.8.2, whose layout
# matches but whose log-probabilities differ in the third decimal (the grammar's costs are
# tuned on these); older releases have another whisper_full_params and no whisper_version().
SUPPORTED_VERSIONS = ("1.8.4", "1.8.5")
INSTALL = "pip install 'pywhispercpp>=1.5.0,<=1.5.1'"


class WhisperError(RuntimeError):
    """A libwhisper call reported failure: names the function and its return code."""


class VadParams(Structure):
    _fields_ = [("threshold", c_float), ("min_speech_duration_ms", c_int), ("min_silence_duration_ms", c_int),
                ("max_speech_duration_s", c_float), ("speech_pad_ms", c_int), ("samples_overlap", c_float)]


class TokenData(Structure):
    _fields_ = [("id", c_int32), ("tid", c_int32), ("p", c_float), ("plog", c_float), ("pt", c_float),
                ("ptsum", c_float), ("t0", c_int64), ("t1", c_int64), ("t_dtw", c_int64), ("vlen", c_float)]


class ContextParams(Structure):
    _fields_ = [("use_gpu", c_bool), ("flash_attn", c_bool), ("gpu_device", c_int),
                ("dtw_token_timestamps", c_bool), ("dtw_aheads_preset", c_int), ("dtw_n_top", c_int),
                ("dtw_aheads_n_heads", c_size_t), ("dtw_aheads_heads", c_void_p), ("dtw_mem_size", c_size_t)]


AbortCallback = CFUNCTYPE(c_bool, c_void_p)
LogCallback = CFUNCTYPE(None, c_int, c_char_p, c_void_p)  # ggml_log_callback(level, text, user_data)
LogitsFilter = CFUNCTYPE(None, c_void_p, c_void_p, POINTER(TokenData), c_int, POINTER(c_float), c_void_p)


class FullParams(Structure):
    _fields_ = [
        ("strategy", c_int),
        ("n_threads", c_int), ("n_max_text_ctx", c_int), ("offset_ms", c_int), ("duration_ms", c_int),
        ("translate", c_bool), ("no_context", c_bool), ("no_timestamps", c_bool), ("single_segment", c_bool),
        ("print_special", c_bool), ("print_progress", c_bool), ("print_realtime", c_bool),
        ("print_timestamps", c_bool),
        ("token_timestamps", c_bool), ("thold_pt", c_float), ("thold_ptsum", c_float), ("max_len", c_int),
        ("split_on_word", c_bool), ("max_tokens", c_int),
        ("debug_mode", c_bool), ("audio_ctx", c_int),
        ("tdrz_enable", c_bool),
        ("suppress_regex", c_char_p),
        ("initial_prompt", c_char_p), ("carry_initial_prompt", c_bool),
        ("prompt_tokens", POINTER(c_int32)), ("prompt_n_tokens", c_int),
        ("language", c_char_p), ("detect_language", c_bool),
        ("suppress_blank", c_bool), ("suppress_nst", c_bool),
        ("temperature", c_float), ("max_initial_ts", c_float), ("length_penalty", c_float),
        ("temperature_inc", c_float), ("entropy_thold", c_float), ("logprob_thold", c_float),
        ("no_speech_thold", c_float),
        ("greedy_best_of", c_int),
        ("beam_size", c_int), ("beam_patience", c_float),
        ("new_segment_callback", c_void_p), ("new_segment_callback_user_data", c_void_p),
        ("progress_callback", c_void_p), ("progress_callback_user_data", c_void_p),
        ("encoder_begin_callback", c_void_p), ("encoder_begin_callback_user_data", c_void_p),
        ("abort_callback", AbortCallback), ("abort_callback_user_data", c_void_p),
        ("logits_filter_callback", LogitsFilter), ("logits_filter_callback_user_data", c_void_p),
        ("grammar_rules", c_void_p), ("n_grammar_rules", c_size_t),
        ("i_start_rule", c_size_t), ("grammar_penalty", c_float),
        ("vad", c_bool), ("vad_model_path", c_char_p),
        ("vad_params", VadParams),
    ]


# whisper_full_default_params(GREEDY) in whisper.cpp 1.8.4 and 1.8.5: fields on both sides of every
# pointer and bool run, so a shifted layout cannot pass. (The release has a bool
# carry_initial_prompt after initial_prompt that the header on GitHub's master lacked: this
# check found it.)
_DEFAULTS = {"n_max_text_ctx": 16384, "suppress_blank": True, "print_timestamps": True, "thold_pt": 0.01,
             "thold_ptsum": 0.01, "temperature": 0.0, "max_initial_ts": 1.0, "length_penalty": -1.0,
             "temperature_inc": 0.2, "entropy_thold": 2.4,
             "logprob_thold": -1.0, "no_speech_thold": 0.6, "greedy_best_of": 5, "beam_size": -1,
             "grammar_penalty": 100.0, "n_grammar_rules": 0}


# whisper_context_default_params() in whisper.cpp 1.8.4 and 1.8.5
_CONTEXT_DEFAULTS = {"gpu_device": 0, "dtw_aheads_preset": 0, "dtw_n_top": -1, "dtw_aheads_n_heads": 0,
                     "dtw_mem_size": 128 * 1024 * 1024}


# errchecks: ctypes calls them with (result, function, the call's arguments)
def _not_null(result: Any, func: Any, args: Tuple) -> Any:
    if not result:
        raise BindingError(f"{func.__name__} returned NULL")
    return result


def _loaded(result: Any, func: Any, args: Tuple) -> Any:
    if not result:
        raise BindingError(f"whisper.cpp could not load {args[0].decode(errors='replace')} "
                           f"(not a whisper.cpp model, or one this version cannot read)")
    return result


def _ok(result: int, func: Any, args: Tuple) -> int:
    if result != 0:
        raise WhisperError(f"{func.__name__} failed (returned {result})")
    return result


def _tokens(result: int, func: Any, args: Tuple) -> int:
    if result < 0:
        raise BindingError(f"whisper_tokenize needed {-result} tokens for {args[1][:40]!r}")
    return result


def _language(result: int, func: Any, args: Tuple) -> int:
    if result < 0:
        raise ValueError(f"whisper.cpp knows no language {args[0].decode(errors='replace')!r}")
    return result


# libwhisper's functions this binding calls: name -> (return type, argument types, errcheck),
# whisper.h of the SUPPORTED_VERSIONS
_CTX, _I32P = c_void_p, POINTER(c_int32)
_SIGNATURES: Dict[str, Tuple[Any, List[Any], Optional[Callable]]] = {
    "whisper_version": (c_char_p, [], _not_null),
    "whisper_log_set": (None, [LogCallback, c_void_p], None),
    "whisper_init_from_file_with_params": (c_void_p, [c_char_p, ContextParams], _loaded),
    "whisper_context_default_params_by_ref": (POINTER(ContextParams), [], _not_null),
    "whisper_free_context_params": (None, [POINTER(ContextParams)], None),
    "whisper_full_default_params_by_ref": (POINTER(FullParams), [c_int], _not_null),
    "whisper_free_params": (None, [POINTER(FullParams)], None),
    "whisper_free": (None, [_CTX], None),
    "whisper_full": (c_int, [_CTX, FullParams, POINTER(c_float), c_int], _ok),
    "whisper_full_n_segments": (c_int, [_CTX], None),
    "whisper_full_get_segment_t0": (c_int64, [_CTX, c_int], None),
    "whisper_full_get_segment_t1": (c_int64, [_CTX, c_int], None),
    "whisper_full_get_segment_text": (c_char_p, [_CTX, c_int], _not_null),
    "whisper_full_n_tokens": (c_int, [_CTX, c_int], None),
    "whisper_full_get_token_id": (c_int32, [_CTX, c_int, c_int], None),
    "whisper_full_get_token_p": (c_float, [_CTX, c_int, c_int], None),
    "whisper_n_vocab": (c_int, [_CTX], None),
    "whisper_n_text_ctx": (c_int, [_CTX], None),
    "whisper_is_multilingual": (c_int, [_CTX], None),
    "whisper_token_to_str": (c_char_p, [_CTX, c_int32], None),
    "whisper_tokenize": (c_int, [_CTX, c_char_p, _I32P, c_int], _tokens),
    "whisper_decode": (c_int, [_CTX, _I32P, c_int, c_int, c_int], _ok),
    "whisper_get_logits": (POINTER(c_float), [_CTX], _not_null),
    "whisper_lang_id": (c_int, [c_char_p], _language),
    "whisper_token_lang": (c_int32, [_CTX, c_int], None),
    **{f"whisper_token_{name}": (c_int32, [_CTX], None) for name in ("eot", "sot", "not", "prev", "transcribe")},
}


def find_library() -> Path:
    """The libwhisper that pywhispercpp's extension links against (auditwheel renames it)."""
    import pywhispercpp

    site = Path(pywhispercpp.__file__).resolve().parent.parent
    patterns = ["pywhispercpp.libs/libwhisper*.so*", "pywhispercpp/.dylibs/libwhisper*.dylib",
                "libwhisper.so*", "libwhisper*.dylib", "pywhispercpp/libwhisper*"]
    for pattern in patterns:
        found = sorted(glob.glob(str(site / pattern)))
        if found:
            return Path(found[0])
    raise BindingError(f"no libwhisper next to pywhispercpp in {site}")


class Library:
    """libwhisper's C functions, typed, once its version and struct layouts are known to match."""

    _instance: Optional["Library"] = None
    _lock = threading.Lock()

    def __init__(self, path: Optional[os.PathLike] = None):
        self.path = Path(path) if path else find_library()
        lib = self.lib = ctypes.CDLL(str(self.path))
        self.version = self._check_version()
        for name, (restype, argtypes, errcheck) in _SIGNATURES.items():
            if not hasattr(lib, name):
                raise BindingError(f"{self.path.name} (whisper.cpp {self.version}) has no {name}(): {INSTALL}")
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
            if errcheck is not None:
                function.errcheck = errcheck
        self._check_layout()

    @classmethod
    def shared(cls) -> "Library":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def default_params(self) -> FullParams:
        """whisper.cpp's defaults for greedy decoding."""
        ref = self.lib.whisper_full_default_params_by_ref(0)
        try:
            return FullParams.from_buffer_copy(ref.contents)
        finally:
            self.lib.whisper_free_params(ref)

    def context_params(self) -> ContextParams:
        ref = self.lib.whisper_context_default_params_by_ref()
        try:
            return ContextParams.from_buffer_copy(ref.contents)
        finally:
            self.lib.whisper_free_context_params(ref)

    def forward_logs(self) -> None:
        """Send whisper.cpp's log lines (model loading, "failed to encode" for every aborted
        decode, ...) to the Python logger "whisper.cpp" at debug level instead of stderr.

        whisper.cpp has one log callback per process, so this installs it once, whoever asks
        and from whichever thread, and it stays for the process's life. At exit it is handed
        back to whisper.cpp's own before the interpreter goes: a Python callback that whisper.cpp
        calls during interpreter shutdown crashes the process."""
        global _log_callback
        with _log_lock:
            if _log_callback is not None:
                return
            callback = LogCallback(_log_line)
            self.lib.whisper_log_set(callback, None)
            _log_callback = callback  # a ctypes callback must outlive every call into it
            atexit.register(self.lib.whisper_log_set, LogCallback(), None)  # NULL: whisper.cpp's own

    def _check_version(self) -> str:
        supported = ", ".join(SUPPORTED_VERSIONS)
        if not hasattr(self.lib, "whisper_version"):
            raise BindingError(f"{self.path} has no whisper_version(): it is not libwhisper, or an older "
                               f"whisper.cpp; this binding supports whisper.cpp {supported}: {INSTALL}")
        function = self.lib.whisper_version
        function.restype, function.argtypes = c_char_p, []
        version = (function() or b"?").decode(errors="replace")
        if version not in SUPPORTED_VERSIONS:
            raise BindingError(f"{self.path.name} is whisper.cpp {version}, but this binding was checked against "
                               f"whisper.cpp {supported} only (its structs are passed by value: another layout "
                               f"corrupts memory): {INSTALL}")
        return version

    def _check_layout(self) -> None:
        cparams = self.context_params()
        wrong = [f"{name}={getattr(cparams, name)!r} (expected {value!r})" for name, value in _CONTEXT_DEFAULTS.items()
                 if getattr(cparams, name) != value]
        if wrong:
            raise BindingError(f"{self.path.name}: whisper_context_params layout differs from whisper.cpp "
                               f"{self.version}'s: {', '.join(wrong)}")
        params = self.default_params()
        wrong = [f"{name}={getattr(params, name)!r} (expected {value!r})" for name, value in _DEFAULTS.items()
                 if not math.isclose(getattr(params, name), value, rel_tol=1e-6, abs_tol=1e-9)]
        for name, value in (("threshold", 0.5), ("min_speech_duration_ms", 250), ("samples_overlap", 0.1)):
            if not math.isclose(getattr(params.vad_params, name), value, rel_tol=1e-6):
                wrong.append(f"vad_params.{name}={getattr(params.vad_params, name)!r} (expected {value!r})")
        if wrong:
            raise BindingError(f"{self.path.name}: whisper_full_params layout differs from whisper.cpp "
                               f"{self.version}'s: {', '.join(wrong)}")


_log_lock = threading.Lock()
_log_callback: Optional[Any] = None  # the LogCallback installed by Library.forward_logs


def _log_line(level: int, text: Optional[bytes], user_data: Any) -> None:
    if text:
        _WHISPER_LOGGER.debug(text.decode("utf-8", "replace").rstrip())


@dataclass(frozen=True)
class Decoded:
    text: str
    ids: List[int]  # the text tokens (no special or timestamp tokens)
    segments: List[tuple]  # (start s, end s, text); with timestamps off, whisper's own guess
    # mean log-probability of the text tokens (openai-whisper's avg_logprob). whisper.cpp
    # computes no_speech_prob only with timestamps on, so this is what tells noise from speech
    logprob: float = 0.0


class ClosedError(ValueError):
    """A Context used after close(): its whisper_context is freed, so nothing may reach C."""


class Context:
    """One whisper.cpp model loaded through this binding. Not thread-safe: the caller locks
    (close() included)."""

    def __init__(self, model_path: os.PathLike, use_gpu: bool = True, library: Optional[Library] = None):
        self.library = library or Library.shared()
        self.model_path = Path(model_path)
        self._ctx: Optional[int] = None
        cparams = self.library.context_params()
        cparams.use_gpu = use_gpu
        self._ctx = self.library.lib.whisper_init_from_file_with_params(str(self.model_path).encode(), cparams)
        self._eot = self.library.lib.whisper_token_eot(self._ctx)
        self.n_vocab = self.library.lib.whisper_n_vocab(self._ctx)
        self._prompt_cached: Optional[bool] = None  # see continuations()

    @property
    def handle(self) -> int:
        """The whisper_context pointer, for every call into C: raises ClosedError after close()
        (libwhisper would dereference the NULL)."""
        if not self._ctx:
            raise ClosedError(f"the whisper.cpp context of {self.model_path.name} is closed")
        return self._ctx

    @property
    def closed(self) -> bool:
        return not self._ctx

    @property
    def eot(self) -> int:
        return self._eot

    def tokenize(self, text: str) -> List[int]:
        n = len(text.encode()) + 8  # never more tokens than bytes
        buf = (c_int32 * n)()
        got = self.library.lib.whisper_tokenize(self.handle, text.encode(), buf, n)
        return list(buf[:got])

    def prompt_tokens(self, prompt: Optional[str], language: str = "en") -> List[int]:
        """The tokens whisper_full puts before the text of a decode without timestamps: the
        initial prompt after <|startofprev|> (its last n_text_ctx/2 tokens), <|startoftranscript|>,
        language and task on a multilingual model, <|notimestamps|>."""
        lib, ctx = self.library.lib, self.handle
        out: List[int] = []
        if prompt:
            out = [lib.whisper_token_prev(ctx)] + self.tokenize(prompt)[-(lib.whisper_n_text_ctx(ctx) // 2):]
        out.append(lib.whisper_token_sot(ctx))
        if lib.whisper_is_multilingual(ctx):
            out += [lib.whisper_token_lang(ctx, lib.whisper_lang_id(language.encode())),
                    lib.whisper_token_transcribe(ctx)]
        out.append(lib.whisper_token_not(ctx))
        return out

    def continuations(self, prompt: Optional[str], threads: int, language: str = "en") -> Continuations:
        """Log-probabilities of continuations of the text of the last decode(), which must have
        had this prompt and no timestamps. Whether whisper_full's KV cache still holds the prompt
        (whisper.cpp 1.8.4's and 1.8.5's do) is checked once, against decoding the prompt afresh."""
        tokens = self.prompt_tokens(prompt, language)
        if self._prompt_cached is None:
            reused = Continuations(self, tokens, threads, True).after([])
            fresh = Continuations(self, tokens, threads, False).after([])
            self._prompt_cached = bool(np.allclose(reused, fresh, atol=1e-4))
            if not self._prompt_cached:
                _LOGGER.info("whisper_full's KV cache does not keep the prompt: decoding it each time")
        return Continuations(self, tokens, threads, self._prompt_cached)

    def vocabulary(self) -> List[bytes]:
        """The text tokens' bytes, by id (the special tokens from end-of-text on excluded)."""
        ctx = self.handle
        return [self.library.lib.whisper_token_to_str(ctx, i) or b"" for i in range(self._eot)]

    def close(self) -> None:
        """Free the model; later calls raise ClosedError. Closing twice is harmless."""
        ctx, self._ctx = self._ctx, None
        if ctx:
            self.library.lib.whisper_free(ctx)

    def __del__(self):  # noqa: D105
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass

    def decode(self, audio: np.ndarray, *, threads: int, audio_ctx: int, language: str = "en",
               prompt: Optional[str] = None, max_tokens: int = 0, abort: Optional[Callable[[], bool]] = None,
               timestamps: bool = False, max_len: int = 0,
               temperature_inc: float = 0.0) -> Optional[Decoded]:
        """Greedy, without context. Without timestamps: one segment and no temperature fallback,
        the command path's settings. With them (long audio): segments, and max_len > 0 asks for
        segments of at most that many characters, split on words (subtitles). None: abort()
        said stop. Afterwards continuations() can score other texts on the same audio."""
        lib, ctx = self.library.lib, self.handle
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        p = self.library.default_params()
        p.n_threads = threads
        p.no_context = True
        p.no_timestamps = not timestamps
        p.single_segment = not timestamps
        p.token_timestamps = max_len > 0
        p.max_len = max_len
        p.split_on_word = max_len > 0
        p.print_progress = p.print_realtime = p.print_timestamps = p.print_special = False
        p.audio_ctx = audio_ctx
        p.max_tokens = max_tokens
        keep: List[Any] = [language.encode(), (prompt or "").encode()]  # alive until the call returns
        p.language = keep[0]
        p.initial_prompt = keep[1] if prompt else None
        p.suppress_blank = True
        p.suppress_nst = True
        p.temperature = 0.0
        p.temperature_inc = temperature_inc
        if abort is not None:
            callback = AbortCallback(lambda _: bool(abort()))
            keep.append(callback)
            p.abort_callback = callback
        try:
            lib.whisper_full(ctx, p, audio.ctypes.data_as(POINTER(c_float)), audio.size)
        except WhisperError:
            if abort is not None and abort():  # an aborted encode or decode fails by design
                return None
            raise
        ids, segments, logp = [], [], []
        for s in range(lib.whisper_full_n_segments(ctx)):
            segments.append((lib.whisper_full_get_segment_t0(ctx, s) / 100.0,
                             lib.whisper_full_get_segment_t1(ctx, s) / 100.0,
                             lib.whisper_full_get_segment_text(ctx, s).decode("utf-8", "replace")))
            for t in range(lib.whisper_full_n_tokens(ctx, s)):
                i = lib.whisper_full_get_token_id(ctx, s, t)
                if i < self._eot:
                    ids.append(i)
                    logp.append(math.log(max(1e-12, lib.whisper_full_get_token_p(ctx, s, t))))
        return Decoded("".join(text for _, _, text in segments).strip(), ids, segments,
                       float(np.mean(logp)) if logp else 0.0)


class Continuations:
    """The decoder's log-probabilities of the next token after the prompt and some text tokens,
    on the audio of the Context's last decode (whose encoder output whisper.cpp keeps), one
    `whisper_decode` call each. The KV cache holds one sequence: moving to another text decodes
    only its tokens after the prefix the two share, so a search that grows similar texts pays
    about one token a call. Valid until the Context decodes again; not thread-safe."""

    def __init__(self, context: "Context", prompt: Sequence[int], threads: int, prompt_cached: bool):
        self.context, self.prompt, self.threads = context, list(prompt), threads
        # whisper_full leaves the prompt in the KV cache: positions before it need no decoding
        self._cached: Optional[List[int]] = [] if prompt_cached else None
        self.calls = 0

    def after(self, tokens: Sequence[int]) -> np.ndarray:
        """log-softmax over the whole vocabulary of the token after prompt + tokens."""
        tokens = list(tokens)
        if self._cached is None:
            seq, n_past = self.prompt + tokens, 0
        else:
            common = 0
            for a, b in zip(self._cached, tokens):
                if a != b:
                    break
                common += 1
            # at least one token must be decoded for its logits: the last prompt token, if need be
            common = min(common, len(tokens) - 1)
            seq = (self.prompt[-1:] + tokens) if common < 0 else tokens[common:]
            n_past = len(self.prompt) + common
        lib, ctx = self.context.library.lib, self.context.handle
        lib.whisper_decode(ctx, (c_int32 * len(seq))(*seq), len(seq), n_past, self.threads)
        self.calls += 1
        self._cached = tokens
        row = np.ctypeslib.as_array(lib.whisper_get_logits(ctx),
                                    shape=(len(seq), self.context.n_vocab))[-1].astype(np.float64)
        top = row.max()
        return row - top - math.log(np.exp(row - top).sum())
