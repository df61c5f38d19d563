"""Turn a transcript into an intent, run its handler, return the reply.

Dispatcher composes the parts, each in its own module:

- packs.py: the intent packs, loaded and merged into one set of intents;
- match.py: hassil's exact match on the normalised text, then the fuzzy fallback (fuzzy.py);
- handlers.py: the handler, command or fixed reply, run with a timeout;
- vocabulary.py: whisper's initial prompt from the intents' lists.

The dispatcher never raises from handle(): a handler that raises, hangs, or returns nonsense is
logged and answered with IntentsConfig.failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..config import Config, IntentsConfig
from ..errors import IntentError
from .handlers import handler_for, run_command, run_handler
from .match import Match, Matcher
from .packs import BUILT_IN, Context, Handler, IntentPack, Reply, load_packs, merge_packs
from .vocabulary import vocabulary_prompt

_LOGGER = logging.getLogger(__name__)

__all__ = ["Dispatcher", "Match", "Result", "Reply", "Context", "run_command"]


@dataclass
class Result:
    """The answer to one utterance."""

    intent: Optional[str]  # None: not understood
    slots: Dict[str, Any]
    reply: str
    data: Dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    error: Optional[str] = None  # None | "not_understood" | "failed" | "timeout"


class Dispatcher:
    """Dispatcher(packs, config): match(text) and handle(text, context)."""

    def __init__(self, packs: Sequence[IntentPack], config: Union[Config, IntentsConfig, None] = None):
        self.config = _intents_config(config)
        self.packs = list(packs)
        merged = merge_packs(self.packs, self.config.commands)
        self.data = merged.data
        self.intents = merged.intents
        self.specs = merged.specs
        self.handlers = merged.handlers
        self.handler_sources = merged.handler_sources
        self.descriptions = merged.descriptions
        self.errors: List[str] = merged.errors
        for name in self.intents.intents:
            if self._handler(name) is None:
                _LOGGER.warning("intent '%s' has no handler, command or reply", name)
        self.context = Context(config=self.config)
        self.matcher = Matcher(self.intents, self.config)

    @classmethod
    def from_config(cls, config: Union[Config, IntentsConfig, None] = None, strict: bool = True) -> "Dispatcher":
        """The built-in packs, then those in intents.paths (relative to the config file's folder).
        strict: a missing folder or a broken pack is an IntentError (else kept in .errors)."""
        base = Path(config.path).resolve().parent if isinstance(config, Config) and config.path else None
        dispatcher = cls(load_packs([BUILT_IN, *_intents_config(config).paths], base=base), config)
        if strict and dispatcher.errors:
            dispatcher.close()
            raise IntentError.of(dispatcher.errors)
        return dispatcher

    def match(self, text: str) -> Optional[Match]:
        """The intent of a transcript, or None when nothing is close enough."""
        return self.matcher.match(text)

    def handle(self, text: str, context: Optional[Context] = None) -> Result:
        """Match and run the handler. Never raises; failures become IntentsConfig.failed."""
        ctx = context if context is not None else self.context
        try:
            match = self.match(text)
        except Exception:
            _LOGGER.exception("matching %r failed", text)
            match = None
        if match is None:
            return Result(None, {}, self.config.not_understood, {}, 0.0, "not_understood")
        fn = self._handler(match.intent)
        if fn is None:
            _LOGGER.error("intent '%s' matched but has no handler", match.intent)
            return self._failed(match, "failed")
        ctx.intents = dict(self.descriptions)
        outcome = run_handler(fn, match.intent, dict(match.slots), ctx, self.config.handler_timeout_s)
        if outcome.reply is None:
            return self._failed(match, outcome.status)
        if outcome.reply.text:
            ctx.last_reply = outcome.reply.text
        return Result(match.intent, match.slots, outcome.reply.text, outcome.reply.data, match.confidence)

    def vocabulary_prompt(self, max_chars: int = 224) -> str:
        """A short whisper initial prompt with the words the intents expect (vocabulary.py);
        "" when IntentsConfig.vocabulary_prompt is off."""
        if not self.config.vocabulary_prompt:
            return ""
        return vocabulary_prompt(self.data.get("lists") or {}, max_chars)

    def close(self) -> None:
        """Stop the default context's timer thread."""
        self.context.timers.close()

    def _handler(self, intent: str) -> Optional[Handler]:
        return handler_for(intent, self.handlers, self.specs)

    def _failed(self, match: Match, error: str) -> Result:
        return Result(match.intent, match.slots, self.config.failed, {}, match.confidence, error)


def _intents_config(config: Union[Config, IntentsConfig, None]) -> IntentsConfig:
    if config is None:
        return IntentsConfig()
    if isinstance(config, Config):
        return config.intents
    return config
