"""Speech to text: the whisper.cpp engine, its binding, models, the intents grammar, outputs."""
