"""Answering a matched intent: its Python handler, else the allow-listed command or the fixed
reply its YAML declares.

Handlers run in a worker thread with a timeout. A handler that raises, hangs, or returns
nonsense is logged and reported as an Outcome without a reply; nothing here raises to the
dispatcher. Commands never run through a shell.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence

from ..config import IntentsConfig
from .packs import Context, Handler, IntentSpec, Reply

_LOGGER = logging.getLogger(__name__)

__all__ = ["Outcome", "handler_for", "run_command", "run_handler"]


@dataclass(frozen=True)
class Outcome:
    """How a handler ended: "ok" with its reply, or "failed" / "timeout" without one."""

    status: str  # "ok" | "failed" | "timeout"
    reply: Optional[Reply] = None


def handler_for(intent: str, handlers: Mapping[str, Handler], specs: Mapping[str, IntentSpec]) -> Optional[Handler]:
    """A Python handler, else the command or fixed reply the YAML declares; None: nothing answers."""
    if intent in handlers:
        return handlers[intent]
    spec = specs.get(intent)
    if spec is None:
        return None
    if spec.command is not None or spec.type == "command":
        return lambda name, slots, ctx: _command_handler(spec, slots, ctx)
    if spec.reply is not None:
        reply = spec.reply
        return lambda name, slots, ctx: Reply(_fill(reply, slots))
    return None


def run_handler(fn: Handler, intent: str, slots: Dict[str, Any], ctx: Context, timeout: float) -> Outcome:
    """fn(intent, slots, ctx) in a worker thread, given timeout seconds (0: no limit). The worker
    is a daemon: a handler that never returns is abandoned, not killed (Python cannot)."""
    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(intent, slots, ctx)
        except BaseException as e:  # report everything, even SystemExit, instead of dying
            box["error"] = e

    worker = threading.Thread(target=run, name=f"intent-{intent}", daemon=True)
    worker.start()
    worker.join(timeout if timeout > 0 else None)
    if worker.is_alive():
        _LOGGER.error("handler for '%s' ran past %.1f s; answered with the failed reply", intent, timeout)
        return Outcome("timeout")
    if "error" in box:
        error = box["error"]
        _LOGGER.error("handler for '%s' raised %s: %s", intent, type(error).__name__, error,
                      exc_info=(type(error), error, error.__traceback__))
        return Outcome("failed")
    value = box.get("value")
    reply = _as_reply(value)
    if reply is None:
        _LOGGER.error("handler for '%s' returned %r, not a Reply or str", intent, value)
        return Outcome("failed")
    return Outcome("ok", reply)


def _as_reply(value: Any) -> Optional[Reply]:
    if isinstance(value, Reply):
        return Reply(str(value.text), dict(value.data or {}))
    if isinstance(value, str):
        return Reply(value)
    if value is None:
        return Reply("")
    return None


# -- commands ----------------------------------------------------------------------------------


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
        base = list(shlex.split(base))  # split like a shell would, but nothing is run by one
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
