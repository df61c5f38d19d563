"""Offline real-time voice assistant front-end.

What an intent pack's handlers need is importable from here:

    from assistant import Reply, handler

They are looked up on first use (PEP 562), so that `python -m assistant` and
`import assistant.config` do not load hassil before the configuration is checked.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ below hands out, for type checkers
    from .intents.packs import Context, Reply, handler

try:
    __version__ = version("assistant")
except PackageNotFoundError:  # run from a checkout that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Context", "Reply", "__version__", "handler"]

_FROM_PACKS = {"Context", "Reply", "handler"}


def __getattr__(name: str) -> Any:
    if name in _FROM_PACKS:
        from .intents import packs

        return getattr(packs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
