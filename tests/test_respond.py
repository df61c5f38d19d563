"""The responder stage with the real dispatcher and the real speaker (through PulseAudio)."""

from __future__ import annotations

import time

import pytest

from assistant import config as config_mod
from assistant.pipeline import events as ev
from assistant.intents.dispatcher import Dispatcher
from assistant.pipeline.responder import Responder
from assistant.pipeline.speaker import Speaker


def wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def responder(pulse_audio, tmp_path):
    config = config_mod.load()
    speaker = Speaker(config.speaker)
    dispatcher = Dispatcher.from_config(config)
    events = []
    r = Responder(dispatcher, speaker, events.append)
    r.start()
    yield r, speaker, events
    r.stop()
    r.join(2)
    speaker.close()
    dispatcher.close()


def final(text):
    return ev.Final(t=1.0, text=text, latency_ms=0.0)


def test_stop_silences_a_long_reply_at_once(responder):
    r, speaker, events = responder
    r.submit(final("What can you do?"))  # the help reply takes several seconds to say
    assert wait(lambda: any(isinstance(e, ev.Reply) for e in events))
    assert speaker.speaking
    time.sleep(0.5)
    r.submit(final("Stop."))
    start = time.monotonic()
    assert wait(lambda: not speaker.speaking, 2.0)
    took = time.monotonic() - start
    assert took < 0.3, f"speech went on {took:.2f} s after 'stop'"
    names = [e.name for e in events if isinstance(e, ev.Intent)]
    assert names == ["Help", "Stop"]
    assert len([e for e in events if isinstance(e, ev.Reply)]) == 1  # stop says nothing


def test_unknown_speech_and_a_failing_handler_are_answered(responder, tmp_path):
    r, speaker, events = responder
    r.submit(final("The weather is nice today."))
    assert wait(lambda: any(isinstance(e, ev.Reply) for e in events))
    intent = next(e for e in events if isinstance(e, ev.Intent))
    assert intent.name is None
    reply = next(e for e in events if isinstance(e, ev.Reply))
    assert reply.text == config_mod.IntentsConfig().not_understood
    # a handler that raises: logged, answered with the apology, and the stage goes on
    r.dispatcher.handlers["GetTime"] = lambda intent, slots, ctx: 1 / 0
    r.submit(final("What time is it?"))
    assert wait(lambda: len([e for e in events if isinstance(e, ev.Reply)]) == 2)
    assert [e for e in events if isinstance(e, ev.Reply)][-1].text == config_mod.IntentsConfig().failed
    r.submit(final("What is two plus two?"))
    assert wait(lambda: len([e for e in events if isinstance(e, ev.Reply)]) == 3)
    assert "4" in [e for e in events if isinstance(e, ev.Reply)][-1].text


def test_whispers_text_for_noise_is_not_answered(responder):
    """tiny.en writes "you" or "Thank you." for a cough or a burst of noise: no intent, no apology."""
    r, speaker, events = responder
    for text in ("you", " Thank you.", "Bye!"):  # the queue holds 4
        r.submit(final(text))
    r.submit(final("What is two plus two?"))
    assert wait(lambda: any(isinstance(e, ev.Reply) for e in events))
    assert [e.name for e in events if isinstance(e, ev.Intent)] == ["Calculate"]
    assert [e.text for e in events if isinstance(e, ev.Reply)] == ["2 plus 2 is 4."]
