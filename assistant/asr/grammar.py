"""The intents' sentence templates as a grammar whisper's decoding is held to.

tiny.en mishears synthetic and noisy commands ("Multiplite oven blade.") that a person would
not, because it may write any sentence at all. Held to the sentences the dispatcher can match,
it writes "Multiply 7 by 8.": `search` looks for the sentence of the grammar the model finds
most likely on the audio of the free decode, scoring continuations through `cwhisper`: only
tokens that continue a sentence, and the end of text only after a whole one.

The grammar follows whisper's way of writing, not the templates' plain form: every word after a
space (" Set", " a", ...), a word's first letter in either case, a final full stop or question
mark, numbers in digits or in words, and a few fillers and polite words around the sentence
("Um, set a timer for 5 minutes, please.").

The templates become a character automaton, made deterministic (subset construction) and
minimal, so the text so far is always in exactly one state. `TokenIndex` finds the tokens a
state allows by walking the vocabulary's prefix tree along the automaton (only viable prefixes
are visited) and keeps the answer per state. (whisper.cpp's own GBNF grammars do the same job
but check every token of the vocabulary against every open parse at every step: 1.5 s more per
command with these templates.)

Speech that is not a command is forced into one at a cost the search measures (nats of the
model's own log-probability given up); above asr.grammar_max_forced the Engine keeps the free
decode's text.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import pickle
import re
import string
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

import numpy as np
from hassil import Intents
from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, TextChunk
from hassil.expression import Sequence as SeqExpr
from hassil.intents import RangeSlotList, SlotList, TextSlotList

from ..intents.normalize import FILLERS, LEADING, TRAILING

_LOGGER = logging.getLogger(__name__)
VERSION = 4  # of the automaton's construction: a change invalidates cached grammars

UNITS = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
DIGITS = "0123456789"
# The fillers and polite words the grammar lets through around a sentence: a subset of what
# `normalize` drops, because each one is also a way for a forced decode of speech that is not a
# command to wander ("I want you to let me know in a minute").
LEADS = {("okay",), ("ok",), ("hey",), ("so",), ("and",), ("now",), ("could", "you"), ("can", "you"),
         ("would", "you")}
TRAILS = {("thanks",), ("thank", "you"), ("okay",), ("ok",)}
END_PUNCT = ".?!"
# A wildcard's symbols: those other templates may spell out, which a DFA state merging both
# needs as moves of its own, and OTHER: any character without a move of its own in the state.
WILDCARD = string.ascii_letters + DIGITS + " ,-'"
OTHER = ""


class Nfa:
    """A character automaton with epsilon moves."""

    def __init__(self) -> None:
        self.eps: List[List[int]] = []
        self.moves: List[List[Tuple[str, int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def text(self, s: str, capital: bool = False) -> Tuple[int, int]:
        """s; with capital, its first letter in either case ("set" or "Set", not "SET")."""
        start = end = self.state()
        for i, c in enumerate(s.lower()):
            nxt = self.state()
            for variant in dict.fromkeys((c, c.upper()) if capital and i == 0 else (c,)):
                self.moves[end].append((variant, nxt))
            end = nxt
        return start, end

    def chars(self, symbols: Sequence[str]) -> Tuple[int, int]:
        start, end = self.state(), self.state()
        for c in symbols:
            self.moves[start].append((c, end))
        return start, end

    def seq(self, parts: Sequence[Tuple[int, int]]) -> Tuple[int, int]:
        if not parts:
            s = self.state()
            return s, s
        for (_, a_end), (b_start, _) in zip(parts, parts[1:]):
            self.eps[a_end].append(b_start)
        return parts[0][0], parts[-1][1]

    def alt(self, parts: Sequence[Tuple[int, int]]) -> Tuple[int, int]:
        start, end = self.state(), self.state()
        for a, b in parts:
            self.eps[start].append(a)
            self.eps[b].append(end)
        return start, end

    def optional(self, part: Tuple[int, int]) -> Tuple[int, int]:
        self.eps[part[0]].append(part[1])
        return part

    def plus(self, part: Tuple[int, int]) -> Tuple[int, int]:
        self.eps[part[1]].append(part[0])
        return part


class _Templates:
    """hassil expressions -> NFA fragments. A word not glued to the one before it starts with
    the separator (" " or ", "), as whisper's tokens do."""

    def __init__(self, nfa: Nfa):
        self.nfa = nfa

    def sep(self) -> Tuple[int, int]:
        # Commas only around the fillers and polite words (template_automaton): allowed between
        # any two words, they were where a forced decode went when it lost its way.
        return self.nfa.text(" ")

    def word(self, w: str, glued: bool = False) -> Tuple[int, int]:
        return self.nfa.text(w) if glued else self.nfa.seq([self.sep(), self.nfa.text(w, capital=True)])

    def number(self) -> Tuple[int, int]:
        n = self.nfa
        digit = lambda: n.chars(DIGITS)  # noqa: E731
        # up to 10 digits, or thousands grouped with commas: not an endless run of zeros
        plain = n.seq([digit()] + [n.optional(digit()) for _ in range(9)])
        group = lambda: n.seq([n.text(","), digit(), digit(), digit()])  # noqa: E731
        grouped = n.seq([digit(), n.optional(digit()), n.optional(digit()), group(),
                         n.optional(group()), n.optional(group())])
        # "80 1": whisper's way with "eighty one" at times (normalize makes it 81)
        spaced = n.seq([n.chars("23456789"), n.text("0 "), n.chars("123456789")])
        digits = n.alt([plain, grouped, spaced])
        signed = n.seq([n.optional(n.text("-")), digits])
        return n.seq([self.sep(), n.alt([signed, self.number_words()])])

    def number_words(self) -> Tuple[int, int]:
        """Numbers in words as people say them, below a million: "twenty-five", "a hundred and
        six", "two thousand three hundred". (A free run of number words was where a forced decode
        looped: "eleven nineteen eleven nineteen ...".)"""
        n = self.nfa
        words = lambda ws: n.alt([n.text(w, capital=True) for w in ws])  # noqa: E731
        join = lambda: n.alt([n.text(" "), n.text("-")])  # noqa: E731

        def below_100() -> Tuple[int, int]:
            return n.alt([words(UNITS), words(TEENS), n.seq([words(TENS), n.optional(n.seq([join(), words(UNITS[1:])]))])])

        def below_1000() -> Tuple[int, int]:
            hundreds = n.seq([words(UNITS[1:] + ["a"]), n.text(" hundred"),
                              n.optional(n.seq([n.optional(n.text(" and")), n.text(" "), below_100()]))])
            return n.alt([below_100(), hundreds])

        thousands = n.seq([below_1000(), n.text(" thousand"),
                           n.optional(n.seq([n.optional(n.text(" and")), n.text(" "), below_1000()]))])
        return n.alt([below_1000(), thousands])

    def wildcard(self) -> Tuple[int, int]:
        n = self.nfa
        return n.seq([self.sep(), n.plus(n.chars(list(WILDCARD) + [OTHER]))])

    def build(self, expr: Expression, lists: Dict[str, SlotList], rules: Dict[str, object], glue: bool,
              depth: int = 0) -> Tuple[int, int]:
        n = self.nfa
        if depth > 100:
            raise RecursionError("expansion rules nest too deep")
        if isinstance(expr, TextChunk):
            glue = glue and not expr.text[:1].isspace()
            parts = []
            for w in expr.text.split():
                parts.append(self.word(w, glue))
                glue = False
            return n.seq(parts)
        if isinstance(expr, Permutation):
            orders = [SeqExpr(items=list(p)) for p in itertools.permutations(expr.items)]
            return self.build(Alternative(items=orders), lists, rules, glue, depth + 1)
        if isinstance(expr, Alternative):
            return n.alt([self.build(item, lists, rules, glue, depth + 1) for item in expr.items])
        if isinstance(expr, SeqExpr):
            parts, joined = [], glue
            for item in expr.items:
                parts.append(self.build(item, lists, rules, joined, depth + 1))
                joined = isinstance(item, TextChunk) and bool(item.text) and not item.text[-1:].isspace()
            return n.seq(parts)
        if isinstance(expr, RuleReference):
            return self.build(rules[expr.rule_name].expression, lists, rules, glue, depth + 1)
        if isinstance(expr, ListReference):
            slot_list = lists.get(expr.list_name)
            if isinstance(slot_list, RangeSlotList) or (slot_list is None and expr.is_inline_range):
                return self.number()
            if isinstance(slot_list, TextSlotList):
                return n.alt([self.build(v.text_in, lists, rules, False, depth + 1) for v in slot_list.values])
            return self.wildcard()
        raise ValueError(f"unexpected expression {expr!r}")


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
            state = self.step(state, c)
            if state is None:
                return None
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


def template_automaton(intents: Intents) -> Dfa:
    """Every sentence of every intent, as whisper would write it, as a minimal DFA."""
    nfa = Nfa()
    t = _Templates(nfa)
    sentences = []
    for intent in intents.intents.values():
        for data in intent.data:
            lists = {**intents.slot_lists, **data.slot_lists}
            rules = {**intents.expansion_rules, **data.expansion_rules}
            for sentence in data.sentences:
                sentences.append(t.build(sentence.expression, lists, rules, glue=False))
    phrase = lambda words: nfa.seq([t.word(w) for w in words])  # noqa: E731
    comma = lambda: nfa.optional(nfa.text(","))  # noqa: E731
    leads = sorted({p for p in LEADING if p in LEADS} | {(f,) for f in FILLERS})
    lead = lambda: nfa.optional(nfa.seq([nfa.alt([phrase(p) for p in leads]), comma()]))  # noqa: E731
    trail = nfa.optional(nfa.seq([comma(), nfa.alt([phrase(p) for p in sorted({p for p in TRAILING if p in TRAILS} | {("please",)})])]))
    end = nfa.optional(nfa.chars(END_PUNCT))
    start, accept = nfa.seq([lead(), lead(), nfa.alt(sentences), trail, end])
    return minimize(determinize(nfa, start, accept))


class TokenIndex:
    """Which of a model's tokens may come next in each state of the automaton: a walk of the
    vocabulary's prefix tree that follows the automaton, so only viable prefixes are visited.
    Built per state on first use and kept."""

    def __init__(self, dfa: Dfa, vocabulary: Sequence[bytes]):
        self.dfa = dfa
        self.trie: dict = {}
        for token, raw in enumerate(vocabulary):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:  # a piece of a character: never in a template
                continue
            if not text:
                continue
            node = self.trie
            for c in text:
                node = node.setdefault(c, {})
            node.setdefault(_IDS, []).append(token)
        self._allowed: Dict[int, np.ndarray] = {}

    def allowed(self, state: int) -> np.ndarray:
        if state not in self._allowed:
            ids: List[int] = []
            stack = [(self.trie, state)]
            while stack:
                node, st = stack.pop()
                for c, child in node.items():
                    if c is _IDS:
                        continue
                    nxt = self.dfa.step(st, c)
                    if nxt is not None:
                        ids.extend(child.get(_IDS, ()))
                        stack.append((child, nxt))
            self._allowed[state] = np.array(sorted(ids), dtype=np.int64)
        return self._allowed[state]


_IDS = object()  # the trie key under which a node keeps the tokens that end there


@dataclass(frozen=True)
class Held:
    """The grammar's most likely sentence for an utterance."""

    ids: Tuple[int, ...]  # its text tokens
    text: str
    # nats the grammar cost: at each token (the end of text included), the model's best
    # log-probability minus that of the token taken. About 0 when whisper would have said a
    # sentence of the grammar anyway; large when speech that is not a command was forced into one.
    forced: float
    logprob: float  # mean over its tokens, the end of text included (as Transcript.logprob)


@dataclass(frozen=True)
class _Hyp:
    ids: Tuple[int, ...]
    state: int
    logprob: float
    forced: float


def search(steering: "Steering", next_logprobs: Callable[[Sequence[int]], np.ndarray], max_tokens: int,
           abort: Optional[Callable[[], bool]] = None) -> Optional[Held]:
    """The most likely sentence of the grammar under the model: a beam search whose scores are
    the model's own log-probabilities (next_logprobs(ids), over the whole vocabulary), never
    renormalised over the tokens the grammar allows. Renormalised, as in a logits filter on
    whisper's greedy or beam decoding, a path through tokens the model finds unlikely costs
    nothing once it is the only way on: espeak's "Set a timer ..." in noise began " Sh", and
    the only sentence on from there was "Shut up, thank you." (measured: greedy held to the
    grammar 102 of 135 commands at 10 dB, this search 114). None: aborted, or no sentence
    finished within max_tokens."""
    dfa, index, vocabulary, eot, width = steering.grammar.dfa, steering.index, steering.vocabulary, steering.eot, steering.beam
    beams = [_Hyp((), dfa.start, 0.0, 0.0)]
    finished: List[_Hyp] = []
    top: Optional[_Hyp] = None  # the likeliest finished sentence so far
    for _ in range(max_tokens):
        if abort is not None and abort():
            return None
        grown: List[_Hyp] = []
        for h in beams:
            lp = next_logprobs(h.ids)
            best = float(lp[:eot + 1].max())  # the best text token or the end
            if dfa.accepting[h.state]:
                finished.append(_Hyp(h.ids, h.state, h.logprob + lp[eot], h.forced + best - lp[eot]))
            allowed = index.allowed(h.state)
            if not allowed.size:
                continue
            scores = lp[allowed]
            k = min(width, scores.size)
            for i in np.argpartition(-scores, k - 1)[:k]:
                token, score = int(allowed[i]), float(scores[i])
                state = dfa.walk(vocabulary[token].decode("utf-8", "ignore"), h.state)
                if state is not None:
                    grown.append(_Hyp(h.ids + (token,), state, h.logprob + score, h.forced + best - score))
        beams = sorted(grown, key=lambda h: -h.logprob)[:width]
        top = max(finished, key=lambda h: h.logprob, default=None)
        # log-probabilities only fall as a text grows: no beam can overtake the best finished one
        if top is not None and (not beams or top.logprob >= beams[0].logprob):
            break
        # nor can any beam come in under the limit once all are over it (forcing only grows)
        if beams and min(h.forced for h in beams) > steering.max_forced:
            if top is None or beams[0].logprob > top.logprob:
                top = beams[0]  # the likeliest text: over the limit, refused
            break
    if top is None:
        return None
    text = b"".join(vocabulary[t] for t in top.ids).decode("utf-8", "replace").strip()
    return Held(top.ids, text, max(0.0, top.forced), top.logprob / (len(top.ids) + 1))


@dataclass
class CommandGrammar:
    """The templates' automaton."""

    dfa: Dfa

    @classmethod
    def from_intents(cls, intents: Intents) -> "CommandGrammar":
        return cls(template_automaton(intents))

    @classmethod
    def cached(cls, intents: Intents, key: str, folder: Path) -> "CommandGrammar":
        """from_intents, kept in folder under a hash of key (the intents' data): building takes
        a few seconds, loading a few milliseconds."""
        path = cache_path(key, folder)
        try:
            with open(path, "rb") as f:
                dfa = pickle.load(f)
            if isinstance(dfa, Dfa):
                return cls(dfa)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            pass
        grammar = cls.from_intents(intents)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                pickle.dump(grammar.dfa, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError as e:  # a read-only cache costs a rebuild next time, nothing more
            _LOGGER.info("grammar not cached: %s", e)
        return grammar


def acceptable(forced: float, text: str, max_forced: float, max_per_word: float) -> bool:
    """Keep a held decode's text? Its forcing cost must be within max_forced in all and within
    max_per_word for each of its words (a short sound forced into a longer command is costly
    per word though cheap in all)."""
    words = max(1, len(re.findall(r"[\w']+", text)))
    return forced <= max_forced and forced / words <= max_per_word


def cache_path(key: str, folder: Path) -> Path:
    digest = hashlib.sha256(f"{VERSION}\n{key}".encode()).hexdigest()[:16]
    return Path(folder) / f"grammar-{digest}.pickle"


class Steering:
    """A CommandGrammar bound to one model's vocabulary, with the limits on forcing and the beam
    width; shares the token index (filled as states are visited) between searches. Used under
    the engine's lock."""

    def __init__(self, grammar: CommandGrammar, vocabulary: Sequence[bytes], eot: int, max_forced: float,
                 max_per_word: float = math.inf, beam: int = 4):
        self.grammar, self.vocabulary, self.eot, self.max_forced = grammar, vocabulary, eot, max_forced
        self.max_per_word, self.beam = max_per_word, beam
        self.index = TokenIndex(grammar.dfa, vocabulary)

    def search(self, next_logprobs: Callable[[Sequence[int]], np.ndarray], max_tokens: int,
               abort: Optional[Callable[[], bool]] = None) -> Optional[Held]:
        return search(self, next_logprobs, max_tokens, abort)

    def keeps(self, forced: float, text: str) -> bool:
        return acceptable(forced, text, self.max_forced, self.max_per_word)


def use_intents(engine, dispatcher, asr) -> None:
    """Hold the engine's command decodes (constrained=True) to the dispatcher's intents, with
    config.asr's limits."""
    engine.use_grammar(for_dispatcher(dispatcher), asr)


def for_dispatcher(dispatcher, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> CommandGrammar:
    """The grammar of a Dispatcher's intents, from the cache next to the models when it is there."""
    from .models import cache_dir

    folder = cache_dir() / "grammar"
    key = json.dumps(dispatcher.data, sort_keys=True, default=str)
    if not cache_path(key, folder).exists():
        log("building the intents' grammar for whisper (once; cached in %s) ..." % folder)
    return CommandGrammar.cached(dispatcher.intents, key, folder)
