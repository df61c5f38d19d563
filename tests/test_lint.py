"""The lint gate: ruff (pyflakes, pycodestyle, bugbear) over the code, tests, benchmarks and the
built-in intents, and mypy over the package and the benchmarks, both as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_passes():
    r = run("ruff", "check", "assistant", "tests", "benchmarks", "intents")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_passes():
    r = run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr
