"""Money: a decimal string plus an ISO-4217 currency code."""

from __future__ import annotations

from decimal import Decimal

import strawberry

CENT = Decimal("0.01")


@strawberry.type
class Money:
    amount: Decimal
    currency_code: str


def money(amount: Decimal, currency: str) -> Money:
    """At least two decimals ("12.50"); more only when the amount has them."""
    exact = amount.quantize(CENT) if amount == amount.quantize(CENT) else amount.normalize()
    return Money(amount=exact, currency_code=currency)
