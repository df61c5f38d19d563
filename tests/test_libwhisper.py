"""The ctypes binding to pywhispercpp's libwhisper, on the shipped library and the real tiny.en:
the version gate, the layout check, the errchecks, a closed context, the log callback."""

from __future__ import annotations

import ctypes.util
import logging
import threading

import numpy as np
import pytest

from asr import SPEECH, model_path
from assistant.asr import libwhisper
from assistant.asr.engine import Aborted, Engine
from assistant.config import AsrConfig
from assistant.audio import load_audio
from assistant.errors import AssistantError, BindingError


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(SPEECH / "goforward.wav")


# -- the version gate and the layout check ------------------------------------------------

def test_the_shipped_library_is_a_checked_version_and_its_layout_matches():
    library = libwhisper.Library()
    assert library.version in libwhisper.SUPPORTED_VERSIONS
    assert library.lib.whisper_version().decode() == library.version
    library._check_layout()  # the second line of defence passes on its own, too


def test_a_version_the_binding_was_not_checked_against_is_refused(monkeypatch):
    """Only one libwhisper is installed, so the shipped one stands in for an unknown release: its
    real whisper_version() answer is taken out of the checked versions."""
    found = libwhisper.Library().version
    monkeypatch.setattr(libwhisper, "SUPPORTED_VERSIONS", ("1.8.99",))
    with pytest.raises(BindingError) as error:
        libwhisper.Library()
    message = str(error.value)
    assert f"whisper.cpp {found}" in message  # what was found
    assert "1.8.99" in message  # what is supported
    assert "pip install 'pywhispercpp" in message  # what to install
    assert isinstance(error.value, AssistantError)  # one line and exit 2 at the top


def test_a_library_without_whisper_version_is_refused():
    """A real shared library that is not libwhisper (the C maths library)."""
    libm = ctypes.util.find_library("m")
    assert libm
    with pytest.raises(BindingError, match=r"no whisper_version\(\).*pip install 'pywhispercpp"):
        libwhisper.Library(libm)


def test_every_call_in_the_table_is_typed_and_every_status_is_checked():
    library = libwhisper.Library()
    for name, (restype, argtypes, errcheck) in libwhisper._SIGNATURES.items():
        function = getattr(library.lib, name)
        assert function.restype == restype and function.argtypes == argtypes, name
        if errcheck is not None:
            assert function.errcheck is errcheck, name
    checked = {name for name, (_, _, errcheck) in libwhisper._SIGNATURES.items() if errcheck}
    returns_status = {"whisper_full", "whisper_decode", "whisper_tokenize", "whisper_lang_id"}
    returns_pointer = {name for name, (restype, _, _) in libwhisper._SIGNATURES.items()
                       if restype in (ctypes.c_void_p, ctypes.c_char_p) or hasattr(restype, "contents")}
    # whisper_token_to_str returns a pointer into the vocabulary: never NULL for an id below n_vocab
    assert returns_status | (returns_pointer - {"whisper_token_to_str"}) <= checked


# -- errchecks on a real context -----------------------------------------------------------

@pytest.fixture(scope="module")
def context():
    ctx = libwhisper.Context(model_path())
    yield ctx
    ctx.close()


def test_a_failing_call_is_a_clear_error(context, audio):
    """An abort makes whisper_full fail (whisper.cpp: "failed to encode"): called directly it
    raises WhisperError naming the call and its code; decode() turns it into None."""
    lib = context.library.lib
    params = context.library.default_params()
    params.n_threads, params.print_progress = 2, False
    stop = libwhisper.AbortCallback(lambda _: True)
    params.abort_callback = stop
    samples = np.ascontiguousarray(audio, dtype=np.float32)
    with pytest.raises(libwhisper.WhisperError, match=r"whisper_full failed \(returned -?\d+\)"):
        lib.whisper_full(context.handle, params, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                         samples.size)
    assert context.decode(audio, threads=2, audio_ctx=512, abort=lambda: True) is None
    assert "forward" in context.decode(audio, threads=2, audio_ctx=512).text.lower()  # still usable


def test_an_unknown_language_is_a_clear_error(context):
    with pytest.raises(ValueError, match="no language 'klingon'"):
        context.library.lib.whisper_lang_id(b"klingon")


def test_a_closed_context_never_reaches_c(audio):
    """Each call after close() raises ClosedError in Python: libwhisper would have been handed
    a freed pointer (a crash, which would take the test run with it)."""
    ctx = libwhisper.Context(model_path())
    assert ctx.decode(audio, threads=2, audio_ctx=512).text
    continuations = ctx.continuations(None, threads=2)
    ctx.close()
    assert ctx.closed
    for call in (lambda: ctx.decode(audio, threads=2, audio_ctx=512), lambda: continuations.after([]),
                 lambda: ctx.tokenize("hello"), lambda: ctx.prompt_tokens("hello"), ctx.vocabulary,
                 lambda: ctx.handle):
        with pytest.raises(libwhisper.ClosedError, match=f"{ctx.model_path.name} is closed"):
            call()
    ctx.close()  # twice is harmless


# -- whisper.cpp's log lines ---------------------------------------------------------------

def test_whisper_logs_go_to_python_logging_once_for_the_process(capfd, caplog):
    """Two engines decoding in two threads, every partial aborted (whisper.cpp logs "failed to
    encode" for each): nothing reaches stderr, the lines reach the "whisper.cpp" logger, and the
    one callback installed stays installed."""
    caplog.set_level(logging.DEBUG, logger="whisper.cpp")
    engines = [Engine(model_path(), AsrConfig(threads=1)) for _ in range(2)]
    installed = libwhisper._log_callback
    assert installed is not None
    errors: list = []

    def decode(engine: Engine) -> None:
        try:
            for _ in range(3):
                engine.transcribe_command(np.zeros(16000, np.float32))
                with pytest.raises(Aborted):
                    engine.transcribe_command(np.zeros(32000, np.float32), abort=lambda: True)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=decode, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert libwhisper._log_callback is installed
    err = capfd.readouterr().err
    assert "whisper" not in err and "failed to encode" not in err, err
    lines = [r.getMessage() for r in caplog.records if r.name == "whisper.cpp"]
    assert any("failed to encode" in line for line in lines), lines[-5:]
