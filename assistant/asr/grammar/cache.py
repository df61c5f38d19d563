"""The grammar of a set of intents, built once and kept as JSON in the user's cache.

Building the automaton takes a few seconds, loading it a few milliseconds. The file is data (the
automaton's moves and accepting states), never code: a file that is not a well-formed automaton
(damaged, written by an older version, or by anything else) is built again and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from hassil import Intents

from .automaton import Dfa
from .sentences import template_automaton

_LOGGER = logging.getLogger(__name__)

__all__ = ["VERSION", "CommandGrammar", "cache_path", "dfa_from_json", "dfa_to_json"]

VERSION = 4  # of the automaton's construction: a change invalidates cached grammars
FORMAT = "assistant-grammar-dfa"


@dataclass
class CommandGrammar:
    """The templates' automaton."""

    dfa: Dfa

    @classmethod
    def from_intents(cls, intents: Intents) -> CommandGrammar:
        return cls(template_automaton(intents))

    @classmethod
    def cached(cls, intents: Intents, key: str, folder: Path) -> CommandGrammar:
        """from_intents, kept in folder under a hash of key (the intents' data)."""
        path = cache_path(key, folder)
        dfa = _load(path)
        if dfa is not None:
            return cls(dfa)
        grammar = cls.from_intents(intents)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dfa_to_json(grammar.dfa), separators=(",", ":")), encoding="utf-8")
            os.replace(tmp, path)
        except OSError as e:  # a read-only cache costs a rebuild next time, nothing more
            _LOGGER.info("grammar not cached: %s", e)
        return grammar


def cache_path(key: str, folder: Path) -> Path:
    digest = hashlib.sha256(f"{VERSION}\n{key}".encode()).hexdigest()[:16]
    return Path(folder) / f"grammar-{digest}.json"


def dfa_to_json(dfa: Dfa) -> Dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "start": dfa.start,
            "accepting": [int(a) for a in dfa.accepting], "moves": dfa.moves}


def dfa_from_json(data: Any) -> Dfa:
    """The automaton written by dfa_to_json; ValueError for anything else."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError("not a grammar of this version")
    moves, accepting, start = data.get("moves"), data.get("accepting"), data.get("start")
    if not isinstance(moves, list) or not isinstance(accepting, list) or len(moves) != len(accepting):
        raise ValueError("moves and accepting states do not match")
    n = len(moves)
    if not isinstance(start, int) or not 0 <= start < n:
        raise ValueError("no start state")
    if not all(type(a) is int and a in (0, 1) for a in accepting):
        raise ValueError("an accepting flag is not 0 or 1")
    rows: List[Dict[str, int]] = []
    for row in moves:
        if not isinstance(row, dict) or not all(
            len(c) <= 1 and type(t) is int and 0 <= t < n for c, t in row.items()
        ):
            raise ValueError("a move is not one character to a state")
        rows.append(row)
    return Dfa(rows, [bool(a) for a in accepting], start)


def _load(path: Path) -> Optional[Dfa]:
    try:
        return dfa_from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # json's errors are ValueErrors
        _LOGGER.info("grammar cache %s unusable (%s): building it again", path, e)
        return None
