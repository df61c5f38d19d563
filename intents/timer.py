"""Timer intents. The timers themselves live in ctx.timers (assistant.intents.timers.Timers),
whose thread announces a finished timer through the on_done hook."""

from assistant import Reply, handler
from assistant.intents.timers import format_duration


def _seconds(slots):
    """The duration said, from the slots of <duration> in timer.yaml."""
    return (slots.get("hours", 0) * 3600 + slots.get("minutes", 0) * 60
            + slots.get("seconds", 0) + slots.get("extra_seconds", 0))


@handler("TimerStart")
def start(intent, slots, ctx):
    seconds = _seconds(slots)
    name = slots.get("name")
    if seconds <= 0:
        return Reply("For how long? Say, for example, set a timer for five minutes.", {"need": "duration"})
    timer = ctx.timers.start(seconds, name)
    what = f"{name.capitalize()} timer" if name else "Timer"
    return Reply(
        f"{what} set for {format_duration(seconds)}.",
        {"timer": {"id": timer.id, "name": timer.name, "duration_s": timer.duration_s}},
    )


@handler("TimerStatus")
def status(intent, slots, ctx):
    name = slots.get("name")
    timers = [t for t in ctx.timers.active() if name is None or (t.name or "").casefold() == name.casefold()]
    if not timers:
        return Reply(f"There is no {name} timer." if name else "There are no timers running.", {"timers": []})
    parts = [f"{format_duration(ctx.timers.left(t))} left on your {t.label}" for t in timers]
    data = {"timers": [{"name": t.name, "remaining_s": round(ctx.timers.left(t), 1)} for t in timers]}
    if len(parts) == 1:
        return Reply(f"{parts[0][0].upper()}{parts[0][1:]}.", data)
    return Reply(f"You have {len(parts)} timers: " + "; ".join(parts) + ".", data)


@handler("TimerCancel")
def cancel(intent, slots, ctx):
    name = slots.get("name")
    duration = _seconds(slots)
    active = ctx.timers.active()
    if slots.get("all"):
        gone = ctx.timers.cancel_all()
        return Reply(f"Cancelled {_count(len(gone))}." if gone else "There are no timers to cancel.",
                     {"cancelled": len(gone)})
    if name:
        targets = [t for t in active if (t.name or "").casefold() == name.casefold()]
    elif duration:
        targets = [t for t in active if abs(t.duration_s - duration) < 0.5][:1]
    elif len(active) == 1:
        targets = active
    elif active:
        return Reply(f"You have {len(active)} timers. Which one? Or say cancel all timers.",
                     {"cancelled": 0, "need": "name"})
    else:
        return Reply("There are no timers to cancel.", {"cancelled": 0})
    if not targets:
        return Reply("I couldn't find that timer.", {"cancelled": 0})
    for t in targets:
        ctx.timers.cancel_timer(t)
    return Reply(f"Cancelled your {targets[0].label}.", {"cancelled": len(targets)})


def _count(n):
    return "1 timer" if n == 1 else f"{n} timers"
