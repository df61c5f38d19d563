"""Turn a transcript into an intent, run its handler, return the reply.

Matching is two steps. First hassil matches the normalised text against the
sentence templates exactly (confidence 1.0). If nothing matches, a fuzzy
fallback measures a word-level edit distance from the words to each template
(numbers and list values as slots), in which a near-miss word ("time" for
"timer") costs little. It refuses when the best confidence is below
IntentsConfig.fuzzy_threshold or when two intents are about equally close
(IntentsConfig.fuzzy_margin): guessing wrong is worse than asking again. The
corrected sentence is matched by hassil again, so the slots are hassil's.

Handlers run in a worker thread with a timeout. A handler that raises, hangs,
or returns nonsense is logged and answered with IntentsConfig.failed; the
dispatcher itself never raises from handle().
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
import shlex
import subprocess
import threading
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from hassil import Intents, recognize_best
from hassil.expression import (
    Alternative,
    Expression,
    ListReference,
    Permutation,
    RuleReference,
    Sentence,
    TextChunk,
)
from hassil.expression import Sequence as SeqExpr
from hassil.intents import RangeSlotList, SlotList, TextSlotList
from hassil.parse_expression import parse_sentence
from hassil.recognize import RecognizeResult
from hassil.sample import sample_expression
from hassil.util import merge_dict

from ..config import Config, IntentsConfig
from ..errors import IntentError
from .packs import BUILT_IN, Context, Handler, IntentPack, IntentSpec, Reply, load_packs
from .normalize import Normalized, is_number, normalize_template, normalize_tokens

_LOGGER = logging.getLogger(__name__)

SLOT_SIMILARITY = 0.7  # fuzzy matching, a list value: "pastor" is pasta (0.73), "out" is not workout (0.6)

__all__ = ["Dispatcher", "Match", "Result", "Reply", "Context", "run_command"]


@dataclass(frozen=True)
class Match:
    """A recognised intent."""

    intent: str
    slots: Dict[str, Any]  # numbers are int/float, list values their "out" value
    confidence: float  # 1.0 for a template match, lower for a fuzzy one
    text: str  # the normalised text that matched (fuzzy: the corrected sentence)
    template: Optional[str] = None  # the sentence template that matched
    fuzzy: bool = False


@dataclass
class Result:
    """The answer to one utterance."""

    intent: Optional[str]  # None: not understood
    slots: Dict[str, Any]
    reply: str
    data: Dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.0
    error: Optional[str] = None  # None | "not_understood" | "failed" | "timeout"


class Dispatcher:
    """Dispatcher(packs, config): match(text) and handle(text, context)."""

    def __init__(self, packs: Sequence[IntentPack], config: Union[Config, IntentsConfig, None] = None):
        self.config = _intents_config(config)
        self.packs = list(packs)
        self.handlers: Dict[str, Handler] = {}
        self.handler_sources: Dict[str, str] = {}
        self.specs: Dict[str, IntentSpec] = {}
        merged: Dict[str, Any] = {"language": "en", "intents": {}, "lists": {}, "expansion_rules": {}}
        for pack in self.packs:
            merge_dict(merged, pack.data())
            for name, spec in pack.specs().items():
                self.specs[name] = _merge_spec(self.specs.get(name), spec)
            for name, fn in pack.handlers.items():
                if name in self.handlers:
                    _LOGGER.info("handler for '%s' from %s replaces %s", name, pack.path,
                                 self.handler_sources[name])
                self.handlers[name] = fn
                self.handler_sources[name] = f"{pack.path.name}/{pack.handler_sources[name]}"
        self._add_command_list(merged)
        self.errors: List[str] = [e for pack in self.packs for e in pack.errors]
        self.errors += _drop_broken_references(merged)
        self.data = merged
        self.intents = Intents.from_dict(merged)
        self.descriptions = {
            name: (self.specs[name].description if name in self.specs and self.specs[name].description
                   else _humanize(name))
            for name in self.intents.intents
        }
        for name in self.intents.intents:
            if self._handler(name) is None:
                _LOGGER.warning("intent '%s' has no handler, command or reply", name)
        self.context = Context(config=self.config)
        # Built now, not on the first near-miss: it takes ~0.1 s, which a reply should not wait for.
        self._fuzzy = _FuzzyIndex(self.intents)

    @classmethod
    def from_config(cls, config: Union[Config, IntentsConfig, None] = None, strict: bool = True) -> "Dispatcher":
        """The built-in packs, then those in intents.paths (relative to the config file's folder).
        strict: a missing folder or a broken pack is an IntentError (else kept in .errors)."""
        base = Path(config.path).resolve().parent if isinstance(config, Config) and config.path else None
        dispatcher = cls(load_packs([BUILT_IN, *_intents_config(config).paths], base=base), config)
        if strict and dispatcher.errors:
            dispatcher.close()
            raise IntentError.of(dispatcher.errors)
        return dispatcher

    # -- matching --------------------------------------------------------------------------

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
                return self._to_match(result, norm, 1.0, fuzzy=False)
        return self._fuzzy_match(full)

    def _recognize(self, text: str) -> Optional[RecognizeResult]:
        try:
            return recognize_best(text, self.intents, language=self.intents.language)
        except Exception:
            _LOGGER.exception("hassil failed on %r", text)
            return None

    def _to_match(self, result: RecognizeResult, norm: Normalized, confidence: float, fuzzy: bool) -> Match:
        slots: Dict[str, Any] = {}
        for entity in result.entities_list:
            value = entity.value
            if entity.is_wildcard and entity.text_span is not None and not fuzzy:
                # Wildcards keep the speaker's own text: case, punctuation, "; rm -rf x".
                value = norm.raw_span(*entity.text_span) or value
            slots[entity.name] = _plain_number(value)
        template = result.intent_sentence.text if result.intent_sentence is not None else None
        return Match(result.intent.name, slots, confidence, norm.text, template, fuzzy)

    def _fuzzy_match(self, norm: Normalized) -> Optional[Match]:
        words = [t.text for t in norm.tokens]
        ranked = self._fuzzy.search(words)
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
                return self._to_match(result, repaired, confidence, fuzzy=True)
        return None

    # -- handling ----------------------------------------------------------------------------

    def handle(self, text: str, context: Optional[Context] = None) -> Result:
        """Match and run the handler. Never raises; failures become IntentsConfig.failed."""
        ctx = context if context is not None else self.context
        try:
            match = self.match(text)
        except Exception:
            _LOGGER.exception("matching %r failed", text)
            match = None
        if match is None:
            return Result(None, {}, self.config.not_understood, {}, 0.0, "not_understood")
        fn = self._handler(match.intent)
        if fn is None:
            _LOGGER.error("intent '%s' matched but has no handler", match.intent)
            return self._failed(match, "failed")
        ctx.intents = dict(self.descriptions)
        status, value = _call_with_timeout(
            fn, (match.intent, dict(match.slots), ctx), self.config.handler_timeout_s, match.intent
        )
        if status != "ok":
            return self._failed(match, status)
        reply = _as_reply(value)
        if reply is None:
            _LOGGER.error("handler for '%s' returned %r, not a Reply or str", match.intent, value)
            return self._failed(match, "failed")
        if reply.text:
            ctx.last_reply = reply.text
        return Result(match.intent, match.slots, reply.text, reply.data, match.confidence)

    def _failed(self, match: Match, error: str) -> Result:
        return Result(match.intent, match.slots, self.config.failed, {}, match.confidence, error)

    def _handler(self, intent: str) -> Optional[Handler]:
        """A Python handler, else the command or fixed reply the YAML declares."""
        if intent in self.handlers:
            return self.handlers[intent]
        spec = self.specs.get(intent)
        if spec is None:
            return None
        if spec.command is not None or spec.type == "command":
            return lambda name, slots, ctx: _command_handler(spec, slots, ctx)
        if spec.reply is not None:
            return lambda name, slots, ctx: Reply(_fill(spec.reply, slots))
        return None

    # -- vocabulary ----------------------------------------------------------------------------

    def vocabulary_prompt(self, max_chars: int = 224) -> str:
        """A short whisper initial prompt with the words the intents expect, in sentences:
        for each list (timer names, command names...) its `prompt:` sentences if the list has
        them, then "Timer names: pasta, eggs, ...". Lists with `vocabulary: false` are left out.
        "" when IntentsConfig.vocabulary_prompt is off.

        Sentences, not a bare list of words: a bare list made tiny.en continue it on short audio
        ("Serta, tea, coffee, pizza") and pull other words toward it (benchmarks/README-intents.md)."""
        if not self.config.vocabulary_prompt:
            return ""
        prompt = ""

        def add(text: str) -> bool:
            nonlocal prompt
            longer = f"{prompt} {text}".strip()
            if len(longer) > max_chars:
                return False
            prompt = longer
            return True

        for name, body in (self.data.get("lists") or {}).items():
            if body.get("vocabulary", True) is False:
                continue
            words: Dict[str, str] = {}
            for value in body.get("values") or []:
                text = value if isinstance(value, str) else value.get("out")
                if isinstance(text, str) and text.strip() and not re.search(r"[(){}\[\]<>|]", text):
                    words.setdefault(text.strip().casefold(), text.strip())
            if not words:
                continue
            examples = body.get("prompt") or []
            for sentence in [examples] if isinstance(examples, str) else examples:
                add(str(sentence).strip())
            label = name.replace("_", " ").strip().capitalize()
            label = label if label.endswith("s") else label + "s"
            values = list(words.values())
            for n in range(len(values), 0, -1):  # as many values as fit
                if add(f"{label}: {', '.join(values[:n])}."):
                    break
        return prompt

    def close(self) -> None:
        """Stop the default context's timer thread."""
        self.context.timers.close()

    def _add_command_list(self, merged: Dict[str, Any]) -> None:
        """{command} lists the allow-listed command names from IntentsConfig.commands."""
        body = merged["lists"].setdefault("command", {"values": []})
        if "values" in body:
            body.setdefault("vocabulary", True)
            # Spoken as words: "show_args" is said "show args".
            body["values"] = list(body["values"]) + [
                {"in": normalize_template(re.sub(r"[_-]+", " ", str(name))), "out": str(name)}
                for name in self.config.commands
            ]


# -- handlers: running, commands ----------------------------------------------------------


def _call_with_timeout(fn: Handler, args: tuple, timeout: float, intent: str) -> Tuple[str, Any]:
    """("ok", value) | ("failed", None) | ("timeout", None). The worker thread is a
    daemon: a handler that never returns is abandoned, not killed (Python cannot)."""
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # report everything, even SystemExit, instead of dying
            box["error"] = e

    worker = threading.Thread(target=run, name=f"intent-{intent}", daemon=True)
    worker.start()
    worker.join(timeout if timeout > 0 else None)  # 0: no time limit
    if worker.is_alive():
        _LOGGER.error("handler for '%s' ran past %.1f s; answered with the failed reply", intent, timeout)
        return "timeout", None
    if "error" in box:
        error = box["error"]
        _LOGGER.error("handler for '%s' raised %s: %s", intent, type(error).__name__, error,
                      exc_info=(type(error), error, error.__traceback__))
        return "failed", None
    return "ok", box.get("value")


def _as_reply(value: Any) -> Optional[Reply]:
    if isinstance(value, Reply):
        return Reply(str(value.text), dict(value.data or {}))
    if isinstance(value, str):
        return Reply(value)
    if value is None:
        return Reply("")
    return None


def _command_handler(spec: IntentSpec, slots: Dict[str, Any], ctx: Context) -> Reply:
    name = spec.command if spec.command is not None else slots.get("command")
    if spec.args is not None:
        args = [slots[a] for a in spec.args if a in slots]
    else:
        args = [v for k, v in slots.items() if k != "command"]
    return run_command(str(name), args, ctx.config)


def run_command(name: str, args: Sequence[Any], config: IntentsConfig) -> Reply:
    """Run the allow-listed command `name` (IntentsConfig.commands) with `args`
    appended as separate argv items. Never through a shell: a slot value such
    as "; rm -rf x" reaches the program as one literal argument."""
    base = config.commands.get(name)
    data: Dict[str, Any] = {"command": name}
    if base is None:
        _LOGGER.warning("command '%s' is not in intents.commands", name)
        return Reply(f"Sorry, {name} is not a command I may run.", dict(data, allowed=False))
    if isinstance(base, str):
        base = shlex.split(base)  # split like a shell would, but nothing is run by one
    if not isinstance(base, list) or not base or not all(isinstance(a, (str, int, float)) for a in base):
        raise ValueError(f"intents.commands.{name} must be a list: [program, args...]")
    argv = [str(a) for a in base] + [_argv_item(a) for a in args]
    data["argv"] = argv
    try:
        proc = subprocess.run(
            argv, shell=False, capture_output=True, stdin=subprocess.DEVNULL,
            encoding="utf-8", errors="replace", timeout=_command_timeout(config),
        )
    except subprocess.TimeoutExpired:
        _LOGGER.error("command %s timed out", argv)
        return Reply(f"Sorry, {name} took too long.", dict(data, timeout=True))
    except OSError as e:
        _LOGGER.error("command %s could not start: %s", argv, e)
        return Reply(f"Sorry, I couldn't run {name}.", dict(data, error=str(e)))
    out = proc.stdout.strip()
    data.update(returncode=proc.returncode, stdout=out, stderr=proc.stderr.strip()[-500:])
    if proc.returncode != 0:
        _LOGGER.warning("command %s exited with %d: %s", argv, proc.returncode, data["stderr"])
        return Reply(f"Sorry, {name} failed.", data)
    return Reply(out[:300] if out else "Done.", data)


def _command_timeout(config: IntentsConfig) -> Optional[float]:
    """A little under the handler timeout, so the program is killed and reported first."""
    return config.handler_timeout_s * 0.9 if config.handler_timeout_s > 0 else None


def _argv_item(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fill(template: str, slots: Dict[str, Any]) -> str:
    """A fixed reply with {slot} filled in; unknown slots become empty."""
    return re.sub(r"\{(\w+)\}", lambda m: _argv_item(slots.get(m.group(1), "")), template)


# -- fuzzy fallback ----------------------------------------------------------------------
#
# Each sentence template becomes a small graph (a DAG) whose edges are words,
# slots ({list} values or numbers) and empty steps (optional parts, alternatives).
# The distance from what was said to the template is the cheapest walk through
# the graph that explains the spoken words, where a template word may be skipped,
# a spoken word may be extra, and a spoken word may stand for a template word at a
# cost that grows as the words differ. Working on the graph, not on the sentences
# it expands to, keeps a template with many alternatives cheap.

_LIGHT = frozenset("a an the my me for to of is it and on in at this that".split())
_EPS, _WORD, _SLOT = 0, 1, 2


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


@dataclass(frozen=True)
class _Candidate:
    intent: str
    confidence: float
    repaired: Optional[str]  # the template's words with the spoken slot values


class _Wildcard(Exception):
    """Templates with wildcards are not fuzzy-matched: a wildcard matches anything."""


class _FuzzyIndex:
    def __init__(self, intents: Intents):
        self.graphs: List[_Graph] = []
        for intent in intents.intents.values():
            for data in intent.data:
                lists = {**intents.slot_lists, **data.slot_lists}
                rules = {**intents.expansion_rules, **data.expansion_rules}
                for sentence in data.sentences:
                    builder = _GraphBuilder(lists, rules)
                    try:
                        _, end = builder.build(sentence.expression, glue=False)
                    except _Wildcard:
                        continue
                    except Exception:
                        _LOGGER.debug("fuzzy: cannot use template %r", sentence.text, exc_info=True)
                        continue
                    self.graphs.append(_Graph(intent.name, builder.edges, end))

    def search(self, words: Sequence[str]) -> List[_Candidate]:
        """Every template's candidate, best first."""
        spoken = [w.lower() for w in words]
        if not spoken or len(spoken) > 30:
            return []
        out = [_align(spoken, words, g) for g in self.graphs]
        out.sort(key=lambda c: -c.confidence)
        return out


class _GraphBuilder:
    """hassil expression -> DAG, states numbered in topological order."""

    def __init__(self, lists: Dict[str, SlotList], rules: Dict[str, Sentence]):
        self.lists, self.rules = lists, rules
        self.edges: List[List[_Edge]] = []
        self.depth = 0
        self.choices = 0  # enclosing alternatives whose branches fill different slots

    def state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def build(self, expr: Expression, glue: bool) -> Tuple[int, int]:
        self.depth += 1
        if self.depth > 200:
            raise RecursionError("expansion rules nest too deep")
        try:
            return self._build(expr, glue)
        finally:
            self.depth -= 1

    def _build(self, expr: Expression, glue: bool) -> Tuple[int, int]:
        if isinstance(expr, TextChunk):
            start = end = self.state()
            glue = glue and not expr.text[:1].isspace()
            for word in expr.text.split():
                nxt = self.state()
                self.edges[end].append(_Edge(nxt, _WORD, word.lower(), word, glue, choice=self.choices > 0))
                end, glue = nxt, False
            return start, end
        if isinstance(expr, Alternative):
            start = self.state()
            branches = {self._slots_in(item) for item in expr.items if not _is_empty(item)}
            choice = len(branches) > 1
            self.choices += choice
            try:
                ends = [self.build(item, glue) for item in expr.items]
            finally:
                self.choices -= choice
            end = self.state()
            for a, b in ends:
                self.edges[start].append(_Edge(a, _EPS))
                self.edges[b].append(_Edge(end, _EPS))
            return start, end
        if isinstance(expr, Permutation):
            orders = [SeqExpr(items=list(p)) for p in itertools.permutations(expr.items)]
            return self._build(Alternative(items=orders), glue)
        if isinstance(expr, SeqExpr):
            start = end = self.state()
            joined = glue
            for item in expr.items:
                a, b = self.build(item, joined)
                self.edges[end].append(_Edge(a, _EPS))
                end = b
                # The next item is glued on if this text ends mid-word ("timer" + "[s]").
                joined = isinstance(item, TextChunk) and bool(item.text) and not item.text[-1:].isspace()
            return start, end
        if isinstance(expr, RuleReference):
            return self.build(self.rules[expr.rule_name].expression, glue)
        if isinstance(expr, ListReference):
            start, end = self.state(), self.state()
            self.edges[start].append(_Edge(end, _SLOT, slot=self._slot(expr)))
            return start, end
        raise ValueError(f"unexpected expression {expr!r}")

    def _slots_in(self, expr: Expression, depth: int = 0) -> frozenset:
        """The slot names an expression can fill."""
        if isinstance(expr, ListReference):
            return frozenset([expr.slot_name])
        if isinstance(expr, RuleReference) and expr.rule_name in self.rules and depth < 24:
            return self._slots_in(self.rules[expr.rule_name].expression, depth + 1)
        if isinstance(expr, (Alternative, Permutation, SeqExpr)):
            return frozenset().union(*(self._slots_in(item, depth + 1) for item in expr.items))
        return frozenset()

    def _slot(self, ref: ListReference) -> _Slot:
        slot_list = self.lists.get(ref.list_name)
        if isinstance(slot_list, RangeSlotList) or (slot_list is None and ref.is_inline_range):
            return _Slot(ref.slot_name)
        if not isinstance(slot_list, TextSlotList):
            raise _Wildcard(ref.list_name)
        values: Dict[Tuple[str, ...], str] = {}
        for value in slot_list.values:
            for text in itertools.islice(sample_expression(value.text_in, self.lists, self.rules), 100):
                words = text.split()
                if words and "{" not in text:
                    values.setdefault(tuple(w.lower() for w in words), " ".join(words))
        if not values:
            raise _Wildcard(ref.list_name)  # an empty list matches nothing anyway
        return _Slot(ref.slot_name, tuple(values), tuple(values.values()))


def _is_empty(expr: Expression) -> bool:
    """The empty branch of an optional part: [a|the] is (a|the|)."""
    if isinstance(expr, TextChunk):
        return not expr.text.strip()
    if isinstance(expr, SeqExpr):
        return all(_is_empty(item) for item in expr.items)
    return False


def _said_once(norm: Normalized) -> Normalized:
    """ "Help. Help." / "what time is it what time is it": a command said twice (or heard twice,
    a whisper loop) is the command once."""
    n = len(norm.tokens)
    words = [t.text for t in norm.tokens]
    if n >= 2 and n % 2 == 0 and words[: n // 2] == words[n // 2:]:
        return Normalized(norm.raw, norm.tokens[: n // 2])
    return norm


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


def _align(spoken: Sequence[str], raw: Sequence[str], graph: _Graph) -> _Candidate:
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
    return _Candidate(graph.intent, confidence, None if missing else sentence)


# -- loading helpers ----------------------------------------------------------------------


def _intents_config(config: Union[Config, IntentsConfig, None]) -> IntentsConfig:
    if config is None:
        return IntentsConfig()
    if isinstance(config, Config):
        return config.intents
    return config


def _merge_spec(old: Optional[IntentSpec], new: IntentSpec) -> IntentSpec:
    if old is None:
        return copy.copy(new)
    merged = copy.copy(old)
    for key in ("description", "command", "args", "reply", "type"):
        if getattr(new, key) is not None and getattr(new, key) != "":
            setattr(merged, key, getattr(new, key))
    return merged


def _humanize(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()


def _plain_number(value: Any) -> Any:
    """hassil gives digits as floats (5.0); an integral number becomes an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _drop_broken_references(data: Dict[str, Any]) -> List[str]:
    """Drop sentences naming a list or rule nobody defined (hassil would raise while
    matching); return the errors."""
    errors = []
    lists = set(data.get("lists") or {})
    rules = {name: parse_sentence(body) for name, body in (data.get("expansion_rules") or {}).items()}
    for intent_name in list(data["intents"]):
        blocks = []
        for block in data["intents"][intent_name]["data"]:
            local_lists = lists | set(block.get("lists") or {})
            local_rules = dict(rules)
            local_rules.update({n: parse_sentence(b) for n, b in (block.get("expansion_rules") or {}).items()})
            kept = []
            for text in block["sentences"]:
                missing = _missing_refs(parse_sentence(text).expression, local_lists, local_rules, set())
                if missing:
                    errors.append(f"intent '{intent_name}': template {text!r} uses undefined {missing}")
                    _LOGGER.error("%s", errors[-1])
                else:
                    kept.append(text)
            if kept:
                blocks.append(dict(block, sentences=kept))
        if blocks:
            data["intents"][intent_name]["data"] = blocks
        else:
            del data["intents"][intent_name]
    return errors


def _missing_refs(expr: Expression, lists: set, rules: Dict[str, Sentence], seen: set) -> Optional[str]:
    if isinstance(expr, ListReference):
        if expr.list_name not in lists and not expr.is_inline_range:
            return f"list {{{expr.list_name}}}"
    elif isinstance(expr, RuleReference):
        if expr.rule_name not in rules:
            return f"rule <{expr.rule_name}>"
        if expr.rule_name not in seen:
            return _missing_refs(rules[expr.rule_name].expression, lists, rules, seen | {expr.rule_name})
    elif hasattr(expr, "items"):
        for item in expr.items:
            missing = _missing_refs(item, lists, rules, seen)
            if missing:
                return missing
    return None
