"""The one walker over hassil's sentence templates: what each template feature becomes, the
sentences of a set of intents with their lists and rules, and the reference check."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path
from typing import Iterator, List, Sequence

import pytest
from hassil import Intents
from hassil.expression import Expression, ListReference
from hassil.parse_expression import parse_sentence
from hassil.sample import sample_expression

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `pytest` from anywhere, without installing
    sys.path.insert(0, str(ROOT))

from assistant.intents.dispatcher import Dispatcher  # noqa: E402
from assistant.intents.packs import load_pack  # noqa: E402
from assistant.intents.templates import (  # noqa: E402
    Builder, ListKind, RecursiveRule, Scope, UndefinedReference, check, for_each_sentence, walk,
)


class Sentences(Builder[List[str]]):
    """The sentences a template stands for, in hassil's order (the first `most` of them), words
    joined as the walker says: lists as <number>, <wildcard> or each of their values."""

    def __init__(self, most: int = 10_000):
        self.most = most

    def text(self, words: Sequence[str], glued: bool) -> List[str]:
        return [("+" if glued and words else "") + " ".join(words)]

    def sequence(self, items: Iterator[List[str]]) -> List[str]:
        out = [""]
        for part in items:
            out = list(itertools.islice((_join(a, b) for a in out for b in part), self.most))
        return out

    def alternative(self, branches: Iterator[List[str]]) -> List[str]:
        return list(itertools.islice((s for branch in branches for s in branch), self.most))

    def number(self, ref: ListReference) -> List[str]:
        return ["<number>"]

    def values(self, ref: ListReference, values: Sequence[Expression], scope: Scope) -> List[str]:
        return list(itertools.islice((s for value in values for s in walk(value, scope, self)), self.most))

    def wildcard(self, ref: ListReference) -> List[str]:
        return ["<wildcard>"]


def _join(a: str, b: str) -> str:
    if not a:
        return b  # a glued start stays glued to what comes before the sequence
    if b.startswith("+"):
        return a + b[1:]
    return f"{a} {b}".strip() if b else a


def sentences(template: str, lists=None, rules=None) -> List[str]:
    scope = Scope(Intents.from_dict({"language": "en", "intents": {}, "lists": lists or {}}).slot_lists,
                  {name: parse_sentence(body) for name, body in (rules or {}).items()})
    return sorted(set(walk(parse_sentence(template).expression, scope, Sentences())))


def test_words_are_glued_where_the_template_continues_a_word():
    assert sentences("set a timer[s]") == ["set a timer", "set a timers"]
    assert sentences("set a timer [please]") == ["set a timer", "set a timer please"]
    assert sentences("(on|off)line") == ["offline", "online"]  # every branch ends mid-word
    assert sentences("pick (a|the)pple") == ["pick apple", "pick thepple"]
    assert sentences("on[e]s") == ["ones", "ons"]  # an empty branch leaves the word as it was
    assert sentences("(a |b)c") == ["a c", "b c"]  # branches that disagree: a new word
    assert sentences("{n}[s]", {"n": {"range": {"from": 1, "to": 2}}}) == ["<number>", "<number> s"]


def test_alternatives_optionals_and_permutations():
    assert sentences("(what|which) [is] it") == ["what is it", "what it", "which is it", "which it"]
    assert sentences("(a;b;c)") == sorted(" ".join(p) for p in itertools.permutations("abc"))


def test_rules_expand_in_place_and_a_rule_that_reaches_itself_is_an_error():
    assert sentences("<tell> the time", rules={"tell": "(tell me|say)"}) == ["say the time", "tell me the time"]
    with pytest.raises(RecursiveRule, match="<a> -> <b> -> <a>"):
        sentences("x <a>", rules={"a": "y <b>", "b": "[z] <a>"})
    with pytest.raises(UndefinedReference, match="rule <nothing>"):
        sentences("ring <nothing>")


def test_lists_are_numbers_values_or_wildcards():
    lists = {"n": {"range": {"from": 1, "to": 10}}, "fruit": {"values": ["apple", {"in": "(pear|plum)", "out": "p"}]},
             "any": {"wildcard": True}}
    assert sentences("eat {n} {fruit}", lists) == ["eat <number> apple", "eat <number> pear", "eat <number> plum"]
    assert sentences("eat {1..5:count} times") == ["eat <number> times"]  # an inline range
    assert sentences("say {any}", lists) == ["say <wildcard>"]
    with pytest.raises(UndefinedReference, match=re.escape("list {nobody}")):
        sentences("call {nobody}", lists)
    scope = Scope(Intents.from_dict({"language": "en", "intents": {}, "lists": lists}).slot_lists, {})
    kinds = {name: scope.list_kind(ListReference(name)) for name in lists}
    assert kinds == {"n": ListKind.NUMBER, "fruit": ListKind.VALUES, "any": ListKind.WILDCARD}


PACK = {
    "language": "en",
    "lists": {"colour": {"values": ["red"]}},
    "expansion_rules": {"the": "(the|a)"},
    "intents": {
        "Paint": {"data": [
            {"sentences": ["paint <the> wall {colour}"], "lists": {"colour": {"values": ["blue"]}}},
            {"sentences": ["paint it {colour}", "dye it {shade}", "tint <it>"]},
        ]},
        "Loop": {"data": [{"sentences": ["loop <forever>"], "expansion_rules": {"forever": "again [<forever>]"}}]},
    },
}


def test_each_sentence_comes_with_its_blocks_lists_and_rules_over_the_intents_own():
    intents = Intents.from_dict(PACK)
    found = [(s.intent, s.block, s.text) for s in for_each_sentence(intents)]
    assert found == [("Paint", 0, "paint <the> wall {colour}"), ("Paint", 1, "paint it {colour}"),
                     ("Paint", 1, "dye it {shade}"), ("Paint", 1, "tint <it>"), ("Loop", 0, "loop <forever>")]
    first, second = (next(s for s in for_each_sentence(intents) if s.block == b) for b in (0, 1))
    assert first.walk(Sentences()) == ["paint the wall blue", "paint a wall blue"]
    assert second.walk(Sentences()) == ["paint it red"]


def test_the_check_names_each_sentence_that_cannot_be_used():
    broken = [(b.sentence.intent, b.sentence.text, str(b.error)) for b in check(Intents.from_dict(PACK))]
    assert broken == [("Paint", "dye it {shade}", "undefined list {shade}"),
                      ("Paint", "tint <it>", "undefined rule <it>"),
                      ("Loop", "loop <forever>", "recursive rule <forever> -> <forever>")]
    values = {"language": "en", "lists": {"thing": {"values": [{"in": "<odd> thing", "out": "x"}]}},
              "intents": {"Get": {"data": [{"sentences": ["get {thing}"]}]}}}
    assert [str(b.error) for b in check(Intents.from_dict(values))] == ["undefined rule <odd>"]


def test_the_builtin_sentences_read_as_hassil_reads_them():
    """The walker and hassil's own sampler give every built-in template the same sentences in the
    same order (the first 500 of each; numbers and wildcards as placeholders on both sides)."""
    intents = Dispatcher([load_pack(ROOT / "intents")]).intents
    compared = 0
    for sentence in for_each_sentence(intents):
        lists, rules = sentence.scope.lists, sentence.scope.rules
        ours = sentence.walk(Sentences(most=500))
        sampled = sample_expression(sentence.sentence.expression, dict(lists), dict(rules), expand_ranges=False)
        theirs = [" ".join(re.sub(r"\{\w+\}", lambda m, lists=lists: _placeholder(m.group(), lists), text).split())
                  for text in itertools.islice(sampled, 500)]
        assert ours == theirs, sentence.text
        compared += len(ours)
    assert compared > 5000


GLUED = {
    "language": "en",
    "lists": {"fruit": {"values": ["apple", {"in": "(red|blue)berry", "out": "berry"}]}},
    "intents": {"Eat": {"data": [{"sentences": ["eat [the] {fruit}", "go (on|off)line [now]"]}]}},
}


def test_hassil_the_grammar_and_the_fuzzy_matcher_read_a_template_alike():
    """A word made of a group and text: hassil matches it as one word, so the grammar lets
    whisper write it as one and the fuzzy matcher measures near-misses against it."""
    from hassil import recognize

    from assistant.asr.grammar import CommandGrammar
    from assistant.intents.packs import pack_from_dict

    intents = Intents.from_dict(GLUED)
    for sentence in for_each_sentence(intents):
        scope = sentence.scope
        sampled = sample_expression(sentence.sentence.expression, dict(scope.lists), dict(scope.rules))
        assert sentence.walk(Sentences()) == [" ".join(text.split()) for text in sampled]
    assert recognize("eat redberry", intents) and not recognize("eat red berry", intents)
    dfa = CommandGrammar.from_intents(intents).dfa
    assert dfa.accepts(" Eat the blueberry.") and dfa.accepts(" Go online now.")
    assert not dfa.accepts(" Eat the blue berry.") and not dfa.accepts(" Go on line.")
    match = Dispatcher([pack_from_dict(GLUED)]).match("eat the bluebery")
    assert match is not None and match.fuzzy and match.slots == {"fruit": "berry"}


def _placeholder(name: str, lists) -> str:
    slot_list = lists.get(name[1:-1])
    return "<wildcard>" if slot_list is not None and type(slot_list).__name__ == "WildcardSlotList" else "<number>"
