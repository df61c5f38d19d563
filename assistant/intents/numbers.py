"""English number words: the one table that normalisation (words -> digits), the grammar (which
number words whisper may write) and the word error rate (digits -> words) share."""

from __future__ import annotations

from typing import Dict, Tuple

ONES: Tuple[str, ...] = tuple(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split()
)  # 0 to 19
TENS: Tuple[str, ...] = tuple("twenty thirty forty fifty sixty seventy eighty ninety".split())  # 20 to 90
SCALES: Dict[str, int] = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}

ONES_VALUES: Dict[str, int] = {w: i for i, w in enumerate(ONES)}
TENS_VALUES: Dict[str, int] = {w: 10 * i for i, w in enumerate(TENS, 2)}


def in_words(n: int) -> str:
    """Spell a whole number >= 0 the way people read it ("1813" -> "eighteen thirteen" for years;
    a million or more digit by digit)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10 - 2] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if 1100 <= n < 2000 and n % 100 != 0:  # years: eighteen thirteen
        return in_words(n // 100) + " " + in_words(n % 100)
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + in_words(n % 100))
    if n < 1_000_000:
        return in_words(n // 1000) + " thousand" + ("" if n % 1000 == 0 else " " + in_words(n % 1000))
    return " ".join(ONES[int(d)] for d in str(n))
