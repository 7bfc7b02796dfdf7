"""The store lock's hold time, read from the servers' Prometheus text at GET /metrics.

The histogram `ordergraph_store_lock_hold_seconds` (its _sum, _count and cumulative
_bucket series, summed over every label set and process) is scraped before and after a
measured run; the difference gives the mean hold per locked transaction and an
approximate median, interpolated within the bucket that holds it. A server without the
histogram gives None: the bench prints that it has none.

A server that runs the changes to one store that arrive together in one unit of work
(resolvers/batches.py) also counts the changes per unit (`ordergraph_store_unit_changes`):
then the lock's hold per change is the hold time over the changes, not over the units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.light_client import Connection, HttpError, encode_head

METRIC = "ordergraph_store_lock_hold_seconds"
CHANGES = "ordergraph_store_unit_changes"


@dataclass
class Histogram:
    """Sum, count and cumulative bucket counts by upper bound (seconds; +Inf last)."""

    total: float
    count: float
    buckets: dict[float, float]


@dataclass
class LockHold:
    holds: float  # lock holds (units of work) during the run
    mean_ms: float  # per unit
    median_ms: float  # per unit
    changes: float | None = None  # changes those units ran (None: not counted by the server)

    @property
    def changes_per_unit(self) -> float | None:
        return self.changes / self.holds if self.changes and self.holds else None

    @property
    def per_change_ms(self) -> float | None:
        """The lock's hold per change: the units' hold time over the changes they ran."""
        per_unit = self.changes_per_unit
        return self.mean_ms / per_unit if per_unit else None


def _labels_le(labels: str) -> float | None:
    for part in labels.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "le":
            return float(value.strip().strip('"'))
    return None


def parse(text: str, metric: str = METRIC) -> Histogram | None:
    """A histogram (by default the lock hold's) in a Prometheus text exposition, summed;
    None if absent."""
    total = count = 0.0
    buckets: dict[float, float] = {}
    seen = False
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        name_part, _, value = line.rpartition(" ")
        name, _, labels = name_part.partition("{")
        if name == metric + "_sum":
            total += float(value)
            seen = True
        elif name == metric + "_count":
            count += float(value)
        elif name == metric + "_bucket":
            le = _labels_le(labels.rstrip("}"))
            if le is not None:
                buckets[le] = buckets.get(le, 0.0) + float(value)
    return Histogram(total, count, dict(sorted(buckets.items()))) if seen else None


def merge(histograms: list[Histogram]) -> Histogram:
    buckets: dict[float, float] = {}
    for h in histograms:
        for le, n in h.buckets.items():
            buckets[le] = buckets.get(le, 0.0) + n
    return Histogram(
        sum(h.total for h in histograms),
        sum(h.count for h in histograms),
        dict(sorted(buckets.items())),
    )


def median_seconds(buckets: dict[float, float], count: float) -> float:
    """Approximate median from cumulative bucket counts: linear within its bucket."""
    half = count / 2
    lower, below = 0.0, 0.0
    for le, cumulative in buckets.items():
        if cumulative >= half:
            if math.isinf(le):
                return lower
            inside = cumulative - below
            share = (half - below) / inside if inside else 0.0
            return lower + (le - lower) * share
        lower, below = le, cumulative
    return float("nan")


@dataclass
class Scrape:
    hold: Histogram
    changes: Histogram | None  # changes per unit; None when the server does not count them


def lock_hold_between(before: Scrape | None, after: Scrape | None) -> LockHold | None:
    if before is None or after is None:
        return None
    count = after.hold.count - before.hold.count
    if count <= 0:
        return LockHold(0, float("nan"), float("nan"))
    buckets = {le: n - before.hold.buckets.get(le, 0.0) for le, n in after.hold.buckets.items()}
    changes = None
    if before.changes is not None and after.changes is not None:
        changes = after.changes.total - before.changes.total
    return LockHold(
        count,
        (after.hold.total - before.hold.total) / count * 1000,
        median_seconds(buckets, count) * 1000,
        changes,
    )


async def scrape_lock_hold(urls: list[str]) -> Scrape | None:
    """The histograms summed over the servers at `urls`; None if any of them lacks the
    lock hold's."""
    found: list[Histogram] = []
    changes: list[Histogram] | None = []
    for url in urls:
        connection = Connection(url, timeout=10)
        try:
            head = encode_head("GET", "/metrics", connection.authority, {})
            status, body = await connection.request(head)
        except HttpError:
            return None
        finally:
            await connection.close()
        text = body.decode() if status == 200 else ""
        histogram = parse(text)
        if histogram is None:
            return None
        found.append(histogram)
        counted = parse(text, CHANGES)
        if counted is None or changes is None:
            changes = None
        else:
            changes.append(counted)
    if not found:
        return None
    return Scrape(merge(found), merge(changes) if changes else None)
