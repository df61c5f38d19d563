"""Character automata: an NFA built from fragments, made deterministic (subset construction) and
minimal (Moore's partition refinement), so the text so far is always in exactly one state."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np

__all__ = ["OTHER", "Dfa", "Fragment", "Nfa", "determinize", "minimize"]

# The symbol of a move taken by any character without a move of its own in the state (a
# wildcard's "anything").
OTHER = ""


class Fragment(NamedTuple):
    """A piece of an NFA: text that leads from start to end."""

    start: int
    end: int


class Nfa:
    """A character automaton with epsilon moves."""

    def __init__(self) -> None:
        self.eps: List[List[int]] = []
        self.moves: List[List[Tuple[str, int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def text(self, s: str, capital: bool = False) -> Fragment:
        """s; with capital, its first letter in either case ("set" or "Set", not "SET")."""
        start = end = self.state()
        for i, c in enumerate(s.lower()):
            nxt = self.state()
            for variant in dict.fromkeys((c, c.upper()) if capital and i == 0 else (c,)):
                self.moves[end].append((variant, nxt))
            end = nxt
        return Fragment(start, end)

    def chars(self, symbols: Sequence[str]) -> Fragment:
        start, end = self.state(), self.state()
        for c in symbols:
            self.moves[start].append((c, end))
        return Fragment(start, end)

    def seq(self, parts: Sequence[Fragment]) -> Fragment:
        if not parts:
            s = self.state()
            return Fragment(s, s)
        for (_, a_end), (b_start, _) in zip(parts, parts[1:]):
            self.eps[a_end].append(b_start)
        return Fragment(parts[0].start, parts[-1].end)

    def alt(self, parts: Sequence[Fragment]) -> Fragment:
        start, end = self.state(), self.state()
        for a, b in parts:
            self.eps[start].append(a)
            self.eps[b].append(end)
        return Fragment(start, end)

    def optional(self, part: Fragment) -> Fragment:
        self.eps[part.start].append(part.end)
        return part

    def plus(self, part: Fragment) -> Fragment:
        self.eps[part.end].append(part.start)
        return part


@dataclass
class Dfa:
    moves: List[Dict[str, int]]  # state -> symbol -> state
    accepting: List[bool]
    start: int = 0

    def accepts(self, text: str) -> bool:
        state = self.walk(text)
        return state is not None and self.accepting[state]

    def step(self, state: int, c: str) -> Optional[int]:
        moves = self.moves[state]
        nxt = moves.get(c)
        return moves.get(OTHER) if nxt is None else nxt

    def walk(self, text: str, state: Optional[int] = None) -> Optional[int]:
        """The state after text from state (default: the start), None once text leaves the language."""
        state = self.start if state is None else state
        for c in text:
            nxt = self.step(state, c)
            if nxt is None:
                return None
            state = nxt
        return state


def determinize(nfa: Nfa, start: int, accept: int) -> Dfa:
    closure_cache: Dict[int, FrozenSet[int]] = {}

    def closure(s: int) -> FrozenSet[int]:
        if s not in closure_cache:
            seen, stack = {s}, [s]
            while stack:
                for t in nfa.eps[stack.pop()]:
                    if t not in seen:
                        seen.add(t)
                        stack.append(t)
            closure_cache[s] = frozenset(seen)
        return closure_cache[s]

    first = closure(start)
    ids: Dict[FrozenSet[int], int] = {first: 0}
    order = [first]
    moves: List[Dict[str, int]] = []
    for states in order:  # grows while iterating
        targets: Dict[str, Set[int]] = defaultdict(set)
        for s in states:
            for c, t in nfa.moves[s]:
                targets[c].update(closure(t))
        row = {}
        for c, ts in targets.items():
            key = frozenset(ts)
            if key not in ids:
                ids[key] = len(order)
                order.append(key)
            row[c] = ids[key]
        moves.append(row)
    return Dfa(moves, [accept in s for s in order])


def minimize(dfa: Dfa) -> Dfa:
    """Moore's partition refinement: states with the same future become one. Vectorised: each
    round hashes every state's (block, targets' blocks) row with random 64-bit weights."""
    symbols = sorted({c for row in dfa.moves for c in row})
    column = {c: i for i, c in enumerate(symbols)}
    n = len(dfa.moves)
    targets = np.full((n, len(symbols)), -1, dtype=np.int64)
    for s, row in enumerate(dfa.moves):
        for c, t in row.items():
            targets[s, column[c]] = t
    weights = np.random.default_rng(0).integers(1, 2**62, size=len(symbols) + 1, dtype=np.int64)
    block = np.asarray(dfa.accepting, dtype=np.int64)
    count = len(np.unique(block))
    while True:
        moved = np.where(targets >= 0, block[np.maximum(targets, 0)] + 1, 0)
        with np.errstate(over="ignore"):
            key = moved @ weights[1:] + block * weights[0]
        _, new_block = np.unique(key, return_inverse=True)
        new_count = int(new_block.max()) + 1
        block = new_block.astype(np.int64)
        if new_count == count:
            break
        count = new_count
    # renumber so the start state is 0, then write the quotient automaton
    order = {int(block[dfa.start]): 0}
    for b in block.tolist():
        order.setdefault(b, len(order))
    moves: List[Dict[str, int]] = [{} for _ in range(count)]
    accepting = [False] * count
    for s, row in enumerate(dfa.moves):
        b = order[int(block[s])]
        moves[b] = {c: order[int(block[t])] for c, t in row.items()}
        accepting[b] = dfa.accepting[s]
    return Dfa(moves, accepting, 0)
