"""Partial text split into a stable prefix and an unstable tail.

A word is stable once two successive hypotheses agree on it and on every word before it
(the "local agreement" policy of streaming Whisper systems): whisper rewrites the end of a
growing utterance, rarely its beginning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def agreed_prefix(previous: List[str], current: List[str]) -> int:
    """How many leading words two hypotheses share (ignoring case and punctuation)."""
    n = 0
    for a, b in zip(previous, current):
        if _key(a) != _key(b):
            break
        n += 1
    return n


@dataclass
class PartialText:
    """Successive hypotheses of one utterance; the stable prefix only grows."""

    previous: List[str] = None  # type: ignore[assignment]
    stable_words: int = 0

    def update(self, text: str) -> tuple:
        """Add a hypothesis; return (text, stable prefix)."""
        words = text.split()
        if self.previous is not None:
            self.stable_words = max(self.stable_words, agreed_prefix(self.previous, words))
        self.stable_words = min(self.stable_words, len(words))
        self.previous = words
        return text, " ".join(words[: self.stable_words])
