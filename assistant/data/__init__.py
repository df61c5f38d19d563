"""What ships inside the package: the default configuration and the built-in intents.

Both are kept at the repository's root (config.yaml, intents/), where people read and edit
them, and linked in here, so that the build copies them into the wheel (pyproject.toml,
[tool.setuptools.package-data]). Found through importlib.resources, so an installed
assistant reads its own copies wherever it is run from.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import AssistantError

__all__ = ["builtin_intents", "default_config"]


def default_config() -> Path:
    """The default config.yaml, with every key commented."""
    return _path("config.yaml")


def builtin_intents() -> Path:
    """The folder of the built-in intent packs (YAML templates and their handlers)."""
    return _path("intents")


def _path(name: str) -> Path:
    resource = files(__name__) / name
    if not isinstance(resource, Path):  # a zip import: handlers and packs need real files
        raise AssistantError(f"{resource}: the assistant must be installed as files, not run from a zip")
    return resource
