"""Shared test helpers for the speech engine: one model cache per test run, one loaded engine
per process, the real clips in tests/data/speech with their reference text, and the CLI."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).parent / "data"
SPEECH = DATA / "speech"
ROOT = Path(__file__).parent.parent

# Every test (and every CLI it runs) resolves models in one fresh cache, so the run proves
# the offline path: tiny.en is converted from the installed CTranslate2 package, never fetched.
if "ASSISTANT_MODELS_DIR" not in os.environ:
    os.environ["ASSISTANT_MODELS_DIR"] = tempfile.mkdtemp(prefix="assistant-models-")
    atexit.register(shutil.rmtree, os.environ["ASSISTANT_MODELS_DIR"], ignore_errors=True)
os.environ["ASSISTANT_OFFLINE"] = "1"


@functools.lru_cache(maxsize=None)
def model_path() -> Path:
    from assistant.asr.models import resolve

    return resolve("tiny.en", log=lambda m: None)


@functools.lru_cache(maxsize=None)
def engine():
    from assistant.asr.engine import Engine
    from assistant.config import AsrConfig

    return Engine(model_path(), AsrConfig(threads=2))


def references() -> dict:
    rows = (line.rstrip("\n").split("\t") for line in (SPEECH / "transcripts.tsv").open(encoding="utf-8"))
    return {name: text for name, text in rows}


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)
