from assistant import Reply, handler


@handler("Repeat")
def repeat(intent, slots, ctx):
    # The dispatcher keeps ctx.last_reply: the last non-empty reply it gave.
    return Reply(ctx.last_reply or "I haven't said anything yet.", {"repeat": True})
