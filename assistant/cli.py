"""The command line: one parser, a subcommand per job, and listening when none is named.

    python -m assistant [listen options]       listen and answer (`listen` may be written out)
    python -m assistant transcribe FILE        a file to text, json, srt or vtt
    python -m assistant models [convert ...]   models it can use; convert a CTranslate2 one
    python -m assistant devices                input devices
    python -m assistant intents list|test      the intents; match a sentence and run its handler
    python -m assistant config [init]          where the files are; write your own config.yaml

Every command reads the configuration first (config.load: --config FILE, else the user's
config.yaml, else the default), then replaces what its options override; nothing heavy is
imported before that, so a bad file is reported at once. An AssistantError is one line on
stderr and exit code 2; Ctrl-C exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, List, Optional, TextIO, Union

from . import __version__
from . import config as config_mod
from .config import WAKE_WORDS, Config, IntentsConfig
from .errors import AssistantError, ConfigError, UsageError

PROG = "python -m assistant"
COMMANDS = ("listen", "transcribe", "models", "devices", "intents", "config")
FORMATS = ("text", "json", "srt", "vtt")  # asr.subtitles.FORMATS, without loading the engine to parse

DESCRIPTION = """\
An offline voice assistant: whisper.cpp speech recognition, webrtcvad utterances, intents
with spoken replies. With no command it listens to the microphone and answers."""

EXAMPLES = f"""\
examples:
  {PROG}                                 listen and answer
  {PROG} --wake-word okay_nabu           wait for "okay nabu", then take one command
  {PROG} --push-to-talk                  Enter opens the microphone for one command
  {PROG} --mode transcribe               only show what it hears, live
  {PROG} --input talk.wav --events jsonl   a file through the same pipeline, JSON lines
  {PROG} transcribe talk.flac --format srt -o talk.srt
  {PROG} models                          models it can use and where they live
  {PROG} devices                         input devices
  {PROG} intents test "set a timer for five minutes"
  {PROG} config                          where the configuration and your intents are
  {PROG} config init                     write your own config.yaml to change

`{PROG} COMMAND --help` shows a command's options."""


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(_with_command(list(sys.argv[1:] if argv is None else argv)))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 0
    except AssistantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _with_command(argv: List[str]) -> List[str]:
    """Listening is the default: `--wake-word alexa` is `listen --wake-word alexa`."""
    if argv and (argv[0] in COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["listen", *argv]


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--version", action="version", version=f"assistant {__version__}")
    # The listen options are shown here too (`--help` is where people look for them), with
    # defaults that leave the listen subcommand's own values alone.
    _listen_options(top, quiet=True)
    sub = top.add_subparsers(title="commands", metavar="COMMAND")

    listen = sub.add_parser("listen", help="listen to the microphone (or --input) and answer (the default)",
                            description=DESCRIPTION, epilog=EXAMPLES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _listen_options(listen, quiet=False)
    listen.set_defaults(run=cmd_listen)

    transcribe = sub.add_parser("transcribe", help="transcribe an audio file (WAV, FLAC or OGG, any rate)",
                                description="Transcribe an audio file (WAV, FLAC or OGG, any rate).")
    transcribe.add_argument("file", help="audio file")
    transcribe.add_argument("--format", "-f", choices=FORMATS, default="text",
                            help="output format (default: text)")
    transcribe.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    transcribe.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _model_options(transcribe)
    transcribe.set_defaults(run=cmd_transcribe)

    models = sub.add_parser("models", help="list whisper models; convert a CTranslate2 one",
                            description="List whisper models, or convert a CTranslate2 one.")
    actions = models.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="list the models it can use and where they live (default)")
    convert = actions.add_parser("convert", help="convert a CTranslate2 (faster-whisper) model folder to ggml")
    convert.add_argument("ct2_dir", help="folder with model.bin, config.json, vocabulary")
    convert.add_argument("out", nargs="?", help="output ggml file (default: the model cache, ggml-NAME.bin)")
    models.set_defaults(run=cmd_models)

    devices = sub.add_parser("devices", help="list audio input devices", description="List audio input devices.")
    devices.set_defaults(run=cmd_devices)

    intents = sub.add_parser("intents", help="list the intents, or try one sentence",
                             description="Inspect and try the intents.")
    _intents_actions(intents)
    intents.set_defaults(run=lambda args: _run_intents(args, _load_config(args), sys.stdout))

    config = sub.add_parser("config", help="where the configuration and intents are; `config init` writes yours",
                            description="Show which configuration is in use and where each file is; "
                            "`config init` writes a commented copy of the defaults to your config folder.")
    _config_option(config)
    actions = config.add_subparsers(dest="action", metavar="ACTION")
    init = actions.add_parser("init", help="write a commented copy of the defaults to your config folder")
    init.add_argument("--force", action="store_true", help="overwrite a config.yaml that is there")
    config.set_defaults(run=cmd_config)
    return top


def _default(quiet: bool, value: Any) -> Any:
    return argparse.SUPPRESS if quiet else value


def _config_option(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    parser.add_argument("--config", metavar="FILE", default=_default(quiet, None),
                        help="configuration file (default: your config.yaml if there is one, "
                        "else the defaults; see `config`)")


def _model_options(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    _config_option(parser, quiet)
    parser.add_argument("--model", metavar="NAME|PATH", default=_default(quiet, None),
                        help="whisper model: a name (tiny.en, base.en, ...) or a ggml file (default: asr.model)")
    parser.add_argument("--threads", type=int, metavar="N", default=_default(quiet, None),
                        help="decoder threads (default: asr.threads)")


def _listen_options(parser: argparse.ArgumentParser, quiet: bool) -> None:
    parser.add_argument("--mode", choices=("assistant", "transcribe"), default=_default(quiet, "assistant"),
                        help="assistant: answer commands (default); transcribe: only show what it hears")
    parser.add_argument("--events", choices=("console", "jsonl"), default=_default(quiet, "console"),
                        help="console: a live line (default); jsonl: one JSON event per line on stdout")
    parser.add_argument("--input", metavar="FILE", default=_default(quiet, None),
                        help="play a file through the pipeline instead of the microphone")
    parser.add_argument("--fast", action="store_true", default=_default(quiet, False),
                        help="with --input: as fast as it can go, not in real time")
    parser.add_argument("--device", default=_default(quiet, None),
                        help="input device: index or part of its name (default: audio.device)")
    parser.add_argument("--wake-word", choices=("none",) + WAKE_WORDS, metavar="NAME", default=_default(quiet, None),
                        help="listen for one command after this wake word: " + ", ".join(WAKE_WORDS) +
                        "; none = always listening (default: wake.word)")
    parser.add_argument("--push-to-talk", action="store_true", default=_default(quiet, False),
                        help="pressing Enter opens the microphone for one command (with or without a wake word)")
    _model_options(parser, quiet)


def _load_config(args: argparse.Namespace) -> Config:
    """The configuration, with what the command line overrides replaced (and checked again)."""
    config = config_mod.load(getattr(args, "config", None))
    asr, audio, wake = {}, {}, {}
    if getattr(args, "model", None):
        asr["model"] = args.model
    if getattr(args, "threads", None):
        asr["threads"] = args.threads
    device = getattr(args, "device", None)
    if device is not None:
        audio["device"] = int(device) if device.isdigit() else device
    if getattr(args, "wake_word", None) is not None:
        wake["word"] = args.wake_word
    try:
        return replace(config, asr=replace(config.asr, **asr), audio=replace(config.audio, **audio),
                       wake=replace(config.wake, **wake))
    except ConfigError as e:
        raise ConfigError(f"command line: {e}") from None


# --- listen -----------------------------------------------------------------------------------


def cmd_listen(args: argparse.Namespace) -> int:
    config = _load_config(args)
    from .asr.models import load_engine
    from .pipeline.app import listen

    return listen(config, lambda config: load_engine(config.asr), input=args.input, fast=args.fast,
                  mode=args.mode, events=args.events, push_to_talk=args.push_to_talk)


# --- transcribe -------------------------------------------------------------------------------


def cmd_transcribe(args: argparse.Namespace) -> int:
    config = _load_config(args)
    from .asr.models import load_engine
    from .asr.subtitles import render
    from .audio import SAMPLE_RATE, load_audio

    audio = load_audio(args.file)  # before the model: a bad file fails fast
    engine = load_engine(config.asr)
    max_chars = 84 if args.format in ("srt", "vtt") else 0
    with _Progress(args.no_progress or audio.size < 30 * SAMPLE_RATE, Path(args.file).name) as progress:
        transcript = engine.transcribe(audio, progress=progress, max_chars=max_chars)
    out = render(transcript, args.format)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0


class _Progress:
    """A tqdm bar in seconds of audio on stderr, or nothing."""

    def __init__(self, off: bool, label: str):
        self.off, self.label = off, label
        self.bar: Any = None  # a tqdm bar, made when the first progress arrives

    def __enter__(self) -> Optional[Callable[[float, float], None]]:
        if self.off:
            return None
        from tqdm import tqdm

        def update(done: float, total: float) -> None:
            if self.bar is None:
                self.bar = tqdm(total=round(total, 1), desc=self.label, unit="s audio", file=sys.stderr)
            self.bar.update(round(done - self.bar.n, 1))

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


# --- models, devices --------------------------------------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from .asr import models

    if args.action == "convert":
        from .asr.convert import convert

        src = Path(args.ct2_dir)
        out = Path(args.out) if args.out else models.cache_dir() / f"ggml-{src.name}.bin"
        info = convert(src, out, progress=models._progress_bar("convert"))
        print(f"wrote {out} ({info.n_tensors} tensors, {info.n_audio_layer} layers, "
              f"width {info.n_audio_state}, vocabulary {info.n_vocab})")
        return 0
    print(f"model cache: {models.cache_dir()}")
    found = models.list_models()
    for m in found:
        print(f"  {m.name:16} {m.source:40} {m.path}")
    print("other names (downloaded on first use when online): " +
          ", ".join(n for n in models.known_names() if n not in {m.name for m in found}))
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from .audio.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no input devices found")
    for d in devices:
        print(d)
    return 0


# --- intents ----------------------------------------------------------------------------------


def _intents_actions(parser: argparse.ArgumentParser) -> None:
    _config_option(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the intents, their handlers and a template each")
    _config_option(listing)
    test = actions.add_parser("test", help="match a sentence and run its handler")
    test.add_argument("text", nargs="+", help="what was said")
    test.add_argument("--json", action="store_true", help='print {"intent", "slots", "reply"} as JSON')
    test.add_argument("--match-only", action="store_true", help="match without running the handler")
    _config_option(test)


def intents_main(args: List[str], config: Union[Config, IntentsConfig, None] = None,
                 out: Optional[TextIO] = None) -> int:
    """`intents ARGS` with a configuration in hand (tests, embedding): list, or test a sentence
    (--json prints exactly {"intent": name or null, "slots": {...}, "reply": "..."}). Returns
    0 when listed cleanly or understood and handled, 1 when not understood, 2 for a usage error
    or a broken pack (list: the problems are printed; test: an IntentError is raised)."""
    parser = argparse.ArgumentParser(prog=f"{PROG} intents", description="Inspect and try the intents.")
    _intents_actions(parser)
    try:
        ns = parser.parse_args(args[1:] if args[:1] == ["intents"] else args)
    except SystemExit as e:  # argparse exits on --help and on errors; this returns instead
        return e.code if isinstance(e.code, int) else 2
    return _run_intents(ns, config if config is not None else config_mod.load(), out or sys.stdout)


def _run_intents(ns: argparse.Namespace, config: Union[Config, IntentsConfig], out: TextIO) -> int:
    from .intents.dispatcher import Dispatcher

    dispatcher = Dispatcher.from_config(config, strict=ns.action == "test")
    try:
        if ns.action == "list":
            return _list(dispatcher, out)
        return _test(dispatcher, " ".join(ns.text), ns.json, ns.match_only, out)
    finally:
        dispatcher.close()


def _list(dispatcher: Any, out: TextIO) -> int:
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
    return 2 if dispatcher.errors else 0


def _answered_by(dispatcher: Any, name: str) -> str:
    if name in dispatcher.handler_sources:
        return str(dispatcher.handler_sources[name])
    spec = dispatcher.specs.get(name)
    if spec is not None and (spec.command is not None or spec.type == "command"):
        return f"command {spec.command or '{command}'}"
    if spec is not None and spec.reply is not None:
        return "fixed reply"
    return "NO HANDLER"


def _test(dispatcher: Any, text: str, as_json: bool, match_only: bool, out: TextIO) -> int:
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


# --- config -----------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "init":
        return _config_init(args.force)
    return _config_show(getattr(args, "config", None))


def _config_show(explicit: Optional[str]) -> int:
    """Where each file is and which is in use. A config that does not load is shown, then
    reported (exit 2): this is where a person looks when it is broken."""
    from .asr.models import cache_dir
    from .intents.packs import BUILT_IN, pack_folder

    in_use, user = config_mod.locate(explicit), config_mod.user_config()
    user_intents = user.parent / "intents"
    rows = [("default config", config_mod.DEFAULT_PATH, "in use" if in_use == config_mod.DEFAULT_PATH else ""),
            ("user config", user, "in use" if in_use == user else
             "" if user.is_file() else f"not there: `{PROG} config init` writes it")]
    if explicit is not None:
        rows.append(("--config", in_use, "in use"))
    error = None
    try:
        config: Optional[Config] = config_mod.load(explicit)
    except ConfigError as e:
        config, error = None, e
    packs = [(BUILT_IN, "built-in, always loaded")]
    if config is not None:
        base = in_use.resolve().parent
        for entry in config.intents.paths:
            pack = pack_folder(entry, base)
            packs.append((pack, "intents.paths" + ("" if pack.is_dir() else ", NOT THERE")))
    loaded = any(folder.resolve() == user_intents.resolve() for folder, _ in packs)
    rows.append(("user intents", user_intents, ("loaded" if loaded else "not in intents.paths") +
                 ("" if user_intents.is_dir() else ", not there")))
    rows += [("intent packs" if i == 0 else "", folder, note) for i, (folder, note) in enumerate(packs)]
    rows.append(("model cache", cache_dir(), ""))
    for label, path, note in rows:
        print(f"{label:17} {path}" + (f"  ({note})" if note else ""))
    if error is not None:
        raise error
    return 0


def _config_init(force: bool) -> int:
    from .intents.packs import pack_folder

    target = config_mod.user_config()
    if target.exists() and not force:
        raise UsageError(f"{target} is there already; `{PROG} config init --force` overwrites it")
    text = config_mod.user_copy()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    paths = config_mod.load(target).intents.paths
    print(f"wrote {target}: a commented copy of the defaults, with intents.paths: {paths}")
    for path in paths:
        folder = pack_folder(path, target.parent)
        if folder.is_dir():
            print(f"kept {folder}/ (it is there already)")
        else:
            folder.mkdir(parents=True)
            print(f"made {folder}/ for your intent packs (empty: put *.yaml templates and *.py handlers in it)")
    return 0
