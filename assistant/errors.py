"""The errors a person can cause and fix: each is printed as one line and exits with 2.

Every module raises these (imported from here); `python -m assistant` catches AssistantError
alone, so a new kind of user error needs no change at the top.
"""

from __future__ import annotations

from typing import Sequence


class AssistantError(Exception):
    """A failure with a message for a person: one line naming the file, key or device and the cause."""


class UsageError(AssistantError):
    """A bad command line."""


class ConfigError(AssistantError, ValueError):
    """A bad configuration file, key or value. The message names the key and the file."""


class AudioError(AssistantError, ValueError):
    """An audio file that cannot be used. The message names the file and the cause."""


class CaptureError(AssistantError, RuntimeError):
    """No usable input device, or it cannot be opened."""


class SpeakerError(AssistantError, RuntimeError):
    """No usable TTS engine or output device; the message says what to install or configure."""


class ModelError(AssistantError):
    """A model that cannot be found, converted, fetched or loaded."""


class ConversionError(AssistantError):
    """A model that cannot be converted or a ggml file that is not valid; names the folder or file."""


class BindingError(AssistantError, RuntimeError):
    """libwhisper is missing, or not the version or layout this binding was written for."""


class IntentError(AssistantError):
    """An intent folder that is missing, or a pack that cannot be loaded; names the file."""

    @classmethod
    def of(cls, problems: Sequence[str]) -> "IntentError":
        """One line for the problems found loading the packs: the first (a traceback shortened to
        its first and last lines, which name the file and the cause) and how many more."""
        lines = problems[0].strip().splitlines() or ["?"]
        first = lines[0] if len(lines) == 1 else f"{lines[0].rstrip()} {lines[-1].strip()}"
        more = len(problems) - 1
        if more:
            first += f" (and {more} more: `python -m assistant intents list` shows them all)"
        return cls(first)
