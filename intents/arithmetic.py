"""Arithmetic with the operator from the {operator} list ("+", "-", "*", "/")."""

import operator

from assistant import Reply, handler

OPERATORS = {
    "+": ("plus", operator.add),
    "-": ("minus", operator.sub),
    "*": ("times", operator.mul),
    "/": ("divided by", operator.truediv),
}


@handler("Calculate")
def calculate(intent, slots, ctx):
    left, right = slots["left"], slots["right"]
    word, fn = OPERATORS[slots["operator"]]
    if slots["operator"] == "/" and right == 0:
        return Reply("You can't divide by zero.", {"result": None})
    result = fn(left, right)
    return Reply(f"{_say(left)} {word} {_say(right)} is {_say(result)}.", {"result": result})


def _say(x):
    """7.0 -> "7", 3.3333333 -> "3.333333"."""
    if isinstance(x, float):
        return str(int(x)) if x.is_integer() else f"{x:.6f}".rstrip("0").rstrip(".")
    return str(x)
