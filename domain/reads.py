"""Read models: what the read side hands out besides the domain objects themselves (an
API key as stored, an event of the log, an event as live delivery hands it on) and what
a list of orders may be filtered and sorted by. Plain data, shared by storage and live
delivery (which fill them) and the schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ordergraph.domain.model import Order, Product


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


@dataclass(frozen=True)
class LiveEvent:
    """An event of the log with the order or product it names, loaded once for all.

    The pump hands one LiveEvent to every subscriber of its store; `memo` holds what is
    worked out once for all of them while the event is being delivered (the results of
    identical subscriptions, see schema/sharing.py). It goes away with the event.
    """

    record: EventRecord
    order: Order | None = None
    product: Product | None = None
    live: bool = False  # read by the pump (offered to subscribers), not by a replay
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
