"""The catalogue: creating a product or changing its title, price and backorder terms."""

from __future__ import annotations

from decimal import Decimal

from ordergraph.domain import validation as check
from ordergraph.domain.commands import UpsertProduct
from ordergraph.domain.errors import DomainError, ErrorCode, problem
from ordergraph.domain.model import BackorderPolicy, Product
from ordergraph.domain.ports import StoreSession


def _new_product(
    session: StoreSession, sku: str, title: str | None, price: Decimal | None
) -> Product:
    """A product for an sku the store does not have yet: title and price are required."""
    if title is None or price is None:
        raise DomainError(
            [
                problem(ErrorCode.INVALID, f"{name} is required for a new product", name)
                for name, value in (("title", title), ("price", price))
                if value is None
            ]
        )
    return Product(
        store_id=session.store.id,
        id=session.next_id(),
        sku=sku,
        title=title,
        price=price,
        backorder_policy=session.store.default_backorder_policy,
    )


def _backorder_limit(cmd: UpsertProduct, product: Product, policy: BackorderPolicy) -> int | None:
    """The backorder limit the product ends with under `policy`, checked."""
    limit = cmd.backorder_limit if cmd.backorder_limit_given else product.backorder_limit
    if policy is BackorderPolicy.LIMIT:
        if limit is None:
            raise DomainError.one(
                ErrorCode.INVALID,
                "backorderLimit is required with the LIMIT policy",
                ["backorderLimit"],
            )
        if limit < 0 or limit > check.MAX_STOCK_CHANGE:
            raise DomainError.one(
                ErrorCode.INVALID, "backorderLimit must be 0 or more", ["backorderLimit"]
            )
        return limit
    if cmd.backorder_limit_given and cmd.backorder_limit is not None:
        raise DomainError.one(
            ErrorCode.INVALID,
            "backorderLimit is only allowed with the LIMIT policy",
            ["backorderLimit"],
        )
    return None


async def upsert_product(session: StoreSession, cmd: UpsertProduct) -> Product:
    sku = check.sku(cmd.sku)
    product = (await session.products_by_sku([sku])).get(sku)
    title = check.text(cmd.title, "title") if cmd.title is not None else None
    price = check.price(cmd.price) if cmd.price is not None else None
    creating = product is None
    if product is None:
        product = _new_product(session, sku, title, price)
    policy = cmd.backorder_policy or product.backorder_policy
    limit = _backorder_limit(cmd, product, policy)
    if title is not None:
        product.title = title
    if price is not None:
        product.price = price
    product.backorder_policy = policy
    product.backorder_limit = limit
    if cmd.restock_date_given:
        product.restock_date = cmd.restock_date
    if creating:
        session.add_product(product)
    return product
