from assistant import Reply, handler


@handler("Stop")
def stop(intent, slots, ctx):
    return Reply("", {"stop": True})
