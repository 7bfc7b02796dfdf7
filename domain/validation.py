"""Input checks shared by the services."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import DomainError, ErrorCode

HANDLE_RE = re.compile(r"^[a-z0-9-]{2,40}$")
SKU_RE = re.compile(r"^[^\s\x00-\x1f]{1,64}$")
MAX_TEXT = 255
MAX_LINES = 100
MAX_LINE_QUANTITY = 10_000
MAX_STOCK_CHANGE = 1_000_000_000
MAX_PRICE = Decimal("1000000000000")

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


def text(value: str, field: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise DomainError.one(ErrorCode.INVALID, f"{field} must not be blank", [field])
    if len(cleaned) > max_len:
        raise DomainError.one(
            ErrorCode.INVALID, f"{field} is longer than {max_len} characters", [field]
        )
    return cleaned


def handle(value: str) -> str:
    if not HANDLE_RE.match(value):
        raise DomainError.one(
            ErrorCode.INVALID,
            "handle must be 2 to 40 characters of a-z, 0-9 and '-'",
            ["handle"],
        )
    return value


def currency(value: str) -> str:
    if value not in CURRENCIES:
        raise DomainError.one(
            ErrorCode.INVALID, f"{value!r} is not an ISO 4217 currency code", ["currencyCode"]
        )
    return value


def timezone(value: str) -> str:
    try:
        if not value or value.startswith("/") or ".." in value:
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise DomainError.one(
            ErrorCode.INVALID, f"{value!r} is not an IANA time zone name", ["timezone"]
        ) from None
    return value


def sku(value: str, *field: str | int) -> str:
    path = list(field) or ["sku"]
    if not SKU_RE.match(value):
        raise DomainError.one(
            ErrorCode.INVALID, "sku must be 1 to 64 characters without spaces", path
        )
    return value


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
