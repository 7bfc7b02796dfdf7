"""Input checks shared by the services.

Identifiers are strict ASCII so look-alikes cannot coexist: a handle is 2 to 40 of a-z,
0-9 and '-', starting and ending with a letter or digit; a SKU is 1 to 64 of A-Z, a-z,
0-9, '-', '_' and '.', starting with a letter or digit. Both are matched whole (a trailing
newline is refused). Text is refused when it holds a control character (C0, DEL, C1), a
lone surrogate, or a bidirectional control; one-line text also refuses tab, CR and LF.
Dates and instants must lie in [MIN_DAY, MAX_DAY]: far enough from the ends of the
calendar that no day arithmetic downstream can overflow.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ordergraph.domain.errors import DomainError, ErrorCode

HANDLE_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])"
SKU_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
HANDLE_RE = re.compile(HANDLE_PATTERN)
SKU_RE = re.compile(SKU_PATTERN)
MAX_TEXT = 255
MAX_NOTE = 1000
MAX_LINES = 100
MAX_LINE_QUANTITY = 10_000
MAX_STOCK_CHANGE = 1_000_000_000
MAX_PRICE = Decimal("1000000000000")
MIN_DAY = dt.date(1970, 1, 1)
MAX_DAY = dt.date(2999, 12, 31)

# Never in any string: C0 controls but tab, LF and CR; DEL; C1 controls; lone surrogates.
_FORBIDDEN_ANYWHERE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Never in text fields: all control characters, lone surrogates and the bidirectional
# embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069).
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
_FORBIDDEN_IN_NOTE = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]"
)


def forbidden_character(value: str) -> str | None:
    """The first character no string input may hold (as U+XXXX), or None."""
    found = _FORBIDDEN_ANYWHERE.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


# Active ISO 4217 codes.
CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)


def _refuse_characters(
    value: str, pattern: re.Pattern[str], path: list[str | int], name: str
) -> None:
    found = pattern.search(value)
    if found is not None:
        raise DomainError.one(
            ErrorCode.INVALID,
            f"{name} must not contain U+{ord(found.group()):04X} (a control character)",
            path,
        )


def text(value: str, field: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str:
    """One line of text: trimmed, not blank (when required), no control characters."""
    _refuse_characters(value, _FORBIDDEN_IN_TEXT, [field], field)
    cleaned = value.strip()
    if required and not cleaned:
        raise DomainError.one(ErrorCode.INVALID, f"{field} must not be blank", [field])
    if len(cleaned) > max_len:
        raise DomainError.one(
            ErrorCode.INVALID, f"{field} is longer than {max_len} characters", [field]
        )
    return cleaned


def note(value: str, field: str, *, max_len: int = MAX_NOTE) -> str:
    """Free text that may span lines (tab, LF and CR allowed), at most `max_len` long."""
    _refuse_characters(value, _FORBIDDEN_IN_NOTE, [field], field)
    if len(value) > max_len:
        raise DomainError.one(
            ErrorCode.INVALID, f"{field} is longer than {max_len} characters", [field]
        )
    return value


def token(value: str, field: str, *, max_len: int = MAX_TEXT) -> str:
    """An opaque client-chosen key (idempotency key): 1 to `max_len` printable characters."""
    _refuse_characters(value, _FORBIDDEN_IN_TEXT, [field], field)
    if not 1 <= len(value) <= max_len:
        raise DomainError.one(
            ErrorCode.INVALID, f"{field} must be 1 to {max_len} characters", [field]
        )
    return value


def handle(value: str) -> str:
    if not HANDLE_RE.fullmatch(value):
        raise DomainError.one(
            ErrorCode.INVALID,
            "handle must be 2 to 40 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
            ["handle"],
        )
    return value


def currency(value: str) -> str:
    if value not in CURRENCIES:
        raise DomainError.one(
            ErrorCode.INVALID, f"{value[:8]!r} is not an ISO 4217 currency code", ["currencyCode"]
        )
    return value


def timezone(value: str) -> str:
    try:
        if (
            not value
            or len(value) > 64
            or value.startswith("/")
            or ".." in value
            or _FORBIDDEN_IN_TEXT.search(value)
        ):
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DomainError.one(
            ErrorCode.INVALID, f"{value[:64]!r} is not an IANA time zone name", ["timezone"]
        ) from None
    return value


def sku(value: str, *field: str | int) -> str:
    path = list(field) or ["sku"]
    if not SKU_RE.fullmatch(value):
        raise DomainError.one(
            ErrorCode.INVALID,
            "sku must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.', "
            "starting with a letter or digit",
            path,
        )
    return value


def day(value: dt.date, *field: str | int) -> dt.date:
    """A calendar date between MIN_DAY and MAX_DAY."""
    if not MIN_DAY <= value <= MAX_DAY:
        raise DomainError.one(
            ErrorCode.INVALID,
            f"{field[-1] if field else 'date'} must be between {MIN_DAY} and {MAX_DAY}",
            list(field) or ["date"],
        )
    return value


def instant(value: dt.datetime, *field: str | int) -> dt.datetime:
    """An aware instant whose UTC date lies between MIN_DAY and MAX_DAY, in UTC."""
    name = str(field[-1]) if field else "instant"
    path = list(field) or ["instant"]
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError.one(
            ErrorCode.INVALID,
            f"{name} needs a UTC offset, e.g. 2027-01-24T09:30:00+00:00",
            path,
        )
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not MIN_DAY <= utc.date() <= MAX_DAY:
        raise DomainError.one(
            ErrorCode.INVALID, f"{name} must be between {MIN_DAY} and {MAX_DAY} (UTC)", path
        )
    return utc


def list_length(values: Sequence[object] | None, maximum: int, *field: str | int) -> None:
    if values is not None and len(values) > maximum:
        raise DomainError.one(
            ErrorCode.INVALID, f"at most {maximum} items", list(field) or ["items"]
        )


def price(value: str | Decimal) -> Decimal:
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise DomainError.one(
            ErrorCode.INVALID, "price is not a decimal number", ["price"]
        ) from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_PRICE:
        raise DomainError.one(
            ErrorCode.INVALID, "price must be at least 0 and below 10^12", ["price"]
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise DomainError.one(ErrorCode.INVALID, "price has more than 4 decimal places", ["price"])
    return amount


def positive(value: int, field: list[str | int], *, maximum: int) -> int:
    if value < 1 or value > maximum:
        raise DomainError.one(ErrorCode.INVALID, f"quantity must be 1 to {maximum}", field)
    return value
