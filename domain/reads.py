"""Read models: what the read side hands out besides the domain objects themselves (an
API key as stored, an event of the log) and what a list of orders may be filtered and
sorted by. Plain data, shared by storage (which fills them) and the schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class OrderSort(StrEnum):
    PLACED_AT = "PLACED_AT"
    NUMBER = "NUMBER"
    REQUESTED_SHIP_DATE = "REQUESTED_SHIP_DATE"


@dataclass(frozen=True)
class OrderFilter:
    status: Sequence[str] | None = None
    stock_status: Sequence[str] | None = None
    in_backlog: bool | None = None
    is_backordered: bool | None = None
    is_overdue: bool | None = None
    sku: str | None = None
    placed_after: dt.datetime | None = None
    placed_before: dt.datetime | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class KeyRecord:
    id: int
    name: str
    scopes: frozenset[str]
    store_ids: frozenset[int]
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class EventRecord:
    store_id: int
    seq: int
    stream: str
    type: str
    occurred_at: dt.datetime
    order_id: int | None
    product_id: int | None
    data: dict[str, Any]
