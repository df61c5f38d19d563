"""From a transcript to an intent and its slots.

Matching is two steps. First hassil matches the normalised text against the sentence templates
exactly (confidence 1.0). If nothing matches, the fuzzy index (fuzzy.py) measures how far the
words are from each template, in which a near-miss word ("time" for "timer") costs little. The
matcher refuses when the best confidence is below IntentsConfig.fuzzy_threshold or when two
intents are about equally close (IntentsConfig.fuzzy_margin): guessing wrong is worse than asking
again. The corrected sentence is matched by hassil again, so the slots are always hassil's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

from hassil import Intents, recognize_best
from hassil.recognize import RecognizeResult

from ..config import IntentsConfig
from .fuzzy import FuzzyIndex
from .normalize import Normalized, normalize_tokens

_LOGGER = logging.getLogger(__name__)

__all__ = ["Match", "Matcher"]


@dataclass(frozen=True)
class Match:
    """A recognised intent."""

    intent: str
    slots: Dict[str, Any]  # numbers are int/float, list values their "out" value
    confidence: float  # 1.0 for a template match, lower for a fuzzy one
    text: str  # the normalised text that matched (fuzzy: the corrected sentence)
    template: Optional[str] = None  # the sentence template that matched
    fuzzy: bool = False


class Matcher:
    """Matcher(intents, config).match(text): hassil first, then the fuzzy fallback."""

    def __init__(self, intents: Intents, config: IntentsConfig):
        self.intents = intents
        self.config = config
        # Built now, not on the first near-miss: it takes ~0.1 s, which a reply should not wait for.
        self.fuzzy = FuzzyIndex(intents)

    def match(self, text: str) -> Optional[Match]:
        """The intent of a transcript, or None when nothing is close enough."""
        full = _said_once(normalize_tokens(text))
        if not full.tokens:
            return None
        # Some templates keep words normalize() strips ("can you hear me"): try both.
        candidates = [full]
        light = normalize_tokens(text, strip_polite=False)
        if light.text != full.text:
            candidates.append(light)
        for norm in candidates:
            result = self._recognize(norm.text)
            if result is not None:
                return _to_match(result, norm, 1.0, fuzzy=False)
        return self._fuzzy_match(full)

    def _recognize(self, text: str) -> Optional[RecognizeResult]:
        try:
            return recognize_best(text, self.intents, language=self.intents.language)
        except Exception:
            _LOGGER.exception("hassil failed on %r", text)
            return None

    def _fuzzy_match(self, norm: Normalized) -> Optional[Match]:
        words = [t.text for t in norm.tokens]
        ranked = self.fuzzy.search(words)
        if not ranked:
            return None
        best = ranked[0]
        if best.confidence < self.config.fuzzy_threshold:
            _LOGGER.debug("fuzzy: %r closest to %s at %.2f, below threshold", norm.text,
                          best.intent, best.confidence)
            return None
        rival = next((c for c in ranked if c.intent != best.intent), None)
        if rival is not None and best.confidence - rival.confidence < self.config.fuzzy_margin:
            _LOGGER.info("fuzzy: %r is as close to %s (%.2f) as to %s (%.2f); refusing", norm.text,
                         best.intent, best.confidence, rival.intent, rival.confidence)
            return None
        for candidate in (c for c in ranked if c.intent == best.intent):
            if candidate.confidence < self.config.fuzzy_threshold:
                break
            if candidate.repaired is None:
                continue  # a slot was not said ("set a timer for minutes")
            repaired = normalize_tokens(candidate.repaired, strip_polite=False)
            result = self._recognize(repaired.text)
            if result is not None and result.intent.name == best.intent:
                _LOGGER.info("fuzzy: %r read as %r (%s, %.2f)", norm.text, repaired.text,
                             best.intent, candidate.confidence)
                # A fuzzy match is never as sure as a template match.
                confidence = min(round(candidate.confidence, 3), 0.99)
                return _to_match(result, repaired, confidence, fuzzy=True)
        return None


def _to_match(result: RecognizeResult, norm: Normalized, confidence: float, fuzzy: bool) -> Match:
    slots: Dict[str, Any] = {}
    for entity in result.entities_list:
        value = entity.value
        if entity.is_wildcard and entity.text_span is not None and not fuzzy:
            # Wildcards keep the speaker's own text: case, punctuation, "; rm -rf x".
            value = norm.raw_span(*entity.text_span) or value
        slots[entity.name] = _plain_number(value)
    template = result.intent_sentence.text if result.intent_sentence is not None else None
    return Match(result.intent.name, slots, confidence, norm.text, template, fuzzy)


def _said_once(norm: Normalized) -> Normalized:
    """ "Help. Help." / "what time is it what time is it": a command said twice (or heard twice,
    a whisper loop) is the command once."""
    n = len(norm.tokens)
    words = [t.text for t in norm.tokens]
    if n >= 2 and n % 2 == 0 and words[: n // 2] == words[n // 2:]:
        return Normalized(norm.raw, norm.tokens[: n // 2])
    return norm


def _plain_number(value: Any) -> Any:
    """hassil gives digits as floats (5.0); an integral number becomes an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
