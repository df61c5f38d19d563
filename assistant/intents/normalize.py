"""Normalise whisper output for intent matching.

Whisper writes the same request many ways: "Set a timer for 5 minutes.",
"set timer for five minutes", "Um, what's the time?". Matching is easier when
they all become one plain form: lower case, no punctuation, no fillers or
polite words, contractions expanded and numbers written as digits
("twenty-five" -> "25", "12 x 7" -> "12 times 7").

Every output token keeps the span of the input it came from, so a slot that
must stay literal (a wildcard such as the text after "echo") can be read back
from the original transcript with its punctuation and case intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from .numbers import ONES_VALUES, SCALES, TENS_VALUES


@dataclass(frozen=True)
class Token:
    """One normalised word and the span [start, end) of the raw text it came from."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Normalized:
    """A transcript and its normalised tokens."""

    raw: str
    tokens: Tuple[Token, ...]

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.tokens)

    def raw_span(self, start: int, end: int) -> str:
        """The raw text behind the characters [start, end) of `text`.

        Punctuation dropped next to the span is given back ("; rm -rf x"), but
        dropped words (fillers, "please") and the sentence's final full stop are not.
        """
        index = _token_indexes(self.tokens, start, end)
        if not index:
            return ""
        first, last = index[0], index[-1]
        lo, hi = self.tokens[first].start, self.tokens[last].end
        floor = self.tokens[first - 1].end if first > 0 else 0
        ceiling = self.tokens[last + 1].start if last + 1 < len(self.tokens) else len(self.raw)
        # Shared spans ("what's" -> "what is") can put the floor past lo.
        floor, ceiling = min(floor, lo), max(ceiling, hi)
        # Punctuation touching a neighbouring word belongs to that word ("echo, hi").
        while floor < lo and not self.raw[floor].isspace():
            floor += 1
        while ceiling > hi and not self.raw[ceiling - 1].isspace():
            ceiling -= 1
        while lo > floor and not self.raw[lo - 1].isalnum():
            lo -= 1
        while hi < ceiling and not self.raw[hi].isalnum():
            hi += 1
        text = self.raw[lo:hi].strip()
        if last + 1 == len(self.tokens):
            text = _SENTENCE_END.sub("", text)
        return text


def normalize(text: str) -> str:
    """The matching form of a transcript: "Um, what's 12 x 7?" -> "what is 12 times 7"."""
    return normalize_tokens(text).text


def normalize_tokens(text: str, strip_polite: bool = True) -> Normalized:
    """Normalise and keep each token's raw span. strip_polite=False keeps
    leading phrases such as "can you" (for templates that contain them)."""
    tokens = _tokenize(text)
    tokens = [t for t in tokens if t.text not in FILLERS]
    tokens = _expand_contractions(tokens)
    tokens = _join_hyphenated(tokens)
    tokens = _numbers(tokens)
    tokens = _symbols(tokens)
    tokens = [Token(ALIASES.get(t.text, t.text), t.start, t.end) for t in tokens]
    # "a hour": whisper's (and people's) article before "hour"; templates say "an hour".
    tokens = [Token("an", t.start, t.end) if t.text == "a" and nxt.text in ("hour", "hours") else t
              for t, nxt in zip(tokens, tokens[1:] + [Token("", 0, 0)])]
    if strip_polite:
        tokens = _strip_phrases(tokens)
    return Normalized(text, tuple(tokens))


def normalize_template(template: str) -> str:
    """Give a hassil sentence template the same spelling normalize() gives speech.

    Only literal words change ("What's" -> "what is", "one" -> "1"); list and
    rule names in {braces} and <angles> are left alone. Users can then write
    templates naturally and still match normalised input.
    """
    out: List[str] = []
    for part in _TEMPLATE_REFS.split(template):
        if _TEMPLATE_REFS.fullmatch(part):
            out.append(part)
        else:
            out.append(_TEMPLATE_WORD.sub(_template_word, part))
    return "".join(out)


# -- tables ---------------------------------------------------------------------------

# Noise words dropped wherever they appear.
FILLERS = frozenset(
    "um umm ummm uh uhh uhm uhmm er err erm hmm hm mm mmm ah ahh please".split()
)

# Phrases dropped at the start (repeatedly: "okay um could you please ...").
LEADING = tuple(
    tuple(p.split())
    for p in [
        "okay", "ok", "hey", "hi", "hello", "so", "well", "like", "oh", "alright",
        "all right", "yeah", "yes", "and", "now",
        "could you", "can you", "would you", "will you", "would you mind",
        "i want you to", "i would like you to", "i need you to", "i would like to",
        "i want to", "i need to", "do you know", "would you be able to",
    ]
)

# Phrases dropped at the end.
TRAILING = tuple(
    tuple(p.split())
    for p in ["thanks", "thank you", "thank you very much", "thanks a lot", "for me", "okay", "ok"]
)

CONTRACTIONS = {
    "what's": "what is", "whats": "what is", "what're": "what are",
    "it's": "it is", "that's": "that is", "there's": "there is", "here's": "here is",
    "how's": "how is", "where's": "where is", "who's": "who is", "when's": "when is",
    "let's": "let us", "i'm": "i am", "can't": "can not", "cannot": "can not",
    "won't": "will not", "shan't": "shall not", "ain't": "is not",
}
# Regular endings, tried after the table ("you're", "that'll", "didn't").
_SUFFIXES = (("n't", " not"), ("'re", " are"), ("'ll", " will"), ("'ve", " have"), ("'d", " would"))

ALIASES = {
    "min": "minutes", "mins": "minutes", "sec": "seconds", "secs": "seconds",
    "hr": "hours", "hrs": "hours", "ok": "okay", "nevermind": "never mind",
}

# -- tokenising -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<symbol>[-+*/×÷=%−])"
)
# Whisper's non-speech annotations, standing alone: [BLANK_AUDIO], (music), *laughs*.
_ANNOTATION = re.compile(r"(?<!\S)(?:\[[^\]]*\]|\([^)]*\)|\*[A-Za-z ]+\*)(?=[\s.,!?]|$)")
_SENTENCE_END = re.compile(r"[.?!,;:]+$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?$")
_TEMPLATE_REFS = re.compile(r"(\{[^}]*\}|<[^>]*>)")
_TEMPLATE_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def is_number(text: str) -> bool:
    return _NUMBER.match(text) is not None


def _tokenize(text: str) -> List[Token]:
    masked = _ANNOTATION.sub(lambda m: " " * len(m.group()), text)
    tokens = []
    for m in _TOKEN.finditer(masked):
        value = m.group()
        if m.lastgroup == "number":
            value = value.replace(",", "")
        elif m.lastgroup == "word":
            value = value.lower().replace("’", "'")
        elif value == "−":
            value = "-"
        tokens.append(Token(value, m.start(), m.end()))
    return tokens


def _split_contraction(word: str) -> Optional[str]:
    if word in CONTRACTIONS:
        return CONTRACTIONS[word]
    for ending, expansion in _SUFFIXES:
        if word.endswith(ending) and len(word) > len(ending):
            return word[: -len(ending)] + expansion
    return None


def _expand_contractions(tokens: Iterable[Token]) -> List[Token]:
    out = []
    for t in tokens:
        expanded = _split_contraction(t.text)
        if expanded is None:
            out.append(t)
        else:
            out.extend(Token(w, t.start, t.end) for w in expanded.split())
    return out


def _join_hyphenated(tokens: List[Token]) -> List[Token]:
    """Drop a hyphen that joins two words ("twenty-five", "ten-minute")."""
    out = []
    for i, t in enumerate(tokens):
        if (
            t.text == "-"
            and 0 < i < len(tokens) - 1
            and tokens[i - 1].end == t.start
            and tokens[i + 1].start == t.end
            and not is_number(tokens[i - 1].text)
        ):
            continue
        out.append(t)
    return out


# -- number words -> digits -------------------------------------------------------------


def _numbers(tokens: List[Token]) -> List[Token]:
    out: List[Token] = []
    i = 0
    while i < len(tokens):
        parsed = _parse_number([t.text for t in tokens], i)
        if parsed is None:
            out.append(tokens[i])
            i += 1
        else:
            value, j = parsed
            out.append(Token(value, tokens[i].start, tokens[j - 1].end))
            i = j
    return _join_split_tens(out)


def _join_split_tens(tokens: List[Token]) -> List[Token]:
    """Whisper sometimes writes "eighty one" as "80 1": a round ten followed by one digit is one number."""
    out: List[Token] = []
    for t in tokens:
        prev = out[-1] if out else None
        if prev is not None and re.fullmatch(r"[2-9]0", prev.text) and re.fullmatch(r"[1-9]", t.text):
            out[-1] = Token(str(int(prev.text) + int(t.text)), prev.start, t.end)
        else:
            out.append(t)
    return out


def _parse_number(words: Sequence[str], i: int) -> Optional[Tuple[str, int]]:
    """Parse number words starting at words[i]; return (digits, index after them)."""
    n = len(words)

    def at(k: int) -> str:
        return words[k] if k < n else ""

    if at(i) in ("a", "an") and (at(i + 1) == "hundred" or at(i + 1) in SCALES):
        total, current, last, j = 0, 1, "unit", i + 1
    elif at(i) in ONES_VALUES or at(i) in TENS_VALUES:
        total, current, last, j = 0, 0, "", i
    else:
        return None

    scale_done = 10 ** 12
    while j < n:
        w = words[j]
        if w in ONES_VALUES:
            v = ONES_VALUES[w]
            if last in ("", "hundred", "scale", "and") or (last == "tens" and 0 < v < 10):
                current, last = current + v, "unit"
            else:
                break
        elif w in TENS_VALUES:
            if last in ("", "hundred", "scale", "and"):
                current, last = current + TENS_VALUES[w], "tens"
            else:
                break
        elif w == "hundred":
            if last in ("unit", "tens") and 0 < current < 100:
                current, last = current * 100, "hundred"
            else:
                break
        elif w in SCALES:
            scale = SCALES[w]
            if last in ("unit", "tens", "hundred") and scale < scale_done and current > 0:
                total, current, last, scale_done = total + current * scale, 0, "scale", scale
            else:
                break
        elif w == "and" and last in ("hundred", "scale") and (
            at(j + 1) in ONES_VALUES or at(j + 1) in TENS_VALUES
        ):
            last = "and"
        elif w == "point" and last in ("unit", "tens", "hundred", "scale") and ONES_VALUES.get(at(j + 1), 10) < 10:
            digits = []
            j += 1
            while ONES_VALUES.get(at(j), 10) < 10:
                digits.append(str(ONES_VALUES[words[j]]))
                j += 1
            return f"{total + current}.{''.join(digits)}", j
        else:
            break
        j += 1
    return str(total + current), j


# -- symbols ------------------------------------------------------------------------------

_SYMBOL_WORDS = {"+": "plus", "*": "times", "×": "times", "/": "divided by", "÷": "divided by", "%": "percent"}


def _symbols(tokens: List[Token]) -> List[Token]:
    """Spell out arithmetic symbols; drop other symbols."""
    out: List[Token] = []
    for i, t in enumerate(tokens):
        prev = out[-1] if out else None
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        prev_num = prev is not None and is_number(prev.text)
        next_num = after is not None and is_number(after.text)
        if t.text in _SYMBOL_WORDS:
            out.extend(Token(w, t.start, t.end) for w in _SYMBOL_WORDS[t.text].split())
        elif t.text == "x" and prev_num and next_num:
            out.append(Token("times", t.start, t.end))
        elif t.text == "-" and prev_num and next_num:
            out.append(Token("minus", t.start, t.end))
        elif t.text == "-" and after is not None and next_num and after.start == t.end and not prev_num:
            # "-5": a negative number. Merged into the next token below.
            out.append(t)
        elif t.text in ("-", "="):
            continue
        elif prev is not None and prev.text == "-" and is_number(t.text):
            out[-1] = Token("-" + t.text, prev.start, t.end)
        else:
            out.append(t)
    return [t for t in out if t.text != "-"]


# -- polite words -------------------------------------------------------------------------


def _strip_phrases(tokens: List[Token]) -> List[Token]:
    changed = True
    while changed and tokens:
        changed = False
        words = [t.text for t in tokens]
        for phrase in LEADING:
            k = len(phrase)
            if tuple(words[:k]) == phrase and len(words) > k:
                tokens, changed = tokens[k:], True
                break
        if changed:
            continue
        for phrase in TRAILING:
            k = len(phrase)
            if tuple(words[-k:]) == phrase and len(words) > k:
                tokens, changed = tokens[:-k], True
                break
    return tokens


# -- templates --------------------------------------------------------------------------


def _template_word(m: "re.Match[str]") -> str:
    word = m.group().lower().replace("’", "'")
    if word in ONES_VALUES:
        return str(ONES_VALUES[word])
    if word in TENS_VALUES:
        return str(TENS_VALUES[word])
    return _split_contraction(word) or ALIASES.get(word, word)


def _token_indexes(tokens: Sequence[Token], start: int, end: int) -> List[int]:
    """Indexes of the tokens that overlap characters [start, end) of the joined text."""
    found, pos = [], 0
    for i, t in enumerate(tokens):
        t_end = pos + len(t.text)
        if pos < end and t_end > start:
            found.append(i)
        pos = t_end + 1
    return found
