"""`assistant intents list` and `assistant intents test "set a timer for five minutes"`.

main(args, config) is what the lead wires under the `intents` subcommand:

    intents list                       the intents, their handlers, first template
    intents test TEXT [--json]         match TEXT, run its handler, print the result
    intents test TEXT --match-only     match only (no timers started, no commands run)

--json prints exactly {"intent": name or null, "slots": {...}, "reply": "..."}.
The exit status is 0 when the text was understood and handled, 1 when it was
not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, TextIO, Union

from ..config import Config, IntentsConfig, load
from .dispatcher import Dispatcher


def main(args: List[str], config: Union[Config, IntentsConfig, None] = None, out: Optional[TextIO] = None) -> int:
    out = out or sys.stdout
    if args[:1] == ["intents"]:
        args = args[1:]
    parser = argparse.ArgumentParser(prog="assistant intents", description="Inspect and try the intents.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the intents, their handlers and a template each")
    test = sub.add_parser("test", help="match a sentence and run its handler")
    test.add_argument("text", nargs="+", help="what was said")
    test.add_argument("--json", action="store_true", help='print {"intent", "slots", "reply"} as JSON')
    test.add_argument("--match-only", action="store_true", help="match without running the handler")
    try:
        ns = parser.parse_args(args)
    except SystemExit as e:  # argparse exits on --help and on errors; we return instead
        return e.code if isinstance(e.code, int) else 2

    dispatcher = Dispatcher.from_config(config if config is not None else load())
    try:
        if ns.command == "list":
            return _list(dispatcher, out)
        return _test(dispatcher, " ".join(ns.text), ns.json, ns.match_only, out)
    finally:
        dispatcher.close()


def _list(dispatcher: Dispatcher, out: TextIO) -> int:
    for pack in dispatcher.packs:
        print(f"pack {pack.path}", file=out)
    names = sorted(dispatcher.intents.intents)
    width = max((len(n) for n in names), default=0)
    for name in names:
        intent = dispatcher.intents.intents[name]
        sentences = [s for data in intent.data for s in data.sentence_texts]
        print(f"  {name:<{width}}  {dispatcher.descriptions[name]}  [{_answered_by(dispatcher, name)}]", file=out)
        print(f"  {'':<{width}}  {len(sentences)} templates, e.g. \"{sentences[0]}\"", file=out)
    commands = ", ".join(dispatcher.config.commands) or "none (intents.commands in config.yaml)"
    print(f"commands allowed: {commands}", file=out)
    for error in dispatcher.errors:
        print(f"error: {error}", file=out)
    return 0


def _answered_by(dispatcher: Dispatcher, name: str) -> str:
    if name in dispatcher.handler_sources:
        return dispatcher.handler_sources[name]
    spec = dispatcher.specs.get(name)
    if spec is not None and (spec.command is not None or spec.type == "command"):
        return f"command {spec.command or '{command}'}"
    if spec is not None and spec.reply is not None:
        return "fixed reply"
    return "NO HANDLER"


def _test(dispatcher: Dispatcher, text: str, as_json: bool, match_only: bool, out: TextIO) -> int:
    if match_only:
        match = dispatcher.match(text)
        intent, slots, reply = (match.intent, match.slots, None) if match else (None, {}, None)
        ok = match is not None
        detail = f" (confidence {match.confidence:.2f}{', fuzzy' if match.fuzzy else ''})" if match else ""
        template = match.template if match else None
    else:
        result = dispatcher.handle(text)
        intent, slots, reply = result.intent, result.slots, result.reply
        ok = result.intent is not None and result.error is None
        detail = f" (confidence {result.confidence:.2f})" if result.intent else ""
        detail += f" [{result.error}]" if result.error else ""
        template = None
    if as_json:
        print(json.dumps({"intent": intent, "slots": slots, "reply": reply}, default=str), file=out)
    else:
        print(f"intent: {intent}{detail}", file=out)
        if template:
            print(f"template: {template}", file=out)
        print(f"slots: {json.dumps(slots, default=str)}", file=out)
        if reply is not None:
            print(f"reply: {reply}", file=out)
    return 0 if ok else 1
