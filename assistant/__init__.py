"""Offline real-time voice assistant front-end.

What an intent pack's handlers need is importable from here:

    from assistant import Reply, handler
"""

from .intents.packs import Context, Reply, handler

__version__ = "0.1.0"

__all__ = ["Context", "Reply", "handler", "__version__"]
