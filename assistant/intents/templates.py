"""The one reading of hassil's sentence templates.

Three things read the templates: hassil matches them, the fuzzy matcher turns each into a word
graph (fuzzy.py), and the grammar turns them all into the character automaton whisper's decoding
is held to (asr/grammar). Each builds on `walk`, so a template feature means the same to all of
them: where words join without a space, what a {list} stands for, how an expansion rule, an
optional part or a permutation expands. `check` is the walk that finds references to lists and
rules nobody defined, so that packs can drop those sentences before anything else reads them.

`walk(expression, scope, builder)` is a fold: the builder says what a run of words, a sequence, an
alternative and each kind of {list} become, and the walker does the rest:

- a TextChunk is its words; the first is `glued` to the word before it when the text before
  the chunk ends mid-word and the chunk does not start with white space ("timer[s]" is "timers");
- text ends mid-word after a chunk that does not end in white space, a group all of whose
  branches end mid-word ("(red|blue)berry" is "redberry", as hassil reads it), or an empty chunk
  after text that did; never after a {list}, whose value is words of its own;
- an Alternative (hassil's optional "[a]" is "(a|)") is its branches, a Permutation "(a;b)" the
  alternative of its orders;
- a <rule> is its body, walked in place; a rule that reaches itself is a RecursiveRule;
- a {list} is a number when it is a range list or an inline range ({1..10:n}), its values when it
  is a text list (each value's own template, walked by whoever needs it), and a wildcard otherwise;
  a list or rule the scope lacks is an UndefinedReference.

A builder's `sequence` and `alternative` get their parts as an iterator that walks each part as it
is taken: a builder that numbers states in the order it makes them (the fuzzy graph) can make the
group's first state before its parts'.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Dict, Generic, Iterator, List, Mapping, Sequence, Tuple, TypeVar

from hassil import Intents
from hassil.expression import Alternative, Expression, ListReference, Permutation, RuleReference, TextChunk
from hassil.expression import Sentence
from hassil.expression import Sequence as SequenceExpr
from hassil.intents import RangeSlotList, SlotList, TextSlotList

__all__ = [
    "Broken", "Builder", "ListKind", "RecursiveRule", "Scope", "TemplateError", "TemplateSentence",
    "UndefinedReference", "check", "for_each_sentence", "walk",
]

F = TypeVar("F")


class TemplateError(Exception):
    """A template that cannot be read as it stands."""


class UndefinedReference(TemplateError):
    """A {list} or <rule> the sentence's scope does not define."""

    def __init__(self, what: str):
        super().__init__(f"undefined {what}")
        self.what = what  # "list {name}" | "rule <name>"


class RecursiveRule(TemplateError):
    """An expansion rule that reaches itself: it would expand forever."""

    def __init__(self, path: Sequence[str]):
        super().__init__("recursive rule " + " -> ".join(f"<{name}>" for name in path))
        self.path = tuple(path)


class ListKind(Enum):
    NUMBER = "number"  # a range list or an inline range
    VALUES = "values"  # a text list
    WILDCARD = "wildcard"  # anything at all


@dataclass(frozen=True)
class Scope:
    """The lists and rules a sentence's references resolve in: its intents' own, overridden by
    those of its data block. `rules_open` are the rules being expanded around the current place."""

    lists: Mapping[str, SlotList]
    rules: Mapping[str, Sentence]
    rules_open: Tuple[str, ...] = ()

    def list_kind(self, ref: ListReference) -> ListKind:
        slot_list = self.lists.get(ref.list_name)
        if isinstance(slot_list, RangeSlotList) or (slot_list is None and ref.is_inline_range):
            return ListKind.NUMBER
        if slot_list is None:
            raise UndefinedReference(f"list {{{ref.list_name}}}")
        if isinstance(slot_list, TextSlotList):
            return ListKind.VALUES
        return ListKind.WILDCARD

    def values(self, ref: ListReference) -> Tuple[Expression, ...]:
        """The templates of a text list's values, in order."""
        slot_list = self.lists[ref.list_name]
        assert isinstance(slot_list, TextSlotList)
        return tuple(value.text_in for value in slot_list.values)

    def rule(self, ref: RuleReference) -> Expression:
        """A rule's body, to walk in `inside(ref)`."""
        if ref.rule_name not in self.rules:
            raise UndefinedReference(f"rule <{ref.rule_name}>")
        if ref.rule_name in self.rules_open:
            raise RecursiveRule(self.rules_open[self.rules_open.index(ref.rule_name):] + (ref.rule_name,))
        return self.rules[ref.rule_name].expression

    def inside(self, ref: RuleReference) -> Scope:
        """The scope within a rule's body."""
        return Scope(self.lists, self.rules, self.rules_open + (ref.rule_name,))


class Builder(ABC, Generic[F]):
    """What each part of a template becomes (see the module docstring)."""

    @abstractmethod
    def text(self, words: Sequence[str], glued: bool) -> F:
        """A run of words; glued: the first joins the word before it without a space."""

    @abstractmethod
    def sequence(self, items: Iterator[F]) -> F:
        """Items one after the other."""

    @abstractmethod
    def alternative(self, branches: Iterator[F]) -> F:
        """One of the branches (an empty branch is text without words)."""

    @abstractmethod
    def number(self, ref: ListReference) -> F:
        """A number: a range list or an inline range."""

    @abstractmethod
    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> F:
        """One of a text list's values; each is a template, to walk in `scope` with any builder."""

    @abstractmethod
    def wildcard(self, ref: ListReference) -> F:
        """Any text (a wildcard list)."""


def walk(expr: Expression, scope: Scope, builder: Builder[F], glued: bool = False) -> F:
    """Fold a template expression with builder; glued: its first word joins the word before it."""
    return _walk(expr, scope, builder, glued).built


@dataclass(frozen=True)
class _Walked(Generic[F]):
    built: F
    mid_word: bool  # the text ends mid-word: what follows is glued on


def _walk(expr: Expression, scope: Scope, builder: Builder[F], glued: bool) -> _Walked[F]:
    if isinstance(expr, TextChunk):
        text = expr.text
        built = builder.text(text.split(), glued and not text[:1].isspace())
        return _Walked(built, not text[-1:].isspace() if text else glued)
    if isinstance(expr, Permutation):
        orders = [SequenceExpr(items=list(order)) for order in itertools.permutations(expr.items)]
        return _walk(Alternative(items=list(orders)), scope, builder, glued)
    if isinstance(expr, Alternative):
        endings: List[bool] = []
        built = builder.alternative(_branches(expr.items, scope, builder, glued, endings))
        # "(red|blue)berry" is one word, as hassil reads it; "(a |b)c" is taken as two.
        return _Walked(built, bool(endings) and all(endings))
    if isinstance(expr, SequenceExpr):
        ending: List[bool] = []
        built = builder.sequence(_items(expr.items, scope, builder, glued, ending))
        return _Walked(built, bool(ending) and ending[0])
    if isinstance(expr, RuleReference):
        return _walk(scope.rule(expr), scope.inside(expr), builder, glued)
    if isinstance(expr, ListReference):
        kind = scope.list_kind(expr)
        if kind is ListKind.NUMBER:
            built = builder.number(expr)
        elif kind is ListKind.VALUES:
            built = builder.values(expr, scope.values(expr), scope)
        else:
            built = builder.wildcard(expr)
        return _Walked(built, False)  # a list's value is words of its own
    raise TemplateError(f"unexpected expression {expr!r}")


def _branches(items: Sequence[Expression], scope: Scope, builder: Builder[F], glued: bool,
              endings: List[bool]) -> Iterator[F]:
    for item in items:
        walked = _walk(item, scope, builder, glued)
        endings.append(walked.mid_word)
        yield walked.built


def _items(items: Sequence[Expression], scope: Scope, builder: Builder[F], glued: bool,
           ending: List[bool]) -> Iterator[F]:
    for item in items:
        walked = _walk(item, scope, builder, glued)
        glued = walked.mid_word  # the next item is glued on when this one ends mid-word
        yield walked.built
    ending.append(glued)


# -- every sentence of a set of intents --------------------------------------------------------


@dataclass(frozen=True)
class TemplateSentence:
    """One sentence template of an intent, with the scope its references resolve in."""

    intent: str
    block: int  # which of the intent's data blocks it is in
    sentence: Sentence
    scope: Scope

    @property
    def text(self) -> str:
        return self.sentence.text or ""

    def walk(self, builder: Builder[F]) -> F:
        return walk(self.sentence.expression, self.scope, builder)


def for_each_sentence(intents: Intents) -> Iterator[TemplateSentence]:
    """Every sentence template of every intent, in order, each with its block's lists and rules
    merged over the intents' own."""
    for intent in intents.intents.values():
        for block, data in enumerate(intent.data):
            lists: Dict[str, SlotList] = {**intents.slot_lists, **data.slot_lists}
            rules: Dict[str, Sentence] = {**intents.expansion_rules, **data.expansion_rules}
            scope = Scope(lists, rules)
            for sentence in data.sentences:
                yield TemplateSentence(intent.name, block, sentence, scope)


# -- references --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A sentence template that cannot be used, and why."""

    sentence: TemplateSentence
    error: TemplateError


def check(intents: Intents) -> List[Broken]:
    """The sentences that refer to a list or rule nobody defined (hassil would raise while
    matching them), or to a rule that reaches itself; their lists' values are checked too."""
    broken = []
    for sentence in for_each_sentence(intents):
        try:
            sentence.walk(_Resolve())
        except TemplateError as e:
            broken.append(Broken(sentence, e))
    return broken


class _Resolve(Builder[None]):
    """Walks everything, builds nothing: what is left to fail is a reference."""

    def text(self, words: Sequence[str], glued: bool) -> None:
        return None

    def sequence(self, items: Iterator[None]) -> None:
        for _ in items:
            pass

    def alternative(self, branches: Iterator[None]) -> None:
        for _ in branches:
            pass

    def number(self, ref: ListReference) -> None:
        return None

    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> None:
        for value in values:
            walk(value, scope, self)

    def wildcard(self, ref: ListReference) -> None:
        return None
