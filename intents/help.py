from assistant import Reply, handler


@handler("Help")
def help_(intent, slots, ctx):
    # ctx.intents: intent name -> description, from the YAML (filled in by the dispatcher).
    things = list(dict.fromkeys(d for d in ctx.intents.values() if d))
    if not things:
        return Reply("I don't know any commands yet.", {"intents": []})
    listed = things[0] if len(things) == 1 else ", ".join(things[:-1]) + " and " + things[-1]
    return Reply(f"I can {listed}.", {"intents": list(ctx.intents)})
