"""The attacks of the issue, one by one: a key with only ORDERS or only INVENTORY reading
the store through mutation payloads, and the admin token reading store data through
`ApiKey.stores`. (tests/api/boundary/test_scopes_walk.py covers every field.)"""

from __future__ import annotations

from typing import Any

from tests.client import ERRORS, Api
from tests.ws_support import make_key, shop

READ_THE_STORE = """store { name orders(first: 50) { nodes { number customerRef } } }"""


def errors_at(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (".".join(str(p) for p in e.get("path") or []), e["extensions"]["code"])
        for e in body.get("errors") or []
    ]


async def test_an_orders_only_key_reads_its_order_but_not_the_store_behind_it(api: Api) -> None:
    store = await shop(api)
    await api.receive(store, "A", 10)
    await api.place(store, [("A", 1)], customerRef="someone else's customer")
    key = await make_key(api, [store], ["ORDERS"], "checkout")
    place = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
      order {{ number status total {{ amount }} lines {{ sku allocated }} {{}} }} {ERRORS} }} }}"""
    wanted = {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 1}]}}

    own = await api.raw(place.replace("{}", ""), wanted, token=key.token)
    assert "errors" not in own, own
    assert own["data"]["placeOrder"]["order"] == {
        "number": 1002,
        "status": "OPEN",
        "total": {"amount": "10.00"},
        "lines": [{"sku": "A", "allocated": 1}],
    }

    through = await api.raw(place.replace("{}", READ_THE_STORE), wanted, token=key.token)
    assert errors_at(through) == [("placeOrder.order.store", "FORBIDDEN")]
    assert through["data"]["placeOrder"]["order"] is None
    assert "someone else" not in str(through)

    for leak in ("events(first: 5) { nodes { type } }", "lines { product { onHand } }"):
        body = await api.raw(place.replace("{}", leak), wanted, token=key.token)
        assert [code for _, code in errors_at(body)] == ["FORBIDDEN"], (leak, body)


async def test_an_inventory_only_key_reads_its_product_but_not_queues_or_orders(api: Api) -> None:
    store = await shop(api)
    await api.place(store, [("A", 10)], customerRef="waiting customer")
    key = await make_key(api, [store], ["INVENTORY"], "warehouse")
    receive = f"""mutation($input: ReceiveStockInput!) {{ receiveStock(input: $input) {{
      product {{ sku onHand backordered {{}} }} filledLines {{ sku allocated }} {ERRORS} }} }}"""
    wanted = {"input": {"storeId": store.id, "sku": "A", "quantity": 1}}

    own = await api.raw(receive.replace("{}", ""), wanted, token=key.token)
    assert "errors" not in own, own
    assert own["data"]["receiveStock"]["product"] == {"sku": "A", "onHand": 1, "backordered": 9}
    assert own["data"]["receiveStock"]["filledLines"] == [{"sku": "A", "allocated": 1}]

    for leak in (
        "backorderQueue { nodes { order { customerRef } } }",
        "store { backlog { backlog { orders } } }",
    ):
        body = await api.raw(receive.replace("{}", leak), wanted, token=key.token)
        assert [code for _, code in errors_at(body)] == ["FORBIDDEN"], (leak, body)
        assert "waiting customer" not in str(body)
    line_order = receive.replace("{}", "").replace(
        "filledLines { sku allocated }", "filledLines { order { customerRef } }"
    )
    body = await api.raw(line_order, wanted, token=key.token)
    assert [code for _, code in errors_at(body)] == ["FORBIDDEN"]
    assert "waiting customer" not in str(body)


async def test_the_admin_token_sees_ids_and_handles_of_a_keys_stores_and_nothing_more(
    api: Api,
) -> None:
    store = await shop(api)
    await api.place(store, [("A", 1)], customerRef="private")
    make = """mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) {
      apiKey { name stores { id handle {} } } } }"""
    wanted = {"input": {"name": "audit", "storeIds": [store.id], "scopes": ["READ"]}}

    body = await api.raw(make.replace("{}", ""), wanted, token=api.admin_token)
    assert "errors" not in body, body
    assert body["data"]["createApiKey"]["apiKey"]["stores"] == [
        {"id": store.id, "handle": store.handle}
    ]
    for leak in ("name", "orders(first: 5) { nodes { customerRef } }", "backlog { asOf }"):
        body = await api.raw(make.replace("{}", leak), wanted, token=api.admin_token)
        assert [code for _, code in errors_at(body)] == ["FORBIDDEN"], (leak, body)
        assert "private" not in str(body)


async def test_a_key_with_read_still_traverses_everything(api: Api) -> None:
    store = await shop(api)
    key = await make_key(api, [store], ["READ", "ORDERS"], "full")
    place = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
      order {{ number store {{ handle orders(first: 5) {{ totalCount }} }}
      lines {{ product {{ sku backorderQueue {{ totalCount }} }} }} }} {ERRORS} }} }}"""
    wanted = {"input": {"storeId": store.id, "lines": [{"sku": "A", "quantity": 2}]}}
    body = await api.raw(place, wanted, token=key.token)
    assert "errors" not in body, body
    order = body["data"]["placeOrder"]["order"]
    assert order["store"] == {"handle": store.handle, "orders": {"totalCount": 1}}
    assert order["lines"] == [{"product": {"sku": "A", "backorderQueue": {"totalCount": 1}}}]
