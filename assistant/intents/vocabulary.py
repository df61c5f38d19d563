"""Whisper's initial prompt: the words the intents expect, in sentences.

Sentences, not a bare list of words: a bare list made tiny.en continue it on short audio
("Serta, tea, coffee, pizza") and pull other words toward it (benchmarks/README-intents.md).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping

__all__ = ["vocabulary_prompt"]


def vocabulary_prompt(lists: Mapping[str, Any], max_chars: int = 224) -> str:
    """For each of the intents' lists (hassil's `lists:`, merged; timer names, command names...)
    its `prompt:` sentences if the list has them, then "Timer names: pasta, eggs, ...", as many as
    fit in max_chars. Lists with `vocabulary: false` are left out."""
    prompt = ""

    def add(text: str) -> bool:
        nonlocal prompt
        longer = f"{prompt} {text}".strip()
        if len(longer) > max_chars:
            return False
        prompt = longer
        return True

    for name, body in lists.items():
        if body.get("vocabulary", True) is False:
            continue
        words: Dict[str, str] = {}
        for value in body.get("values") or []:
            text = value if isinstance(value, str) else value.get("out")
            if isinstance(text, str) and text.strip() and not re.search(r"[(){}\[\]<>|]", text):
                words.setdefault(text.strip().casefold(), text.strip())
        if not words:
            continue
        examples = body.get("prompt") or []
        for sentence in [examples] if isinstance(examples, str) else examples:
            add(str(sentence).strip())
        label = name.replace("_", " ").strip().capitalize()
        label = label if label.endswith("s") else label + "s"
        values = list(words.values())
        for n in range(len(values), 0, -1):  # as many values as fit
            if add(f"{label}: {', '.join(values[:n])}."):
                break
    return prompt
