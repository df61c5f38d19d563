"""Answers from the local clock: no network, nothing to configure."""

from datetime import datetime

from assistant import Reply, handler


@handler("GetTime")
def tell_time(intent, slots, ctx):
    now = datetime.now()
    hour = now.hour % 12 or 12  # spoken clocks are 12-hour
    half = "AM" if now.hour < 12 else "PM"
    return Reply(f"It is {hour}:{now.minute:02d} {half}.", {"time": now.isoformat(timespec="seconds")})


@handler("GetDate")
def tell_date(intent, slots, ctx):
    now = datetime.now()
    return Reply(f"Today is {now:%A}, {now:%B} {now.day}, {now.year}.", {"date": now.date().isoformat()})


@handler("GetWeekday")
def tell_weekday(intent, slots, ctx):
    now = datetime.now()
    return Reply(f"Today is {now:%A}.", {"weekday": now.strftime("%A"), "date": now.date().isoformat()})
