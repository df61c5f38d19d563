"""Word error rate, with the text normalisation both sides need before comparing."""

from __future__ import annotations

import re
from typing import Iterable, List, Tuple

from ..intents.numbers import in_words

__all__ = ["edit_distance", "normalize", "wer"]


def normalize(text: str) -> str:
    """Lower-case, spell numbers, drop punctuation: what a WER compares."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    text = re.sub(r"\d+", lambda m: " " + in_words(int(m.group())) + " ", text)
    text = text.replace("-", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(^| )'|'( |$)", " ", text)
    return " ".join(text.split())


def edit_distance(ref: List[str], hyp: List[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def wer(pairs: Iterable[Tuple[str, str]]) -> float:
    """Corpus WER over (reference, hypothesis) pairs: total edits / total reference words."""
    edits = words = 0
    for ref, hyp in pairs:
        r, h = normalize(ref).split(), normalize(hyp).split()
        edits += edit_distance(r, h)
        words += len(r)
    return edits / max(1, words)
