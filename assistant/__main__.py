"""Command line: `python -m assistant [listen options] | transcribe | models | devices | intents`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from .errors import AssistantError, UsageError
from . import config as config_mod

SUBCOMMANDS = ("transcribe", "models", "devices", "intents", "listen")

DESCRIPTION = """\
An offline voice assistant: whisper.cpp speech recognition, webrtcvad utterances,
intents with spoken replies.

  python -m assistant                      listen to the microphone and answer
  python -m assistant --mode transcribe    only show what it hears
  python -m assistant --wake-word alexa    wait for "alexa", then take one command
  python -m assistant transcribe FILE      transcribe a file (text, json, srt, vtt)
  python -m assistant models               list models; `models convert CT2_DIR` converts one
  python -m assistant devices              list input devices
  python -m assistant intents list|test    list intents, or test one sentence
"""


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "listen"
    if argv and argv[0] in SUBCOMMANDS:
        argv = argv[1:]
    try:
        return COMMANDS[command](argv)
    except KeyboardInterrupt:
        return 0
    except AssistantError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: config.yaml)")
    parser.add_argument("--model", metavar="NAME|PATH", help="whisper model: a name (tiny.en, base.en, ...) "
                        "or a ggml file (default: asr.model from the config)")
    parser.add_argument("--threads", type=int, metavar="N", help="decoder threads (default: asr.threads)")


def _load_config(args) -> config_mod.Config:
    from dataclasses import replace

    config = config_mod.load(args.config)
    if getattr(args, "model", None):
        config = replace(config, asr=replace(config.asr, model=args.model))
    if getattr(args, "threads", None):
        config = replace(config, asr=replace(config.asr, threads=args.threads))
    return config


def load_engine(config: config_mod.Config):
    from .asr.models import resolve
    from .asr.engine import Engine

    return Engine.from_config(config.asr, resolve(config.asr.model))


# --- transcribe ---------------------------------------------------------------------------

def cmd_transcribe(argv: List[str]) -> int:
    from .asr.subtitles import FORMATS

    parser = argparse.ArgumentParser(prog="python -m assistant transcribe",
                                     description="Transcribe an audio file (WAV, FLAC or OGG, any rate).")
    parser.add_argument("file", help="audio file")
    parser.add_argument("--format", "-f", choices=FORMATS, default="text", help="output format (default: text)")
    parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _common(parser)
    args = parser.parse_args(argv)
    config = _load_config(args)

    from .audio import load_audio
    from .asr.subtitles import render

    audio = load_audio(args.file)  # before the model: a bad file fails fast
    engine = load_engine(config)
    max_chars = 84 if args.format in ("srt", "vtt") else 0
    with _progress(args.no_progress or audio.size < 30 * 16000, Path(args.file).name) as progress:
        transcript = engine.transcribe(audio, progress=progress, max_chars=max_chars)
    out = render(transcript, args.format)
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
    else:
        sys.stdout.write(out)
    return 0


class _progress:
    """A tqdm bar in seconds of audio on stderr, or nothing."""

    def __init__(self, off: bool, label: str):
        self.off, self.label, self.bar = off, label, None

    def __enter__(self):
        if self.off:
            return None
        from tqdm import tqdm

        def update(done: float, total: float) -> None:
            if self.bar is None:
                self.bar = tqdm(total=round(total, 1), desc=self.label, unit="s audio", file=sys.stderr)
            self.bar.update(round(done - self.bar.n, 1))

        return update

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


# --- models -------------------------------------------------------------------------------

def cmd_models(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant models",
                                     description="List whisper models, or convert a CTranslate2 one.")
    sub = parser.add_subparsers(dest="action")
    sub.add_parser("list", help="list the models it can use and where they live (default)")
    conv = sub.add_parser("convert", help="convert a CTranslate2 (faster-whisper) model folder to ggml")
    conv.add_argument("ct2_dir", help="folder with model.bin, config.json, vocabulary")
    conv.add_argument("out", nargs="?", help="output ggml file (default: the model cache, ggml-NAME.bin)")
    args = parser.parse_args(argv)

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
    for m in models.list_models():
        print(f"  {m.name:16} {m.source:40} {m.path}")
    print("other names (downloaded on first use when online): " +
          ", ".join(n for n in models.known_names() if n not in {m.name for m in models.list_models()}))
    return 0


# --- devices, intents, listen ---------------------------------------------------------------

def cmd_devices(argv: List[str]) -> int:
    argparse.ArgumentParser(prog="python -m assistant devices", description="List audio input devices.").parse_args(argv)
    from .audio.sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no input devices found")
    for d in devices:
        print(d)
    return 0


def cmd_intents(argv: List[str]) -> int:
    from .intents import cli as intents_cli

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    known, rest = parser.parse_known_args(argv)
    return intents_cli.main(rest, config_mod.load(known.config))


def cmd_listen(argv: List[str]) -> int:
    from .pipeline.app import listen
    from .wake.detector import WAKE_WORDS

    parser = argparse.ArgumentParser(prog="python -m assistant", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("assistant", "transcribe"), default="assistant",
                        help="assistant: answer commands (default); transcribe: only show what it hears")
    parser.add_argument("--events", choices=("console", "jsonl"), default="console",
                        help="console: a live line (default); jsonl: one JSON event per line on stdout")
    parser.add_argument("--input", metavar="FILE", help="play a file through the pipeline instead of the microphone")
    parser.add_argument("--fast", action="store_true", help="with --input: as fast as it can go, not in real time")
    parser.add_argument("--device", help="input device: index or part of its name (default: audio.device)")
    parser.add_argument("--wake-word", choices=("none",) + WAKE_WORDS, metavar="NAME",
                        help="listen for one command after this wake word: " + ", ".join(WAKE_WORDS) +
                        "; none = always listening (default: wake.word)")
    parser.add_argument("--push-to-talk", action="store_true",
                        help="pressing Enter opens the microphone for one command (with or without a wake word)")
    _common(parser)
    args = parser.parse_args(argv)
    config = _load_config(args)
    from dataclasses import replace

    if args.device is not None:
        config = replace(config, audio=replace(config.audio, device=int(args.device) if args.device.isdigit() else args.device))
    if args.wake_word is not None:
        config = replace(config, wake=replace(config.wake, word=args.wake_word))
    return listen(config, load_engine, input=args.input, fast=args.fast, mode=args.mode, events=args.events,
                  push_to_talk=args.push_to_talk)


COMMANDS = {
    "transcribe": cmd_transcribe,
    "models": cmd_models,
    "devices": cmd_devices,
    "intents": cmd_intents,
    "listen": cmd_listen,
}


if __name__ == "__main__":
    sys.exit(main())
