"""The store lock's hold time, read from the servers' Prometheus text at GET /metrics.

The histogram `ordergraph_store_lock_hold_seconds` (its _sum, _count and cumulative
_bucket series, summed over every label set and process) is scraped before and after a
measured run; the difference gives the mean hold per locked transaction and an
approximate median, interpolated within the bucket that holds it. A server without the
histogram gives None: the bench prints that it has none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.light_client import Connection, HttpError, encode_head

METRIC = "ordergraph_store_lock_hold_seconds"


@dataclass
class Histogram:
    """Sum, count and cumulative bucket counts by upper bound (seconds; +Inf last)."""

    total: float
    count: float
    buckets: dict[float, float]


@dataclass
class LockHold:
    holds: float  # lock holds during the run
    mean_ms: float
    median_ms: float


def _labels_le(labels: str) -> float | None:
    for part in labels.split(","):
        name, _, value = part.partition("=")
        if name.strip() == "le":
            return float(value.strip().strip('"'))
    return None


def parse(text: str) -> Histogram | None:
    """The lock-hold histogram in a Prometheus text exposition, summed; None if absent."""
    total = count = 0.0
    buckets: dict[float, float] = {}
    seen = False
    for line in text.splitlines():
        if not line.startswith(METRIC):
            continue
        name_part, _, value = line.rpartition(" ")
        name, _, labels = name_part.partition("{")
        if name == METRIC + "_sum":
            total += float(value)
            seen = True
        elif name == METRIC + "_count":
            count += float(value)
        elif name == METRIC + "_bucket":
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


def lock_hold_between(before: Histogram | None, after: Histogram | None) -> LockHold | None:
    if before is None or after is None:
        return None
    count = after.count - before.count
    if count <= 0:
        return LockHold(0, float("nan"), float("nan"))
    buckets = {le: n - before.buckets.get(le, 0.0) for le, n in after.buckets.items()}
    return LockHold(
        count,
        (after.total - before.total) / count * 1000,
        median_seconds(buckets, count) * 1000,
    )


async def scrape_lock_hold(urls: list[str]) -> Histogram | None:
    """The histogram summed over the servers at `urls`; None if any of them lacks it."""
    found = []
    for url in urls:
        connection = Connection(url, timeout=10)
        try:
            head = encode_head("GET", "/metrics", connection.authority, {})
            status, body = await connection.request(head)
        except HttpError:
            return None
        finally:
            await connection.close()
        histogram = parse(body.decode()) if status == 200 else None
        if histogram is None:
            return None
        found.append(histogram)
    return merge(found) if found else None
