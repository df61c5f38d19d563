"""How close a transcript is to each sentence template: the fuzzy matcher's index.

Each sentence template becomes a small graph (a DAG) whose edges are words, slots ({list}
values or numbers) and empty steps (optional parts, alternatives). The distance from what was
said to the template is the cheapest walk through the graph that explains the spoken words,
where a template word may be skipped, a spoken word may be extra, and a spoken word may stand
for a template word at a cost that grows as the words differ. Working on the graph, not on the
sentences it expands to, keeps a template with many alternatives cheap.

The graphs are built by walking the templates (templates.walk), as the grammar is: a near-miss
is measured against the same sentences whisper may be held to.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple

from hassil import Intents
from hassil.expression import Expression, ListReference

from .normalize import is_number
from .templates import Builder, Scope, for_each_sentence, walk


__all__ = ["Candidate", "FuzzyIndex", "SLOT_SIMILARITY"]

SLOT_SIMILARITY = 0.7  # a list value: "pastor" is pasta (0.73), "out" is not workout (0.6)
MAX_WORDS = 30  # longer transcripts are not commands: not searched
VALUE_FORMS = 100  # spoken forms kept per list value

_LIGHT = frozenset("a an the my me for to of is it and on in at this that".split())
_EPS, _WORD, _SLOT = 0, 1, 2


@dataclass(frozen=True)
class Candidate:
    """A template's distance to what was said."""

    intent: str
    confidence: float  # 1 - the walk's cost per word
    repaired: Optional[str]  # the template's words with the spoken slot values; None: a slot unsaid


class FuzzyIndex:
    """Every sentence template of a set of intents as a graph; search(words) ranks them."""

    def __init__(self, intents: Intents):
        self.graphs: List[_Graph] = []
        for sentence in for_each_sentence(intents):
            builder = _GraphBuilder()
            try:
                end = sentence.walk(builder).end
            except _Wildcard:
                continue
            self.graphs.append(_Graph(sentence.intent, builder.edges, end))

    def search(self, words: Sequence[str]) -> List[Candidate]:
        """Every template's candidate, best first."""
        spoken = [w.lower() for w in words]
        if not spoken or len(spoken) > MAX_WORDS:
            return []
        out = [_align(spoken, words, g) for g in self.graphs]
        out.sort(key=lambda c: -c.confidence)
        return out


# -- the graph ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """A {list}: a number (no values) or one of a text list's values."""

    name: str
    values: Tuple[Tuple[str, ...], ...] = ()  # lower-case words of each value
    texts: Tuple[str, ...] = ()  # each value as written, to rebuild the sentence

    @property
    def span(self) -> int:
        return max((len(v) for v in self.values), default=1)


@dataclass(frozen=True)
class _Edge:
    to: int
    kind: int  # _EPS | _WORD | _SLOT
    word: str = ""  # lower-case word (_WORD)
    shown: str = ""  # the word as written
    glue: bool = False  # joined to the previous word without a space ("timer" + "s")
    slot: Optional[_Slot] = None
    choice: bool = False  # decides which slot is filled ("hours" in "({hours} hours|{minutes} minutes)")

    @property
    def skip_cost(self) -> float:
        """Cost of a template word that was not said. Skipping a word that decides
        which slot a value goes to would be a guess ("for 5" -> 5 hours?), so it
        costs more than hearing a wrong word."""
        if self.kind == _SLOT:
            return 1.0
        return 2.0 if self.choice else _gap(self.word)


@dataclass
class _Graph:
    intent: str
    edges: List[List[_Edge]]  # by source state; every edge goes to a higher state
    end: int  # the final state (the start is state 0)


class _Wildcard(Exception):
    """Templates with wildcards are not fuzzy-matched: a wildcard matches anything."""


@dataclass(frozen=True)
class _Part:
    """A piece of the graph: from start to end, the slots it can fill, and whether it is the
    empty branch of an optional part ([a|the] is (a|the|))."""

    start: int
    end: int
    slots: FrozenSet[str] = frozenset()
    empty: bool = False


class _GraphBuilder(Builder[_Part]):
    """A template -> a DAG whose states are numbered in the order they are made, which is a
    topological order: a group's first state is made before its parts', its last after."""

    def __init__(self) -> None:
        self.edges: List[List[_Edge]] = []

    def state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def text(self, words: Sequence[str], glued: bool) -> _Part:
        start = end = self.state()
        for word in words:
            nxt = self.state()
            self.edges[end].append(_Edge(nxt, _WORD, word.lower(), word, glued))
            end, glued = nxt, False
        return _Part(start, end, empty=not words)

    def sequence(self, items: Iterator[_Part]) -> _Part:
        start = end = self.state()
        slots: FrozenSet[str] = frozenset()
        empty = True
        for part in items:
            self.edges[end].append(_Edge(part.start, _EPS))
            end, slots, empty = part.end, slots | part.slots, empty and part.empty
        return _Part(start, end, slots, empty)

    def alternative(self, branches: Iterator[_Part]) -> _Part:
        start = self.state()
        parts = list(branches)
        end = self.state()
        for part in parts:
            self.edges[start].append(_Edge(part.start, _EPS))
            self.edges[part.end].append(_Edge(end, _EPS))
        if len({part.slots for part in parts if not part.empty}) > 1:
            # The branches fill different slots: their words decide which.
            for state in range(start + 1, end):
                self.edges[state] = [replace(e, choice=True) if e.kind == _WORD else e for e in self.edges[state]]
        return _Part(start, end, frozenset().union(*(part.slots for part in parts)))

    def number(self, ref: ListReference) -> _Part:
        return self._slot(_Slot(ref.slot_name))

    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> _Part:
        texts: Dict[Tuple[str, ...], str] = {}
        for value in values:
            for phrase in walk(value, scope, _Phrases()):
                if phrase.words:
                    texts.setdefault(tuple(w.lower() for w in phrase.words), " ".join(phrase.words))
        if not texts:
            raise _Wildcard(ref.list_name)  # an empty list matches nothing anyway
        return self._slot(_Slot(ref.slot_name, tuple(texts), tuple(texts.values())))

    def wildcard(self, ref: ListReference) -> _Part:
        raise _Wildcard(ref.list_name)

    def _slot(self, slot: _Slot) -> _Part:
        start, end = self.state(), self.state()
        self.edges[start].append(_Edge(end, _SLOT, slot=slot))
        return _Part(start, end, frozenset([slot.name]))


@dataclass(frozen=True)
class _Phrase:
    words: Tuple[str, ...]
    glued: bool  # the first word joins the word before it

    def then(self, other: _Phrase) -> _Phrase:
        if not self.words:
            return other
        if other.glued and other.words:
            return _Phrase(self.words[:-1] + (self.words[-1] + other.words[0],) + other.words[1:], self.glued)
        return _Phrase(self.words + other.words, self.glued)


class _Phrases(Builder[List[_Phrase]]):
    """A list value's spoken forms, the first VALUE_FORMS of them. A value with a number or a
    wildcard in it has no fixed form: it gives none."""

    def text(self, words: Sequence[str], glued: bool) -> List[_Phrase]:
        return [_Phrase(tuple(words), glued)]

    def sequence(self, items: Iterator[List[_Phrase]]) -> List[_Phrase]:
        out = [_Phrase((), False)]
        for part in items:
            out = list(itertools.islice((a.then(b) for a in out for b in part), VALUE_FORMS))
        return out

    def alternative(self, branches: Iterator[List[_Phrase]]) -> List[_Phrase]:
        return list(itertools.islice(itertools.chain.from_iterable(branches), VALUE_FORMS))

    def number(self, ref: ListReference) -> List[_Phrase]:
        return []

    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> List[_Phrase]:
        forms = (phrase for value in values for phrase in walk(value, scope, self))
        return list(itertools.islice(forms, VALUE_FORMS))

    def wildcard(self, ref: ListReference) -> List[_Phrase]:
        return []


# -- the distance ------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


@lru_cache(maxsize=65536)
def _word_cost(a: str, b: str) -> float:
    """0 for the same word, small for a near miss ("minute"/"minutes", "time"/"timer"),
    1.5 for another word (more than leaving one out and adding another)."""
    if a == b:
        return 0.0
    ratio = _similarity(a, b)
    return 1.0 - ratio if ratio >= 0.6 else 1.5


def _gap(word: str) -> float:
    """A word said but not in the template, or in it but not said: small words cost less."""
    return 0.5 if word in _LIGHT else 1.0


def _slot_cost(spoken: Sequence[str], raw: Sequence[str], slot: _Slot) -> Tuple[float, Optional[str]]:
    """Cost of spoken words standing for a slot, and the slot's text to use."""
    if not slot.values:  # a number
        if len(spoken) == 1 and is_number(spoken[0]):
            return 0.0, raw[0]
        return 1.5, None
    best, text = float("inf"), None
    for value, shown in zip(slot.values, slot.texts):
        # A list value must be nearly what was said: at the word cost's
        # looser 0.6, "cancel out timers" became the "workout" timer.
        if len(value) == len(spoken) and all(a == b or _similarity(a, b) >= SLOT_SIMILARITY
                                             for a, b in zip(spoken, value)):
            cost = sum(_word_cost(a, b) for a, b in zip(spoken, value))
            if cost < best:
                best, text = cost, shown
    return best, text


def _align(spoken: Sequence[str], raw: Sequence[str], graph: _Graph) -> Candidate:
    """Cheapest walk through the template graph explaining the spoken words."""
    n, size, inf = len(spoken), len(graph.edges), float("inf")
    dist = [[inf] * size for _ in range(n + 1)]
    # back[i][state] = (previous i, previous state, edge or None, slot text)
    back: List[List[Any]] = [[None] * size for _ in range(n + 1)]
    dist[0][0] = 0.0
    # Ignoring a number that was said would change the request ("2 hours and 30").
    extra = [2.0 if is_number(w) else _gap(w) for w in spoken]
    for i in range(n + 1):
        row = dist[i]
        for s in range(size):
            c = row[s]
            if c == inf:
                continue
            if i < n and c + extra[i] < dist[i + 1][s]:  # a spoken word the template lacks
                dist[i + 1][s], back[i + 1][s] = c + extra[i], (i, s, None, None)
            for e in graph.edges[s]:
                if e.kind == _EPS:
                    if c < row[e.to]:
                        row[e.to], back[i][e.to] = c, (i, s, None, None)
                    continue
                skip = c + e.skip_cost  # a template word unsaid
                if skip < row[e.to]:
                    row[e.to], back[i][e.to] = skip, (i, s, e, None)
                if e.kind == _WORD:
                    if i < n:
                        step = c + _word_cost(spoken[i], e.word)
                        if step < dist[i + 1][e.to]:
                            dist[i + 1][e.to], back[i + 1][e.to] = step, (i, s, e, "")
                    continue
                assert e.slot is not None
                for k in range(1, min(e.slot.span, n - i) + 1):
                    cost, text = _slot_cost(spoken[i:i + k], raw[i:i + k], e.slot)
                    if c + cost < dist[i + k][e.to]:
                        dist[i + k][e.to], back[i + k][e.to] = c + cost, (i, s, e, text)
    # Walk back from the end, rebuilding the sentence with the spoken slot values.
    pieces: List[Tuple[str, bool]] = []
    length, missing = 0, False
    i, s = n, graph.end
    while back[i][s] is not None:
        pi, ps, edge, text = back[i][s]
        if edge is not None:
            length += 1
            if edge.kind == _WORD:
                pieces.append((edge.shown, edge.glue))
            elif text:
                pieces.append((text, False))
            else:
                missing = True
        i, s = pi, ps
    sentence = ""
    for word, glue in reversed(pieces):
        sentence += word if glue or not sentence else " " + word
    confidence = max(0.0, 1.0 - dist[n][graph.end] / max(n, length, 1))
    return Candidate(graph.intent, confidence, None if missing else sentence)
