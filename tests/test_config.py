"""The configuration: checked once, when read, one line naming the key and the file; frozen;
found in --config, the user's folder or the package; intents.paths from the config's folder."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from asr import ROOT, SPEECH, run_cli

from assistant import cli
from assistant import config as config_mod
from assistant.config import (
    AsrConfig,
    AudioConfig,
    Config,
    IntentsConfig,
    PartialsConfig,
    SpeakerConfig,
    VadConfig,
    WakeConfig,
    from_dict,
    load,
)
from assistant.errors import ConfigError, IntentError
from assistant.intents.dispatcher import Dispatcher
from assistant.intents.packs import BUILT_IN

CLIP = str(SPEECH / "LJ001-0001.wav")
HEAVY = ("numpy", "hassil", "pywhispercpp", "pymicro_wakeword", "webrtcvad", "sounddevice", "assistant.asr")

PACK = """\
language: en
intents:
  Weather:
    reply: "Always sunny."
    data:
      - sentences: ["what is the weather"]
"""


def one_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- every range and choice, checked when the file is read ------------------------------------

BAD = [
    ("asr", "threads", -1), ("asr", "model", " "), ("asr", "audio_ctx_floor", 0), ("asr", "audio_ctx_floor", 2000),
    ("asr", "audio_ctx_margin", -5), ("asr", "window_s", 31.0), ("asr", "window_s", 0.5),
    ("asr", "grammar_max_forced", -1.0), ("asr", "grammar_max_forced_per_word", float("nan")),
    ("asr", "grammar_beam", 0), ("asr", "min_logprob", 0.5),
    ("audio", "sample_rate", 44100), ("audio", "queue_frames", 0), ("audio", "block_ms", 0), ("audio", "device", -1),
    ("audio", "device", ""),
    ("vad", "frame_ms", 25), ("vad", "aggressiveness", 4), ("vad", "aggressiveness", -1), ("vad", "preroll_ms", -1),
    ("vad", "hangover_ms", 20000), ("vad", "max_utterance_s", 0.0), ("vad", "max_utterance_s", float("inf")),
    ("vad", "max_utterance_s", 60.0), ("vad", "min_utterance_ms", -250),
    ("partials", "interval_s", 0.0), ("partials", "interval_s", -0.5),
    ("intents", "fuzzy_threshold", 1.5), ("intents", "fuzzy_margin", -0.1), ("intents", "handler_timeout_s", 0),
    ("intents", "handler_timeout_s", float("inf")), ("intents", "paths", [""]), ("intents", "commands", {"x": []}),
    ("speaker", "engine", "festival"), ("speaker", "rate", 0), ("speaker", "tail_ms", -1),
    ("speaker", "queue_size", 0), ("speaker", "device", -2),
    ("wake", "word", "hey_siri"), ("wake", "sensitivity", {"alexa": 1.5}), ("wake", "sensitivity", {"alexa": 0}),
    ("wake", "sensitivity", {"computer": 0.5}), ("wake", "refractory_s", -1.0), ("wake", "listen_timeout_s", 0),
    ("wake", "follow_up_s", -1), ("wake", "verify", ["siri"]), ("wake", "ack_sound", "/no/such/sound.wav"),
]


@pytest.mark.parametrize("section, key, value", BAD, ids=[f"{s}.{k}={v!r}" for s, k, v in BAD])
def test_a_bad_value_is_one_line_naming_the_key_and_the_file(tmp_path, section, key, value):
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ConfigError) as error:
        load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and f"{section}.{key}" in message and "\n" not in message, message


def test_the_example_of_the_issue_is_reported_before_anything_loads(tmp_path):
    """vad.frame_ms: 25 used to be a traceback after the model had loaded. Now config.load
    rejects it, and the process has imported none of the heavy parts when it does."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("vad:\n  frame_ms: 25\n")
    r = run_cli("--mode", "transcribe", "--input", CLIP, "--config", str(bad))
    line = one_line(r, str(bad), "vad.frame_ms", "10, 20 or 30", "not 25")
    assert line == f"error: {bad}: vad.frame_ms must be 10, 20 or 30 (what webrtcvad takes), not 25"
    probe = ("import sys; from assistant.cli import main; code = main(sys.argv[1:]); "
             f"print(code, sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    r = subprocess.run([sys.executable, "-c", probe, "--mode", "transcribe", "--input", CLIP, "--config", str(bad)],
                       capture_output=True, text=True, timeout=60, cwd=str(ROOT), check=False)
    assert r.stdout.strip() == "2 []", (r.stdout, r.stderr)


def test_sections_check_themselves_when_made_in_code():
    with pytest.raises(ConfigError, match=r"^vad\.frame_ms must be 10, 20 or 30 \(what webrtcvad takes\), not 25$"):
        VadConfig(frame_ms=25)
    with pytest.raises(ConfigError, match=r"^wake\.sensitivity\.alexa "):
        WakeConfig(sensitivity={"alexa": 1.0})
    with pytest.raises(ConfigError, match=r"speaker\.engine"):
        dataclasses.replace(SpeakerConfig(), engine="espeak")  # replace checks again
    for section in (AsrConfig, AudioConfig, VadConfig, PartialsConfig, IntentsConfig, SpeakerConfig, WakeConfig):
        section()  # the defaults pass their own checks


def test_wrong_types_and_unknown_keys_name_the_key_and_the_file(tmp_path):
    path = tmp_path / "my.yaml"
    for text, needle in [("asr:\n  modle: tiny.en\n", "asr.modle"), ("vad:\n  hangover_ms: long\n", "vad.hangover_ms"),
                         ("intents:\n  paths: mine\n", "intents.paths"), ("intents:\n  paths: [1]\n", "intents.paths"),
                         ("wake:\n  sensitivity: {alexa: high}\n", "wake.sensitivity"),
                         ("wake:\n  verify: alexa\n", "wake.verify"), ("voice: {}\n", "voice"),
                         ("vad: 3\n", "vad"), ("path: x\n", "path")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as error:
            load(path)
        assert str(error.value).startswith(f"{path}: ") and needle in str(error.value), str(error.value)


def test_random_values_give_a_valid_config_or_one_line():
    """Whatever a person writes for these keys, the answer is a config whose parts start, or
    one ConfigError line naming the key (never a traceback from deeper down)."""
    import hypothesis

    st = hypothesis.strategies
    from assistant.audio.vad import Segmenter

    values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                       st.text(max_size=8), st.lists(st.integers(-3, 40), max_size=2))
    keys = st.sampled_from([("vad", f.name) for f in dataclasses.fields(VadConfig)] +
                           [("asr", "window_s"), ("asr", "grammar_beam"), ("wake", "word"), ("wake", "refractory_s"),
                            ("speaker", "engine"), ("audio", "block_ms"), ("partials", "interval_s")])

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(st.dictionaries(keys, values, max_size=3))
    def check(settings):
        data: dict = {}
        for (section, key), value in settings.items():
            data.setdefault(section, {})[key] = value
        try:
            config = from_dict(data, source="random.yaml")
        except ConfigError as e:
            message = str(e)
            assert message.startswith("random.yaml: ") and "\n" not in message
            assert any(f"{s}.{k}" in message for s, k in settings), message
            return
        Segmenter(config.vad)  # a config that passed works: the VAD takes it

    check()


# --- frozen; overrides replace ----------------------------------------------------------------


def test_config_is_frozen_and_overrides_replace_it():
    config = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.asr.model = "base.en"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.path = None  # type: ignore[misc]
    args = cli.parser().parse_args(cli._with_command(["--model", "base.en", "--threads", "2", "--device", "3",
                                                      "--wake-word", "alexa"]))
    changed = cli._load_config(args)
    assert (changed.asr.model, changed.asr.threads, changed.audio.device, changed.wake.word) == \
        ("base.en", 2, 3, "alexa")
    assert changed.path == config.path and changed.vad == config.vad
    assert load() == config  # nothing was changed in place


def test_a_bad_override_is_one_line():
    one_line(run_cli("transcribe", CLIP, "--threads", "-3"), "command line", "asr.threads", "-3")
    r = run_cli("--wake-word", "hey_siri")
    assert r.returncode == 2 and "okay_nabu" in r.stderr


def test_listen_is_the_default_command():
    def parse(*argv):
        return cli.parser().parse_args(cli._with_command(list(argv)))

    for args in (parse("--wake-word", "alexa"), parse("listen", "--wake-word", "alexa"), parse()):
        assert args.run is cli.cmd_listen and args.mode == "assistant" and args.events == "console"
    assert parse("--wake-word", "alexa").wake_word == "alexa"
    assert parse("transcribe", "x.wav", "--model", "base.en").run is cli.cmd_transcribe
    assert parse("intents", "--config", "c.yaml", "test", "hi").config == "c.yaml"
    assert parse("intents", "test", "hi", "--config", "c.yaml").config == "c.yaml"


def test_the_help_has_the_listen_options_the_commands_and_examples():
    r = run_cli("--help")
    assert r.returncode == 0
    for word in ("--wake-word", "--push-to-talk", "--input", "transcribe", "models", "devices", "intents",
                 "config init", "examples:"):
        assert word in r.stdout, word


def test_facts_the_config_writes_out_match_the_code():
    from pymicro_wakeword import Model

    from assistant.asr.subtitles import FORMATS

    assert config_mod.WAKE_WORDS == tuple(m.value for m in Model)
    assert cli.FORMATS == FORMATS


# --- which file; config and config init -------------------------------------------------------


@pytest.fixture
def user_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "user-config"
    monkeypatch.setenv("ASSISTANT_CONFIG_DIR", str(folder))
    return folder


def test_lookup_order(user_dir, tmp_path):
    assert config_mod.locate() == config_mod.DEFAULT_PATH and load().path == config_mod.DEFAULT_PATH
    user_dir.mkdir()
    (user_dir / "config.yaml").write_text("asr:\n  threads: 3\n")
    assert load().path == user_dir / "config.yaml" and load().asr.threads == 3
    mine = tmp_path / "mine.yaml"
    mine.write_text("asr:\n  threads: 1\n")
    assert load(mine).asr.threads == 1
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load(tmp_path / "nope.yaml")


def test_config_init_writes_a_commented_copy_and_an_intents_folder(user_dir, tmp_path):
    env = dict(os.environ, ASSISTANT_CONFIG_DIR=str(user_dir))
    r = run_cli("config", env=env)
    assert r.returncode == 0, r.stderr
    assert f"user config       {user_dir / 'config.yaml'}  (not there" in r.stdout, r.stdout
    assert "(in use)" in r.stdout.splitlines()[0]  # the default

    r = run_cli("config", "init", env=env)
    assert r.returncode == 0, r.stderr
    written = user_dir / "config.yaml"
    assert str(written) in r.stdout and str(user_dir / "intents") in r.stdout
    assert (user_dir / "intents").is_dir() and not list((user_dir / "intents").iterdir())
    default = config_mod.DEFAULT_PATH.read_text().splitlines()
    copy = written.read_text().splitlines()
    assert [i for i, (a, b) in enumerate(zip(default, copy)) if a != b] == \
        [next(i for i, line in enumerate(default) if line == "  paths: []")] and len(default) == len(copy)
    ours = load(written)
    assert ours.intents.paths == ["intents"]
    assert dataclasses.replace(ours, intents=IntentsConfig(), path=None) == Config()

    r = run_cli("config", env=env)
    assert f"{written}  (in use)" in r.stdout and f"{user_dir / 'intents'}  (loaded)" in r.stdout, r.stdout
    one_line(run_cli("config", "init", env=env), str(written), "--force")
    written.write_text("# mine\n")
    r = run_cli("config", "init", "--force", env=env)
    assert r.returncode == 0 and written.read_text() != "# mine\n"


def test_config_shows_a_broken_file_then_reports_it(user_dir):
    user_dir.mkdir()
    (user_dir / "config.yaml").write_text("vad:\n  frame_ms: 25\n")
    r = run_cli("config", env=dict(os.environ, ASSISTANT_CONFIG_DIR=str(user_dir)))
    assert "user config" in r.stdout and "model cache" in r.stdout
    one_line(r, "vad.frame_ms")


# --- intents.paths: added to the built-ins, from the config file's folder -----------------------


def test_user_packs_come_from_the_config_folder_not_the_working_directory(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    (home / "mine").mkdir(parents=True)
    (home / "mine" / "weather.yaml").write_text(PACK)
    (elsewhere / "mine").mkdir(parents=True)
    (elsewhere / "mine" / "weather.yaml").write_text(PACK.replace("Always sunny.", "From the working directory."))
    (home / "config.yaml").write_text("intents:\n  paths: [mine]\n")
    monkeypatch.chdir(elsewhere)
    d = Dispatcher.from_config(load(home / "config.yaml"))
    try:
        assert [p.path for p in d.packs] == [BUILT_IN, home / "mine"]
        assert d.handle("what is the weather").reply == "Always sunny."
        assert d.match("what time is it").intent == "GetTime"
    finally:
        d.close()
    r = run_cli("intents", "--config", str(home / "config.yaml"), "test", "what's the weather", cwd=elsewhere)
    assert r.returncode == 0 and "reply: Always sunny." in r.stdout, r.stdout + r.stderr
    with pytest.raises(IntentError, match="relative path"):  # no file, no folder to start from
        Dispatcher.from_config(IntentsConfig(paths=["mine"]))


def test_the_default_config_adds_no_pack():
    assert load(config_mod.DEFAULT_PATH).intents.paths == [] == IntentsConfig().paths
    d = Dispatcher.from_config(load(config_mod.DEFAULT_PATH))
    try:
        assert [p.path for p in d.packs] == [BUILT_IN] and not d.errors
    finally:
        d.close()


@pytest.mark.parametrize("problem", ["missing", "broken"])
def test_a_missing_folder_or_broken_pack_is_exit_2_everywhere(tmp_path, problem):
    """intents list (which still lists what loaded, and every problem), intents test, and the
    assistant itself, which stops before the model loads."""
    if problem == "broken":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "bad.yaml").write_text(
            "intents:\n  Bad:\n    data:\n      - sentences: ['open (the door']\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("intents:\n  paths: [mine]\n")
    needle = "intent folder not found" if problem == "missing" else "bad.yaml"

    r = run_cli("intents", "list", "--config", str(cfg))
    assert r.returncode == 2 and "GetTime" in r.stdout and f"error: {tmp_path / 'mine'}" in r.stdout, r.stdout
    assert needle in r.stdout
    # (the packs' loader also logs each problem, with its detail, before this last line)
    r = run_cli("intents", "test", "what time is it", "--config", str(cfg))
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: ") and needle in r.stderr
    probe = ("import sys; from assistant.cli import main; code = main(sys.argv[1:]); "
             "print(code, 'assistant.asr.libwhisper' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", probe, "--input", CLIP, "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120, cwd=str(ROOT), check=False)
    assert r.stdout.strip() == "2 False", (r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, r.stderr


def test_intent_error_is_one_line_for_a_traceback():
    error = IntentError.of(["x.py: cannot import:\nTraceback (most recent call last):\n  File ...\nImportError: no",
                            "y.yaml: bad"])
    assert str(error) == ("x.py: cannot import: ImportError: no (and 1 more: `python -m assistant intents list` "
                          "shows them all)")
