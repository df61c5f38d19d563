"""The intents' sentences as whisper writes them, as a minimal character automaton.

The grammar follows whisper's way of writing, not the templates' plain form: every word after a
space (" Set", " a", ...), a word's first letter in either case, a final full stop or question
mark, numbers in digits or in words, and a few fillers and polite words around the sentence
("Um, set a timer for 5 minutes, please."). The templates are read by the intents' own walker
(intents/templates.py), as the fuzzy matcher reads them.
"""

from __future__ import annotations

import string
from typing import Iterator, Sequence

from hassil import Intents
from hassil.expression import Expression, ListReference

from ...intents.normalize import FILLERS, LEADING, TRAILING
from ...intents.numbers import ONES, TENS
from ...intents.templates import Builder, Scope, for_each_sentence, walk
from .automaton import OTHER, Dfa, Fragment, Nfa, determinize, minimize

__all__ = ["template_automaton"]

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


def template_automaton(intents: Intents) -> Dfa:
    """Every sentence of every intent, as whisper would write it, as a minimal DFA."""
    nfa = Nfa()
    t = _WhisperText(nfa)
    sentences = [sentence.walk(t) for sentence in for_each_sentence(intents)]
    phrase = lambda words: nfa.seq([t.word(w) for w in words])  # noqa: E731
    comma = lambda: nfa.optional(nfa.text(","))  # noqa: E731
    leads = sorted({p for p in LEADING if p in LEADS} | {(f,) for f in FILLERS})
    lead = lambda: nfa.optional(nfa.seq([nfa.alt([phrase(p) for p in leads]), comma()]))  # noqa: E731
    trails = sorted({p for p in TRAILING if p in TRAILS} | {("please",)})
    trail = nfa.optional(nfa.seq([comma(), nfa.alt([phrase(p) for p in trails])]))
    end = nfa.optional(nfa.chars(END_PUNCT))
    start, accept = nfa.seq([lead(), lead(), nfa.alt(sentences), trail, end])
    return minimize(determinize(nfa, start, accept))


class _WhisperText(Builder[Fragment]):
    """Templates -> NFA fragments. A word not glued to the one before it starts with the
    separator, as whisper's tokens do."""

    def __init__(self, nfa: Nfa):
        self.nfa = nfa

    # -- the walker's parts --------------------------------------------------------------------

    def text(self, words: Sequence[str], glued: bool) -> Fragment:
        parts = []
        for w in words:
            parts.append(self.word(w, glued))
            glued = False
        return self.nfa.seq(parts)

    def sequence(self, items: Iterator[Fragment]) -> Fragment:
        return self.nfa.seq(list(items))

    def alternative(self, branches: Iterator[Fragment]) -> Fragment:
        return self.nfa.alt(list(branches))

    def number(self, ref: ListReference) -> Fragment:
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

    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> Fragment:
        return self.nfa.alt([walk(value, scope, self) for value in values])

    def wildcard(self, ref: ListReference) -> Fragment:
        n = self.nfa
        return n.seq([self.sep(), n.plus(n.chars(list(WILDCARD) + [OTHER]))])

    # -- whisper's spelling ------------------------------------------------------------------

    def sep(self) -> Fragment:
        # Commas only around the fillers and polite words (template_automaton): allowed between
        # any two words, they were where a forced decode went when it lost its way.
        return self.nfa.text(" ")

    def word(self, w: str, glued: bool = False) -> Fragment:
        return self.nfa.text(w) if glued else self.nfa.seq([self.sep(), self.nfa.text(w, capital=True)])

    def number_words(self) -> Fragment:
        """Numbers in words as people say them, below a million: "twenty-five", "a hundred and
        six", "two thousand three hundred". (A free run of number words was where a forced decode
        looped: "eleven nineteen eleven nineteen ...".)"""
        n = self.nfa
        words = lambda ws: n.alt([n.text(w, capital=True) for w in ws])  # noqa: E731
        join = lambda: n.alt([n.text(" "), n.text("-")])  # noqa: E731
        units, teens = list(ONES[:10]), list(ONES[10:])

        def below_100() -> Fragment:
            tens = n.seq([words(TENS), n.optional(n.seq([join(), words(units[1:])]))])
            return n.alt([words(units), words(teens), tens])

        def below_1000() -> Fragment:
            hundreds = n.seq([words(units[1:] + ["a"]), n.text(" hundred"),
                              n.optional(n.seq([n.optional(n.text(" and")), n.text(" "), below_100()]))])
            return n.alt([below_100(), hundreds])

        thousands = n.seq([below_1000(), n.text(" thousand"),
                           n.optional(n.seq([n.optional(n.text(" and")), n.text(" "), below_1000()]))])
        return n.alt([below_1000(), thousands])
