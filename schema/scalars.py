"""Strict Date and DateTime scalars (same names as Strawberry's), and Strawberry's Decimal
with a description of its own.

Strawberry's own parsers let a DateTime without an offset through, and raise
OverflowError (not a coercion error) for "9999-12-31T24:00:00Z", which graphql-core then
reports as a fault of the server. These refuse, as a coercion error (BAD_USER_INPUT for
a variable, a validation error for a literal):

- anything but a string of at most 64 characters;
- a DateTime without a UTC offset, or one that cannot be moved to UTC;
- anything Python's ISO 8601 parser (datetime.fromisoformat) cannot read.

The range of dates the API accepts is a domain rule (domain.validation.day/instant),
answered with INVALID and the argument or input field path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal as PyDecimal
from typing import Any

from graphql import GraphQLError
from strawberry.schema.types.base_scalars import DecimalDefinition
from strawberry.types.scalar import ScalarDefinition

MAX_LENGTH = 64


def _refuse(kind: str, value: object, why: str) -> GraphQLError:
    shown = value[:MAX_LENGTH] if isinstance(value, str) else type(value).__name__
    return GraphQLError(f"{kind} cannot represent {shown!r}: {why}")


def _string(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise _refuse(kind, value, "expected an ISO 8601 string")
    if len(value) > MAX_LENGTH:
        raise _refuse(kind, value, f"longer than {MAX_LENGTH} characters")
    return value


def parse_datetime(value: object) -> dt.datetime:
    text = _string("DateTime", value)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except (ValueError, OverflowError, TypeError):
        raise _refuse("DateTime", value, "not an ISO 8601 date and time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _refuse("DateTime", value, "a UTC offset is required, e.g. 2027-01-24T09:30:00+00:00")
    try:
        parsed.astimezone(dt.UTC)
    except OverflowError:
        raise _refuse("DateTime", value, "out of range") from None
    return parsed


def parse_date(value: object) -> dt.date:
    text = _string("Date", value)
    try:
        return dt.date.fromisoformat(text)
    except (ValueError, OverflowError, TypeError):
        raise _refuse("Date", value, "not an ISO 8601 date (YYYY-MM-DD)") from None


def _isoformat(value: Any) -> str:
    return str(value.isoformat())


DateTime = ScalarDefinition(
    name="DateTime",
    description="An instant as an ISO 8601 string with a UTC offset, e.g. "
    '"2027-01-24T09:30:00-05:00" (at most 64 characters; one without an offset is refused). '
    'Answers are in UTC, e.g. "2027-01-24T14:30:00+00:00".',
    specified_by_url=None,
    serialize=_isoformat,
    parse_value=parse_datetime,
    parse_literal=None,
    origin=dt.datetime,
)

Date = ScalarDefinition(
    name="Date",
    description='A calendar day as an ISO 8601 string, "YYYY-MM-DD" (e.g. "2027-01-30"), '
    "with no time or zone; the store's time zone gives it its start and end.",
    specified_by_url=None,
    serialize=_isoformat,
    parse_value=parse_date,
    parse_literal=None,
    origin=dt.date,
)

# Strawberry's own parsing (a string, or a number read as its decimal text).
Decimal = dataclasses.replace(
    DecimalDefinition,
    description='An exact decimal number, sent and answered as a string, e.g. "12.50" '
    "(a JSON number is read as its decimal text).",
    implementation=None,
)

SCALAR_OVERRIDES: Mapping[object, ScalarDefinition] = {
    dt.datetime: DateTime,
    dt.date: Date,
    PyDecimal: Decimal,
}
