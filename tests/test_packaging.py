"""The package as a user gets it: a wheel installed into a fresh venv, run from another folder.

An editable install (or a checkout on PYTHONPATH) reads config.yaml and intents/ from the
repository, so it cannot tell a wheel that forgot its data. Here the source is copied, a wheel
is built from the copy (a stale build/ in the checkout cannot lend it files), installed into a
new venv with its dependencies from the package index (pip's cache and the machine's index
make that quick), and run with HOME and the working directory in empty temporary folders.
One venv serves the session.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Set

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
# Not the package's: what the copy leaves out (tests and benchmarks are not shipped).
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    "tests", "benchmarks", ".ci", "*.pyc")


def run(cmd: List[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, **kwargs)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("source") / "assistant"
    shutil.copytree(ROOT, src, symlinks=True, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    r = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)])
    assert r.returncode == 0, r.stderr
    (built,) = out.glob("assistant-*.whl")
    return built


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Path:
    """The venv's python, with the wheel and its declared dependencies only."""
    import pip

    venv = tmp_path_factory.mktemp("venv")
    python = venv / "bin" / "python"
    # Without pip of its own, when this pip can install into it (--python, pip >= 22.3): seeding
    # one takes longer than installing everything else.
    if tuple(int(part) for part in pip.__version__.split(".")[:2]) >= (22, 3):
        r = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        assert r.returncode == 0, r.stderr
        install = [sys.executable, "-m", "pip", "--python", str(python)]
    else:
        r = run([sys.executable, "-m", "venv", str(venv)])
        assert r.returncode == 0, r.stderr
        install = [str(python), "-m", "pip"]
    r = run([*install, "install", "-q", "--no-compile", str(wheel)])
    assert r.returncode == 0, r.stderr
    return python


@pytest.fixture
def away(tmp_path) -> Dict[str, str]:
    """An environment with nothing of the checkout: a fresh HOME (config, model cache) and no
    PYTHONPATH; commands run with cwd=tmp_path/"elsewhere"."""
    home = tmp_path / "home"
    (tmp_path / "elsewhere").mkdir()
    home.mkdir()
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), ASSISTANT_OFFLINE="1")  # the model comes from the installed package
    return env


def assistant(python: Path, env: Dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(python), "-m", "assistant", *args], env=env, cwd=str(cwd))


def test_wheel_ships_the_default_config_and_built_in_intents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "assistant/data/config.yaml" in names
    for file in (ROOT / "intents").iterdir():
        if file.suffix in (".yaml", ".py", ".md"):
            assert f"assistant/data/intents/{file.name}" in names, file.name
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "intents/"))]


def test_installed_wheel_works_from_any_folder(installed, away, tmp_path):
    cwd = tmp_path / "elsewhere"
    r = assistant(installed, away, cwd, "intents", "list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "site-packages/assistant/data/intents" in r.stdout and "error:" not in r.stdout
    for intent in ("GetTime", "TimerStart", "Calculate", "Help", "Stop"):
        assert intent in r.stdout

    r = assistant(installed, away, cwd, "intents", "test", "what time is it")
    assert r.returncode == 0 and "intent: GetTime" in r.stdout, r.stdout + r.stderr

    r = assistant(installed, away, cwd, "transcribe", str(DATA / "jfk.flac"), "--no-progress")
    assert r.returncode == 0, r.stderr
    words = re.sub(r"[^a-z ]", "", r.stdout.lower())
    assert "ask not what your country can do for you" in words, r.stdout

    r = assistant(installed, away, cwd, "config")
    assert r.returncode == 0, r.stderr
    assert re.search(r"default config +\S*site-packages/assistant/data/config.yaml +\(in use\)", r.stdout), r.stdout


def test_installed_wheel_takes_the_users_own_intents(installed, away, tmp_path):
    """config init, a pack dropped into the folder it made, and the built-ins still answer."""
    cwd = tmp_path / "elsewhere"
    r = assistant(installed, away, cwd, "config", "init")
    assert r.returncode == 0, r.stderr
    folder = Path(away["HOME"]) / ".config" / "assistant" / "intents"
    assert folder.is_dir() and not list(folder.iterdir())
    (folder / "weather.yaml").write_text(
        "language: en\nintents:\n  Weather:\n    reply: Always sunny.\n    data:\n"
        "      - sentences: [\"what is the weather\"]\n")
    r = assistant(installed, away, cwd, "intents", "test", "what's the weather")
    assert r.returncode == 0 and "reply: Always sunny." in r.stdout, r.stdout + r.stderr
    r = assistant(installed, away, cwd, "intents", "test", "what time is it")
    assert r.returncode == 0 and "intent: GetTime" in r.stdout, r.stdout + r.stderr


# --- every package the code imports is declared -----------------------------------------------


def _imports(tree: ast.Module) -> Dict[str, bool]:
    """Top-level module names imported -> whether at import time (else only inside a function,
    or under `if TYPE_CHECKING`)."""
    found: Dict[str, bool] = {}

    def visit(node: ast.AST, at_import: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            at_import = False
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            at_import = False
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            found[top] = found.get(top, False) or at_import
        for child in ast.iter_child_nodes(node):
            visit(child, at_import)

    visit(tree, True)
    return found


def _requirement_names(requirements: List[str]) -> Set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


@pytest.mark.skipif(sys.version_info < (3, 11), reason="needs tomllib and sys.stdlib_module_names")
def test_every_imported_package_is_declared():
    from importlib.metadata import packages_distributions

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = _requirement_names(project["dependencies"])
    extras = _requirement_names([r for reqs in project["optional-dependencies"].values() for r in reqs])
    providers = packages_distributions()
    files = sorted((ROOT / "assistant").rglob("*.py")) + sorted((ROOT / "intents").glob("*.py"))
    missing, optional_at_import = set(), set()
    for file in files:
        for module, at_import in _imports(ast.parse(file.read_text(encoding="utf-8"))).items():
            if module in sys.stdlib_module_names or module == "assistant":
                continue
            dists = {canonicalize_name(d) for d in providers.get(module, [])}
            assert dists, f"{file.relative_to(ROOT)} imports {module}, which no installed package provides"
            if not dists & (core | extras):
                missing |= dists
            elif at_import and not dists & core:
                optional_at_import.add(f"{file.relative_to(ROOT)}: {module}")
    assert not missing, f"imported but not in pyproject.toml: {missing}"
    assert not optional_at_import, f"an optional extra imported at import time: {optional_at_import}"
