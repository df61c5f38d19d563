"""The listening pipeline, one module per thread in the order data flows:

    listener.py   source -> gate -> VAD -> decoder jobs (the Source protocol)
    gates.py      what the VAD hears: AlwaysOpenGate, HotwordGate (the Gate interface)
    decoder.py    every whisper call, one typed job at a time
    responder.py  final -> intent -> action -> reply
    speaker.py    the replies, spoken one after another
    sinks.py      the display: ConsoleLine, JsonLines (the Sink protocol)
    events.py     the event contract
    app.py        the composition root: build(), Pipeline, listen()
"""
