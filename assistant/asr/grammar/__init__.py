"""The intents' sentence templates as a grammar whisper's decoding is held to.

tiny.en mishears synthetic and noisy commands ("Multiplite oven blade.") that a person would
not, because it may write any sentence at all. Held to the sentences the dispatcher can match,
it writes "Multiply 7 by 8.": `search` looks for the sentence of the grammar the model finds
most likely on the audio of the free decode, scoring continuations through `libwhisper`: only
tokens that continue a sentence, and the end of text only after a whole one.

- sentences.py: the templates, as whisper writes them, become a character automaton;
- automaton.py: made deterministic and minimal, so the text so far is in exactly one state;
- search.py: the tokens each state allows, and the beam search under the model;
- cache.py: the automaton kept as JSON in the user's cache, keyed by the intents' data.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Callable

from .automaton import Dfa, Nfa, determinize, minimize
from .cache import VERSION, CommandGrammar, cache_path
from .search import Held, Steering, TokenIndex, acceptable, search
from .sentences import template_automaton

if TYPE_CHECKING:
    from ...config import AsrConfig
    from ...intents.dispatcher import Dispatcher
    from ..engine import Engine

__all__ = [
    "VERSION", "CommandGrammar", "Dfa", "Held", "Nfa", "Steering", "TokenIndex", "acceptable",
    "cache_path", "determinize", "for_dispatcher", "minimize", "search", "template_automaton", "use_intents",
]


def use_intents(engine: Engine, dispatcher: Dispatcher, asr: AsrConfig) -> None:
    """Hold the engine's command decodes (constrained=True) to the dispatcher's intents, with
    config.asr's limits."""
    engine.use_grammar(for_dispatcher(dispatcher), asr)


def for_dispatcher(dispatcher: Dispatcher,
                   log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> CommandGrammar:
    """The grammar of a Dispatcher's intents, from the cache next to the models when it is there."""
    from ..models import cache_dir

    folder = cache_dir() / "grammar"
    key = json.dumps(dispatcher.data, sort_keys=True, default=str)
    if not cache_path(key, folder).exists():
        log("building the intents' grammar for whisper (once; cached in %s) ..." % folder)
    return CommandGrammar.cached(dispatcher.intents, key, folder)
