"""The mutations build no SQL expression once the process has run them: the unit of
work's reads (products by SKU, orders and their lines, a product's waiting or allocated
lines, the fill-date walk's rows), the figures' writes and the answer's reads (the
lines' fill dates) are statements built once, with parameters. SQLAlchemy builds a
statement written as an expression anew at every call: each cost tens of microseconds,
and seeding the demo built about 40 per order."""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql import coercions

from ordergraph.storage.db import Database
from tests.api.test_page_work import page_store

FILL_DATES = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  order { id expectedShipDate lines { id expectedFillDate } } userErrors { code } } }"""


async def test_mutations_build_no_statement_once_warm(database: Database, monkeypatch: Any) -> None:
    built: list[str] = []
    expect = coercions.expect

    def counting(role: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        built.append(type(element).__name__)
        return expect(role, element, *args, **kwargs)

    async with page_store(database) as (api, store):
        await api.receive(store, "A", 4)

        async def place() -> str:
            placed = await api.gql(
                FILL_DATES,
                {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}},
                token=store.token,
            )
            return str(placed["placeOrder"]["order"]["id"])

        async def waiting_then_filled() -> None:
            await api.place(store, [("B", 2)])  # waits: B has no stock
            await api.receive(store, "B", 2)  # fills it

        async def shipped_and_cancelled() -> None:
            await api.ship(store, await place())
            await api.cancel(store, await place())

        for round_ in range(3):  # (the first two may build them: each path once)
            monkeypatch.setattr(coercions, "expect", counting)
            built.clear()
            await place()
            await waiting_then_filled()
            await shipped_and_cancelled()
            monkeypatch.setattr(coercions, "expect", expect)
            if round_ == 2:
                assert built == [], built
