"""Rounds of interleaved contenders and their summary: each round runs every contender in
turn, the order rotated each round so that none always goes first; the summary gives each
figure's median and range over the rounds, and ratios of medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.place_orders_load import Result


@dataclass
class Spread:
    low: float
    mid: float
    high: float

    def text(self, digits: int) -> str:
        if math.isnan(self.mid):
            return "n/a"
        if self.low == self.high:
            return f"{self.mid:.{digits}f}"
        return f"{self.mid:.{digits}f} [{self.low:.{digits}f}-{self.high:.{digits}f}]"


def spread(values: list[float]) -> Spread:
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return Spread(math.nan, math.nan, math.nan)
    return Spread(min(known), statistics.median(known), max(known))


def rotation(names: list[str], round_index: int) -> list[str]:
    """The contenders' order in round `round_index` (0-based): shifted by one each round."""
    shift = round_index % len(names) if names else 0
    return names[shift:] + names[:shift]


Figure = tuple[str, Callable[[Result], float], int]


def figures(unit: str) -> list[Figure]:
    """The columns of the summary: title, how to read it from a result, decimals."""
    return [
        (f"{unit}/s", lambda r: r.rate, 1),
        ("p50 ms", lambda r: r.percentile_ms(0.50), 1),
        ("p99 ms", lambda r: r.percentile_ms(0.99), 1),
        (f"server CPU ms/{unit[:-1]}", lambda r: r.cpu_ms_per_order, 2),
        (f"db CPU ms/{unit[:-1]}", lambda r: r.db_cpu_ms_per_order, 2),
        ("client CPU ms/req", lambda r: r.client_cpu_ms_per_request, 3),
    ]


def one_line(result: Result, unit: str) -> str:
    """One run's figures, printed as it ends."""
    parts = [f"{result.orders} {unit}", f"{result.errors} errors"]
    parts += [f"{title} {read(result):.{digits}f}" for title, read, digits in figures(unit)]
    return ", ".join(parts)


def summary(runs: dict[str, list[Result]], unit: str = "orders") -> str:
    """Median [min-max] over the rounds of each figure, one row per contender."""
    columns = figures(unit)
    cells = {
        name: [spread([read(r) for r in results]).text(digits) for _, read, digits in columns]
        for name, results in runs.items()
    }
    widths = [
        max(len(title), *(len(row[i]) for row in cells.values()))
        for i, (title, _, _) in enumerate(columns)
    ]
    name_width = max(12, *(len(name) for name in runs))
    head = " ".join(
        [
            f"{'':<{name_width}}",
            *(f"{t:>{w}}" for (t, _, _), w in zip(columns, widths, strict=True)),
        ]
    )
    rows = [head, "-" * len(head)]
    for name, row in cells.items():
        rows.append(
            " ".join(
                [f"{name:<{name_width}}", *(f"{c:>{w}}" for c, w in zip(row, widths, strict=True))]
            )
        )
    return "\n".join(rows)


def median_rate(results: list[Result]) -> float:
    return spread([r.rate for r in results]).mid


def ratio_line(runs: dict[str, list[Result]], numerator: str, denominator: str) -> str | None:
    """`ratio (a / b): x` of the median rates, or None if a contender did not run."""
    if numerator not in runs or denominator not in runs:
        return None
    below = median_rate(runs[denominator])
    value = median_rate(runs[numerator]) / below if below else math.nan
    return f"ratio ({numerator} / {denominator}): {value:.3f}"
