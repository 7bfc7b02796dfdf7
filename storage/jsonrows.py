"""Rows as JSON and back, by the tables' column types: the PostgreSQL hot path reads
several tables in one statement (`to_jsonb`) and writes a change in one call (`og_apply`).

Money travels as its integer count of 1/10,000 units, instants as ISO 8601 with their
offset, days as ISO dates; everything else as JSON has it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Date, Table

from ordergraph.storage.tables import MONEY_SCALE, Money, UtcDateTime

_Convert = Callable[[Any], Any]


def _money_out(value: Decimal) -> int:
    return int(value * MONEY_SCALE)


def _money_in(value: int | str) -> Decimal:
    return Decimal(int(value)) / MONEY_SCALE


def _instant_out(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.isoformat()


def _instant_in(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value).astimezone(dt.UTC)


def _day_out(value: dt.date) -> str:
    return value.isoformat()


def _day_in(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


@cache
def _converters(table: Table, inbound: bool) -> dict[str, _Convert]:
    found: dict[str, _Convert] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, Money):
            found[column.name] = _money_in if inbound else _money_out
        elif isinstance(kind, UtcDateTime):
            found[column.name] = _instant_in if inbound else _instant_out
        elif isinstance(kind, Date):
            found[column.name] = _day_in if inbound else _day_out
    return found


def to_json(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as JSON-ready data."""
    convert = _converters(table, False)
    return {
        name: (convert[name](value) if value is not None and name in convert else value)
        for name, value in values.items()
    }


def from_json(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """A row from `to_jsonb`, with the values a query through the table would give."""
    convert = _converters(table, True)
    return {
        name: (convert[name](value) if value is not None and name in convert else value)
        for name, value in values.items()
    }
