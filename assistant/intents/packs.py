"""Intent packs: folders of hassil sentence templates plus Python handlers, loaded and merged.

A pack is a folder: the built-in one (BUILT_IN), then the user's (IntentsConfig.paths).
Every *.yaml file in it (subfolders too) is hassil's format -- `intents:`, `lists:`,
`expansion_rules:` -- and every *.py file is imported; its functions marked
@handler("IntentName") answer that intent. Adding an intent is dropping a YAML
file and a handler into the folder; nothing in assistant/ changes.

Besides hassil's keys, an intent may carry a few of ours (hassil ignores them):

    intents:
      Backup:
        description: run the backup     # listed by the help intent
        command: backup                 # run IntentsConfig.commands["backup"]
        args: [folder]                  # slots passed as argv items (default: all)
        reply: "Starting {folder}"      # a fixed reply, no Python needed
        data: [...]

Templates are spelled the way normalize() spells speech ("What's" becomes
"what is", "one" becomes "1"), so authors can write them naturally.

merge_packs() makes one set of intents of the packs in order (a later pack's lists, rules,
intent keys and handlers win) and drops, with an error each, the sentences that refer to a list
or rule nobody defined (templates.check).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

import yaml
from hassil import Intents, is_template, parse_sentence
from hassil.util import merge_dict

from ..config import IntentsConfig
from ..data import builtin_intents
from ..errors import IntentError
from .normalize import normalize_template
from .templates import check
from .timers import Timers

_LOGGER = logging.getLogger(__name__)

HANDLER_ATTR = "__intent_names__"
TOP_LEVEL_KEYS = {"language", "intents", "lists", "expansion_rules", "skip_words", "settings"}
# Our keys on an intent, next to hassil's "data".
INTENT_KEYS = {"data", "description", "command", "args", "reply", "type"}
SPEC_KEYS = tuple(sorted(INTENT_KEYS - {"data"}))  # what an IntentSpec takes from them


@dataclass
class Reply:
    """What a handler answers: text to speak and data for the caller."""

    text: str
    data: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a handler may use besides its slots. The caller owns it across turns."""

    speak: Optional[Callable[[str], Any]] = None  # say something now (may be None)
    timers: Timers = field(default_factory=Timers)
    config: IntentsConfig = field(default_factory=IntentsConfig)
    last_reply: Optional[str] = None  # kept up to date by the dispatcher
    intents: Dict[str, str] = field(default_factory=dict)  # name -> description, for help


Handler = Callable[[str, Dict[str, Any], Context], Union[Reply, str, None]]


def handler(*intent_names: str) -> Callable[[Handler], Handler]:
    """Mark a function as the handler of one or more intents:

    @handler("TimerStart")
    def start(intent, slots, ctx): ...
    """
    if not intent_names or not all(isinstance(n, str) and n for n in intent_names):
        raise TypeError('use @handler("IntentName"), with one or more intent names')

    def mark(fn: Handler) -> Handler:
        setattr(fn, HANDLER_ATTR, tuple(getattr(fn, HANDLER_ATTR, ())) + intent_names)
        return fn

    return mark


@dataclass
class IntentSpec:
    """Our keys on one intent (everything but hassil's sentences)."""

    name: str
    description: str = ""
    command: Optional[str] = None  # allow-listed command to run
    args: Optional[List[str]] = None  # slot names passed as argv items
    reply: Optional[str] = None  # fixed reply template
    type: Optional[str] = None  # "command": the command's name is the {command} slot
    source: Optional[Path] = None


@dataclass
class PackFile:
    """One YAML file of a pack, templates already normalised."""

    path: Path
    data: Dict[str, Any]


@dataclass
class IntentPack:
    path: Path
    files: List[PackFile] = field(default_factory=list)
    handlers: Dict[str, Handler] = field(default_factory=dict)
    handler_sources: Dict[str, str] = field(default_factory=dict)  # intent -> "file.py:function"
    errors: List[str] = field(default_factory=list)

    def data(self) -> Dict[str, Any]:
        """All the pack's YAML merged into one hassil dict."""
        merged: Dict[str, Any] = {"language": "en", "intents": {}}
        for f in self.files:
            merge_dict(merged, copy.deepcopy(f.data))
        return merged

    def specs(self) -> Dict[str, IntentSpec]:
        specs: Dict[str, IntentSpec] = {}
        for f in self.files:
            for name, body in (f.data.get("intents") or {}).items():
                spec = specs.setdefault(name, IntentSpec(name, source=f.path))
                for key in SPEC_KEYS:
                    if body.get(key) is not None:
                        setattr(spec, key, body[key] if key == "args" else str(body[key]))
        return specs


BUILT_IN = builtin_intents()  # package data: the repository's intents/, shipped in the wheel


def pack_folder(entry: Union[str, Path], base: Optional[Path]) -> Path:
    """Where an intents.paths entry is: a relative path is taken from `base` (the config file's
    folder), never from the working directory: without a base it is an IntentError."""
    path = Path(entry).expanduser()
    if path.is_absolute():
        return path
    if base is None:
        raise IntentError(f"intent folder '{entry}': a relative path needs a config file to start from; "
                          "give an absolute path")
    return Path(base) / path


def load_packs(paths: Iterable[Union[str, Path]], base: Optional[Path] = None) -> List[IntentPack]:
    """Load each folder (pack_folder) as a pack, in order, each folder once."""
    packs, seen = [], set()
    for p in paths:
        path = pack_folder(p, base)
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            packs.append(load_pack(path))
    return packs


def load_pack(path: Union[str, Path]) -> IntentPack:
    """Load one pack folder. Problems are logged and kept in pack.errors; loading goes on."""
    path = Path(path)
    pack = IntentPack(path=path)
    if not path.is_dir():
        _error(pack, f"{path}: intent folder not found")
        return pack
    for file in _files(path, (".yaml", ".yml")):
        loaded = _load_yaml(file, pack)
        if loaded is not None:
            pack.files.append(loaded)
    for file in _files(path, (".py",)):
        _load_handlers(file, pack)
    return pack


def pack_from_dict(
    data: Dict[str, Any], handlers: Optional[Dict[str, Handler]] = None, name: str = "<dict>"
) -> IntentPack:
    """A pack built in code (tests, embedding): hassil dict plus {intent: handler}."""
    pack = IntentPack(path=Path(name))
    loaded = _check_yaml(copy.deepcopy(data), Path(name), pack)
    if loaded is not None:
        pack.files.append(loaded)
    for intent, fn in (handlers or {}).items():
        pack.handlers[intent] = fn
        pack.handler_sources[intent] = getattr(fn, "__qualname__", repr(fn))
    return pack


# -- YAML ---------------------------------------------------------------------------------


def _files(root: Path, suffixes: tuple) -> List[Path]:
    found = []
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root).parts
        if any(part.startswith((".", "_")) for part in rel):
            continue  # hidden files, __pycache__, _private.py
        if file.is_file() and file.suffix in suffixes:
            found.append(file)
    return found


def _load_yaml(file: Path, pack: IntentPack) -> Optional[PackFile]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        _error(pack, f"{file}: cannot read: {e}")
        return None
    return _check_yaml(data, file, pack)


def _check_yaml(data: Any, file: Path, pack: IntentPack) -> Optional[PackFile]:
    """Check the shape, normalise the templates, drop what cannot parse."""
    if data is None:
        return PackFile(file, {})
    if not isinstance(data, dict):
        _error(pack, f"{file}: the top level must be a mapping (intents:, lists:, ...)")
        return None
    for key in set(data) - TOP_LEVEL_KEYS:
        _error(pack, f"{file}: unknown key '{key}' (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
        del data[key]
    for key in ("intents", "lists", "expansion_rules"):
        if not isinstance(data.get(key) or {}, dict):
            _error(pack, f"{file}: '{key}' must be a mapping")
        if not isinstance(data.get(key), dict):
            data[key] = {}  # also for an empty "lists:"
    if not isinstance(data.get("skip_words", []), list):
        _error(pack, f"{file}: 'skip_words' must be a list")
        del data["skip_words"]

    _normalise_lists(data.get("lists") or {}, file, pack)
    _normalise_rules(data.get("expansion_rules") or {}, file, pack)
    intents = data.get("intents") or {}
    for name in list(intents):
        body = intents[name]
        if not _check_intent(name, body, file, pack):
            del intents[name]
    try:  # what else hassil would reject (a range without "from", ...); lists may live elsewhere
        Intents.from_dict({"language": "en", "intents": {}, **data})
    except Exception as e:
        _error(pack, f"{file}: not valid hassil intents: {type(e).__name__}: {e}")
        return None
    return PackFile(file, data)


def _check_intent(name: str, body: Any, file: Path, pack: IntentPack) -> bool:
    where = f"{file}: intent '{name}'"
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        _error(pack, f"{where}: needs 'data:', a list of blocks with 'sentences:'")
        return False
    for key in set(body) - INTENT_KEYS:
        _error(pack, f"{where}: unknown key '{key}' (known: {', '.join(sorted(INTENT_KEYS))})")
    if body.get("args") is not None and not (
        isinstance(body["args"], list) and all(isinstance(a, str) for a in body["args"])
    ):
        _error(pack, f"{where}: 'args' must be a list of slot names")
        body["args"] = None
    blocks = []
    for block in body["data"]:
        if not isinstance(block, dict) or not isinstance(block.get("sentences"), list):
            _error(pack, f"{where}: each data block needs 'sentences:', a list of templates")
            continue
        block["sentences"] = [s for s in map(lambda s: _template(s, where, pack), block["sentences"]) if s]
        _normalise_lists(block.get("lists") or {}, file, pack)
        _normalise_rules(block.get("expansion_rules") or {}, file, pack)
        if block["sentences"]:
            blocks.append(block)
    body["data"] = blocks
    return bool(blocks)


def _template(sentence: Any, where: str, pack: IntentPack) -> Optional[str]:
    if not isinstance(sentence, str):
        _error(pack, f"{where}: a sentence must be a string, not {sentence!r}")
        return None
    text = normalize_template(sentence)
    try:
        parse_sentence(text)
    except Exception as e:  # hassil raises several kinds of parse errors
        _error(pack, f"{where}: bad template {sentence!r}: {e}")
        return None
    return text


def _normalise_rules(rules: Dict[str, Any], file: Path, pack: IntentPack) -> None:
    for name in list(rules):
        text = _template(rules[name], f"{file}: expansion rule '{name}'", pack)
        if text is None:
            del rules[name]
        else:
            rules[name] = text


def _normalise_lists(lists: Dict[str, Any], file: Path, pack: IntentPack) -> None:
    for name in list(lists):
        body = lists[name]
        if not isinstance(body, dict) or not ({"values", "range", "wildcard"} & set(body)):
            _error(pack, f"{file}: list '{name}' needs 'values:', 'range:' or 'wildcard: true'")
            del lists[name]
            continue
        values = body.get("values")
        if values is None:
            continue
        if not isinstance(values, list):
            _error(pack, f"{file}: list '{name}': 'values' must be a list")
            del lists[name]
            continue
        kept = []
        for value in values:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if isinstance(value, str):
                # Keep the author's spelling as the slot value; match the normalised one.
                spoken = normalize_template(value)
                kept.append(value if spoken == value else {"in": spoken, "out": value})
            elif isinstance(value, dict) and isinstance(value.get("in"), str):
                spoken = normalize_template(value["in"])
                if "out" not in value and spoken != value["in"] and not is_template(value["in"]):
                    value = dict(value, out=value["in"])  # as written, as for plain strings
                kept.append(dict(value, **{"in": spoken}))
            else:
                _error(pack, f"{file}: list '{name}': bad value {value!r} (a string or {{in:, out:}})")
        body["values"] = kept


# -- Python handlers ------------------------------------------------------------------


def _load_handlers(file: Path, pack: IntentPack) -> None:
    digest = hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:10]
    module_name = f"_intent_pack_{digest}_{file.stem}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ImportError("not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up here
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        _error(pack, f"{file}: cannot import:\n{traceback.format_exc(limit=3)}")
        return
    for value in vars(module).values():
        for intent in getattr(value, HANDLER_ATTR, ()) if callable(value) else ():
            if intent in pack.handlers:
                _LOGGER.warning("%s: a second handler for '%s' replaces %s", file, intent,
                                pack.handler_sources[intent])
            pack.handlers[intent] = value
            pack.handler_sources[intent] = f"{file.name}:{getattr(value, '__name__', '?')}"


def _error(pack: IntentPack, message: str) -> None:
    _LOGGER.error("%s", message)
    pack.errors.append(message)


# -- merging packs ----------------------------------------------------------------------------


@dataclass
class MergedPacks:
    """Packs merged in order: a later pack's lists, rules, specs and handlers win."""

    data: Dict[str, Any]  # one hassil dict; sentences with broken references dropped
    intents: Intents
    specs: Dict[str, IntentSpec]
    handlers: Dict[str, Handler]
    handler_sources: Dict[str, str]  # intent -> "folder/file.py:function"
    descriptions: Dict[str, str]  # intent -> what it does, for help
    errors: List[str]  # the packs' errors, then the dropped sentences'


def merge_packs(packs: Sequence[IntentPack], commands: Mapping[str, Any]) -> MergedPacks:
    """Merge packs into one set of intents; {command} lists the allow-listed `commands`."""
    handlers: Dict[str, Handler] = {}
    handler_sources: Dict[str, str] = {}
    specs: Dict[str, IntentSpec] = {}
    data: Dict[str, Any] = {"language": "en", "intents": {}, "lists": {}, "expansion_rules": {}}
    for pack in packs:
        merge_dict(data, pack.data())
        for name, spec in pack.specs().items():
            specs[name] = _merge_spec(specs.get(name), spec)
        for name, fn in pack.handlers.items():
            if name in handlers:
                _LOGGER.info("handler for '%s' from %s replaces %s", name, pack.path, handler_sources[name])
            handlers[name] = fn
            handler_sources[name] = f"{pack.path.name}/{pack.handler_sources[name]}"
    _add_command_list(data, commands)
    errors = [e for pack in packs for e in pack.errors]
    intents = _drop_broken_sentences(data, errors)
    descriptions = {
        name: specs[name].description if name in specs and specs[name].description else _humanize(name)
        for name in intents.intents
    }
    return MergedPacks(data, intents, specs, handlers, handler_sources, descriptions, errors)


def _merge_spec(old: Optional[IntentSpec], new: IntentSpec) -> IntentSpec:
    if old is None:
        return copy.copy(new)
    merged = copy.copy(old)
    for key in SPEC_KEYS:
        if getattr(new, key) is not None and getattr(new, key) != "":
            setattr(merged, key, getattr(new, key))
    return merged


def _add_command_list(data: Dict[str, Any], commands: Mapping[str, Any]) -> None:
    """{command} lists the allow-listed command names (IntentsConfig.commands)."""
    body = data["lists"].setdefault("command", {"values": []})
    if "values" in body:
        body.setdefault("vocabulary", True)
        # Spoken as words: "show_args" is said "show args".
        body["values"] = list(body["values"]) + [
            {"in": normalize_template(re.sub(r"[_-]+", " ", str(name))), "out": str(name)} for name in commands
        ]


def _drop_broken_sentences(data: Dict[str, Any], errors: List[str]) -> Intents:
    """Drop the sentences naming a list or rule nobody defined (hassil would raise while matching),
    or a rule that reaches itself, reporting each in errors; the intents of what is left."""
    intents = Intents.from_dict(data)
    broken = check(intents)
    if not broken:
        return intents
    dropped: Dict[Tuple[str, int], Set[str]] = {}
    for b in broken:
        errors.append(f"intent '{b.sentence.intent}': template {b.sentence.text!r} uses {b.error}")
        _LOGGER.error("%s", errors[-1])
        dropped.setdefault((b.sentence.intent, b.sentence.block), set()).add(b.sentence.text)
    for name in list(data["intents"]):
        blocks = data["intents"][name]["data"]
        kept = [dict(block, sentences=[s for s in block["sentences"] if s not in dropped.get((name, i), ())])
                for i, block in enumerate(blocks)]
        kept = [block for block in kept if block["sentences"]]
        if kept:
            data["intents"][name]["data"] = kept
        else:
            del data["intents"][name]
    return Intents.from_dict(data)


def _humanize(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).lower()
