"""Markdown tables and the number formats every benchmark table shares."""
from __future__ import annotations

import math


def md_table(headers, rows) -> str:
    """A GitHub markdown table; cells are converted with str()."""
    lines = ["| " + " | ".join(str(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def pct(x) -> str:
    """0.95 -> '95 %'; None/NaN -> '-'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "%.0f %%" % (100.0 * x)


def sci(x) -> str:
    """Relative errors span 1e-16..1: two significant digits in scientific notation."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "inf"
    return "%.1e" % x


def secs(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "%.2f s" % x if x < 10 else "%.1f s" % x


def median(values):
    values = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not values:
        return float("nan")
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else 0.5 * (values[mid - 1] + values[mid])


def mean(values):
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else float("nan")


def verdict(ok) -> str:
    return "PASS" if ok else "MISS"
