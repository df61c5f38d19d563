"""From a transcript to an intent, a handler and a reply.

- dispatcher.py: Dispatcher, the facade: match(text), handle(text, context), vocabulary_prompt();
- packs.py: intent packs (YAML templates + Python handlers), loaded and merged;
- templates.py: the one reading of hassil's templates, shared by fuzzy.py and asr/grammar;
- normalize.py, numbers.py: a transcript's plain form, and the number words it uses;
- match.py: hassil's exact match, then the fuzzy fallback (fuzzy.py);
- handlers.py: running a handler with a timeout, allow-listed commands, fixed replies;
- vocabulary.py: whisper's initial prompt from the intents' lists;
- timers.py: the timers the timer intents start.
"""
