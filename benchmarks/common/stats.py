"""Summaries of measurements that may be missing (None is skipped), rounded to 0.1."""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

Values = Iterable[Optional[float]]


def _present(values: Values) -> list:
    return [v for v in values if v is not None]


def pct(values: Values, q: float) -> Optional[float]:
    """The q-th percentile, None for no values."""
    v = _present(values)
    return round(float(np.percentile(v, q)), 1) if v else None


def med(values: Values) -> Optional[float]:
    return pct(values, 50)


def mean(values: Values) -> Optional[float]:
    v = _present(values)
    return round(float(np.mean(v)), 1) if v else None


def spread(values: Values, *stats: str) -> Dict[str, Optional[float]]:
    """{"median": .., "p95": ..} by default; stats are names: median, mean, min, max, pNN, n."""
    v = _present(values)
    out: Dict[str, Optional[float]] = {}
    for name in stats or ("median", "p95"):
        if name == "n":
            out[name] = len(v)
        elif name == "mean":
            out[name] = mean(v)
        else:
            q = {"median": 50, "min": 0, "max": 100}.get(name)
            out[name] = pct(v, q if q is not None else float(name[1:]))
    return out


def ratio(a: Optional[float], b: Optional[float], digits: int = 4) -> Optional[float]:
    """a / b, None when either is missing or b is 0."""
    return round(a / b, digits) if a is not None and b else None
