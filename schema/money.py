"""Money: a decimal string plus an ISO-4217 currency code."""

from __future__ import annotations

from decimal import Decimal

import strawberry

CENT = Decimal("0.01")


@strawberry.type(description="An amount of money in the store's currency.")
class Money:
    amount: Decimal = strawberry.field(
        description='The amount as a decimal string, with at least two decimals ("12.50") '
        "and more only when it has them (prices have at most four)."
    )
    currency_code: str = strawberry.field(
        description="The ISO 4217 code of the currency (the store's), e.g. EUR."
    )


def money(amount: Decimal, currency: str) -> Money:
    """At least two decimals ("12.50"); more only when the amount has them."""
    exact = amount.quantize(CENT)
    if exact != amount:
        exact = amount.normalize()
    return Money(amount=exact, currency_code=currency)
