"""Opaque global IDs: clients never parse them; every one names its store."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

KINDS = (
    "Store",
    "Product",
    "Order",
    "OrderLine",
    "ApiKey",
    "WebhookSubscription",
    "IncomingReceipt",
)


# Global IDs are encoded for every object of every answer (a page of 50 orders has about
# 250), often the same ones (a store's products, a page read again): the latest are kept.
ENCODED_IDS = 16_384


@lru_cache(maxsize=ENCODED_IDS)
def encode(kind: str, *parts: int) -> str:
    raw = ":".join([kind, *(str(p) for p in parts)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(value: str, kind: str | None = None) -> tuple[str, tuple[int, ...]] | None:
    """(kind, numbers) for a well-formed ID of the wanted kind, else None."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    found, _, rest = raw.partition(":")
    if found not in KINDS or (kind is not None and found != kind):
        return None
    try:
        numbers = tuple(int(p) for p in rest.split(":"))
    except ValueError:
        return None
    expected = 1 if found in ("Store", "ApiKey") else 2
    if len(numbers) != expected or any(n < 0 or n > 2**62 for n in numbers):
        return None
    return found, numbers


def event_id(store_id: int, seq: int) -> str:
    """An event's ID: opaque, stable and unique across stores. Not a node (`node(id:)`
    does not look events up), so its kind is not among KINDS."""
    return encode("StoreEvent", store_id, seq)


def store_id(value: str) -> int | None:
    found = decode(value, "Store")
    return found[1][0] if found else None


def scoped_id(value: str, kind: str) -> tuple[int, int] | None:
    """(store id, row id) of a Product, Order, OrderLine or IncomingReceipt ID."""
    found = decode(value, kind)
    return (found[1][0], found[1][1]) if found else None
