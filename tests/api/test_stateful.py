"""Random sequences of mutations through the HTTP API, checked against a model after each step.

The model below is written from DESIGN §1 alone: it keeps stock per SKU and the
lines of every order, predicts which lines get stock and how much (oldest first),
which requests are refused with which code, and every derived status. After each
step the whole store is read back through GraphQL and compared with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.storage.migrate import upgrade
from tests.client import Api, StoreHandle

T = TypeVar("T")
ADMIN_TOKEN = "og_admin_stateful_" + uuid.uuid4().hex
TIMEZONE = "America/New_York"
START = dt.datetime(2027, 1, 24, 9, 0, tzinfo=dt.UTC)  # 04:00 on the 24th in New York
SKUS = ("A", "B")
UNKNOWN_SKU = "NOPE"
# Now and then a SKU the store does not have.
ANY_SKU = st.sampled_from((*SKUS, *SKUS, *SKUS, UNKNOWN_SKU))
POLICIES = ("DENY", "ALLOW", "LIMIT")
# DENY refuses most orders once stock runs out, and queues need backorders: draw it less often.
SOME_POLICY = st.sampled_from(("ALLOW", "LIMIT", "ALLOW", "LIMIT", "DENY"))
REASONS = (
    "CUSTOMER_REQUEST",
    "CUSTOMER_DECLINED_BACKORDER",
    "OUT_OF_STOCK",
    "FRAUD",
    "OTHER",
)
# Ship-by dates around the store's local "today" (Jan 24): ended, today, later.
SHIP_BY = (None, dt.date(2027, 1, 23), dt.date(2027, 1, 24), dt.date(2027, 2, 20))

Problems = list[tuple[str, tuple[str, ...]]]

STATE_QUERY = """
query($h: String!) { store(handle: $h) {
  products(first: 250) { nodes {
    sku onHand allocated available backordered availableToSell backorderPolicy backorderLimit
    backorderQueue(first: 250) { nodes { id backordered } } } }
  orders(first: 250, sortKey: NUMBER) { nodes {
    id number status stockStatus inBacklog isBackordered isOverdue
    lines { id sku quantity allocated backordered shipped cancelled } } }
} }
"""


# -- the model ------------------------------------------------------------------


@dataclass
class MLine:
    gid: str
    sku: str
    quantity: int
    allocated: int
    backordered: int
    shipped: int = 0
    cancelled: int = 0

    @property
    def open(self) -> int:
        return self.allocated + self.backordered


@dataclass
class MOrder:
    gid: str
    number: int
    ship_by: dt.date | None
    lines: list[MLine]

    def status(self) -> str:
        left = sum(line.open for line in self.lines)
        shipped = sum(line.shipped for line in self.lines)
        if left:
            return "PARTIALLY_SHIPPED" if shipped else "OPEN"
        return "SHIPPED" if shipped else "CANCELLED"

    def stock_status(self) -> str | None:
        allocated = sum(line.allocated for line in self.lines)
        waiting = sum(line.backordered for line in self.lines)
        if allocated + waiting == 0:
            return None
        if waiting == 0:
            return "ALLOCATED"
        return "BACKORDERED" if allocated == 0 else "PARTIALLY_BACKORDERED"


@dataclass
class MProduct:
    policy: str
    limit: int | None
    on_hand: int = 0


@dataclass
class Model:
    products: dict[str, MProduct] = field(default_factory=dict)
    orders: list[MOrder] = field(default_factory=list)  # in placement order = fill order

    def lines_of(self, sku: str) -> list[MLine]:
        """The SKU's lines in fill order: oldest order first, then line order."""
        return [line for order in self.orders for line in order.lines if line.sku == sku]

    def allocated(self, sku: str) -> int:
        return sum(line.allocated for line in self.lines_of(sku))

    def backordered(self, sku: str) -> int:
        return sum(line.backordered for line in self.lines_of(sku))

    def available(self, sku: str) -> int:
        return self.products[sku].on_hand - self.allocated(sku)

    def fill(self, sku: str) -> list[MLine]:
        free = self.available(sku)
        filled = []
        for line in self.lines_of(sku):
            if free == 0:
                break
            give = min(free, line.backordered)
            if give:
                line.backordered -= give
                line.allocated += give
                free -= give
                filled.append(line)
        return filled

    def take_back(self, sku: str, deficit: int) -> None:
        for line in reversed(self.lines_of(sku)):
            back = min(deficit, line.allocated)
            line.allocated -= back
            line.backordered += back
            deficit -= back
        assert deficit == 0

    def place_problems(self, lines: list[tuple[str, int]]) -> Problems:
        problems: Problems = []
        seen: set[str] = set()
        for index, (sku, _) in enumerate(lines):
            if sku in seen:
                continue
            seen.add(sku)
            quantity = sum(q for s, q in lines if s == sku)
            at = ("lines", str(index), "quantity")
            product = self.products.get(sku)
            if product is None:
                problems.append(("NOT_FOUND", ("lines", str(index), "sku")))
                continue
            rest = quantity - min(quantity, self.available(sku))
            if rest and product.policy == "DENY":
                problems.append(("INSUFFICIENT_STOCK", at))
            elif rest and product.policy == "LIMIT":
                assert product.limit is not None
                if self.backordered(sku) + rest > product.limit:
                    problems.append(("BACKORDER_LIMIT_EXCEEDED", at))
        return problems

    def place(self, gid: str, number: int, ship_by: dt.date | None, lines: list[MLine]) -> None:
        for line in lines:
            line.allocated = min(line.quantity, self.available(line.sku))
            line.backordered = line.quantity - line.allocated
        self.orders.append(MOrder(gid, number, ship_by, lines))

    def available_to_sell(self, sku: str) -> int | None:
        product = self.products[sku]
        if product.policy == "ALLOW":
            return None
        if product.policy == "DENY":
            return self.available(sku)
        assert product.limit is not None
        return self.available(sku) + max(0, product.limit - self.backordered(sku))

    def snapshot(self, now: dt.datetime) -> dict[str, Any]:
        today = now.astimezone(ZoneInfo(TIMEZONE)).date()
        products = {
            sku: {
                "onHand": p.on_hand,
                "allocated": self.allocated(sku),
                "available": self.available(sku),
                "backordered": self.backordered(sku),
                "availableToSell": self.available_to_sell(sku),
                "policy": p.policy,
                "limit": p.limit,
                "queue": [(ln.gid, ln.backordered) for ln in self.lines_of(sku) if ln.backordered],
            }
            for sku, p in self.products.items()
        }
        orders = {
            o.number: {
                "id": o.gid,
                "status": o.status(),
                "stockStatus": o.stock_status(),
                "inBacklog": o.status() in ("OPEN", "PARTIALLY_SHIPPED"),
                "isBackordered": any(line.backordered for line in o.lines),
                "isOverdue": o.status() in ("OPEN", "PARTIALLY_SHIPPED")
                and o.ship_by is not None
                and o.ship_by < today,
                "lines": [
                    (
                        ln.gid,
                        ln.sku,
                        ln.quantity,
                        ln.allocated,
                        ln.backordered,
                        ln.shipped,
                        ln.cancelled,
                    )
                    for ln in o.lines
                ],
            }
            for o in self.orders
        }
        return {"products": products, "orders": orders}


def api_snapshot(store: dict[str, Any]) -> dict[str, Any]:
    products = {
        p["sku"]: {
            "onHand": p["onHand"],
            "allocated": p["allocated"],
            "available": p["available"],
            "backordered": p["backordered"],
            "availableToSell": p["availableToSell"],
            "policy": p["backorderPolicy"],
            "limit": p["backorderLimit"],
            "queue": [(n["id"], n["backordered"]) for n in p["backorderQueue"]["nodes"]],
        }
        for p in store["products"]["nodes"]
    }
    orders = {
        o["number"]: {
            "id": o["id"],
            "status": o["status"],
            "stockStatus": o["stockStatus"],
            "inBacklog": o["inBacklog"],
            "isBackordered": o["isBackordered"],
            "isOverdue": o["isOverdue"],
            "lines": [
                (
                    ln["id"],
                    ln["sku"],
                    ln["quantity"],
                    ln["allocated"],
                    ln["backordered"],
                    ln["shipped"],
                    ln["cancelled"],
                )
                for ln in o["lines"]
            ],
        }
        for o in store["orders"]["nodes"]
    }
    return {"products": products, "orders": orders}


def check_rules(state: dict[str, Any]) -> None:
    """The invariants of DESIGN §1, on what the API reports, without the model."""
    lines = [(o, line) for o in state["orders"].values() for line in o["lines"]]
    for _gid, _sku, quantity, allocated, backordered, shipped, cancelled in (
        line for _, line in lines
    ):
        assert min(allocated, backordered, shipped, cancelled) >= 0
        assert quantity == allocated + backordered + shipped + cancelled
    for sku, p in state["products"].items():
        assert p["onHand"] >= 0, (sku, p)
        assert 0 <= p["allocated"] <= p["onHand"], (sku, p)
        assert p["available"] == p["onHand"] - p["allocated"], (sku, p)
        assert not (p["available"] > 0 and p["backordered"] > 0), ("fill invariant", sku, p)
        own = [line for _, line in lines if line[1] == sku]
        assert p["allocated"] == sum(line[3] for line in own), (sku, p)
        open_lines = [line for line in own if line[3] + line[4] > 0]
        assert p["backordered"] == sum(line[4] for line in open_lines), (sku, p)
    for number, o in state["orders"].items():
        left = sum(line[3] + line[4] for line in o["lines"])
        waiting = sum(line[4] for line in o["lines"])
        assert o["inBacklog"] == (left > 0), (number, o)
        assert o["isBackordered"] == (waiting > 0), (number, o)
        assert (o["stockStatus"] is None) == (left == 0), (number, o)
        assert o["isOverdue"] <= o["inBacklog"], (number, o)


def problems_of(payload: dict[str, Any]) -> Problems:
    """(code, field path below `input`) of each user error."""
    problems: Problems = []
    for error in payload["userErrors"]:
        path = tuple(error["field"] or ())
        assert path[:1] == ("input",), error
        problems.append((error["code"], path[1:]))
    return problems


# -- the machine ------------------------------------------------------------------


class StoreMachine(RuleBasedStateMachine):
    database_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.clock.freeze(START)
        self.db = Database(self.database_url, pool_size=2)
        # STATE_QUERY reads everything at once (250 queues of 250): far over the default
        # maximum cost, and many of them a run; this test checks rules, not limits.
        app = create_app(
            Settings(
                database_url=self.db.url,
                admin_token=ADMIN_TOKEN,
                max_cost=10**9,
                rate_limit_capacity=10**9,
            ),
            clock=self.clock,
            db=self.db,
        )
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        )
        self.api = Api(self.http, ADMIN_TOKEN, self.db)
        self.model = Model()
        self.store: StoreHandle | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        try:
            self.run(self.http.aclose())
            self.run(self.db.dispose())
        finally:
            self.loop.close()

    @property
    def handle(self) -> StoreHandle:
        assert self.store is not None
        return self.store

    def tick(self) -> None:
        self.clock.advance(dt.timedelta(seconds=1))

    @initialize(
        default=st.sampled_from(POLICIES),
        policies=st.lists(SOME_POLICY, min_size=2, max_size=2),
        limits=st.lists(st.integers(0, 10), min_size=2, max_size=2),
        stock=st.lists(st.integers(0, 5), min_size=2, max_size=2),
    )
    def create_store(
        self, default: str, policies: list[str], limits: list[int], stock: list[int]
    ) -> None:
        # The default policy only matters to products created without one; ours always have one.
        self.store = self.run(self.api.create_store(policy=default, timezone=TIMEZONE))
        for sku, policy, limit, quantity in zip(SKUS, policies, limits, stock, strict=True):
            self.upsert_product(sku, policy, limit)
            if quantity:
                self.receive(sku, quantity)

    # -- rules ----------------------------------------------------------------------
    @rule(sku=st.sampled_from(SKUS), policy=SOME_POLICY, limit=st.integers(0, 10))
    def upsert_product(self, sku: str, policy: str, limit: int) -> None:
        self.tick()
        fields: dict[str, Any] = {"backorderPolicy": policy}
        if policy == "LIMIT":
            fields["backorderLimit"] = limit
        payload = self.run(self.api.upsert(self.handle, sku, **fields))
        assert problems_of(payload) == []
        product = self.model.products.setdefault(sku, MProduct(policy, None))
        product.policy = policy
        product.limit = limit if policy == "LIMIT" else None

    @rule(sku=ANY_SKU, quantity=st.integers(1, 5), data=st.data())
    def receive_stock(self, sku: str, quantity: int, data: st.DataObject) -> None:
        waiting = self.model.backordered(sku)
        if waiting and data.draw(st.booleans(), label="sized to the queue"):
            # enough for some of the waiting lines, often splitting one
            quantity = data.draw(st.integers(1, waiting + 1), label="quantity")
        self.receive(sku, quantity)

    def queues(self) -> list[str]:
        """SKUs with two or more lines waiting."""
        return [s for s in SKUS if sum(1 for ln in self.model.lines_of(s) if ln.backordered) > 1]

    @precondition(lambda self: self.queues())
    @rule(data=st.data())
    def receive_part_of_a_queue(self, data: st.DataObject) -> None:
        """A receipt that reaches past the first waiting line: fill order shows."""
        sku = data.draw(st.sampled_from(self.queues()), label="sku")
        waiting = [ln.backordered for ln in self.model.lines_of(sku) if ln.backordered]
        self.receive(sku, data.draw(st.integers(waiting[0] + 1, sum(waiting)), label="quantity"))

    def receive(self, sku: str, quantity: int) -> None:
        self.tick()
        payload = self.run(self.api.receive(self.handle, sku, quantity))
        if sku not in self.model.products:
            assert problems_of(payload) == [("NOT_FOUND", ("sku",))]
            return
        assert problems_of(payload) == []
        self.model.products[sku].on_hand += quantity
        filled = self.model.fill(sku)
        assert [line["id"] for line in payload["filledLines"]] == [ln.gid for ln in filled]

    @rule(
        sku=ANY_SKU,
        change=st.one_of(
            st.tuples(st.just("delta"), st.integers(-6, 6).filter(bool)),
            st.tuples(st.just("setOnHand"), st.integers(0, 10)),
            # a count that comes up short of what is allocated: allocation is taken back
            st.tuples(st.just("short"), st.integers(1, 4)),
        ),
    )
    def adjust_stock(self, sku: str, change: tuple[str, int]) -> None:
        self.tick()
        kind, amount = change
        if kind == "short":
            kind, amount = "setOnHand", max(0, self.model.allocated(sku) - amount)
        payload = self.run(self.api.adjust(self.handle, sku, **{kind: amount}))
        if sku not in self.model.products:
            assert problems_of(payload) == [("NOT_FOUND", ("sku",))]
            return
        product = self.model.products[sku]
        target = product.on_hand + amount if kind == "delta" else amount
        if target < 0:
            assert problems_of(payload) == [("INVALID", (kind,))]
            return
        assert problems_of(payload) == []
        product.on_hand = target
        deficit = self.model.allocated(sku) - target
        if deficit > 0:
            self.model.take_back(sku, deficit)
        self.model.fill(sku)

    @rule(
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 5)), min_size=1, max_size=3),
        ship_by=st.sampled_from(SHIP_BY),
        unknown=st.integers(0, 9),
    )
    def place_order(
        self, lines: list[tuple[str, int]], ship_by: dt.date | None, unknown: int
    ) -> None:
        if unknown == 0:
            lines = [*lines, (UNKNOWN_SKU, 1)]
        self.place(lines, ship_by)

    # Most orders name one product; a rule of their own also makes orders (and so
    # queues of waiting lines) more frequent among the steps.
    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 8), ship_by=st.sampled_from(SHIP_BY))
    def place_single_line_order(self, sku: str, quantity: int, ship_by: dt.date | None) -> None:
        self.place([(sku, quantity)], ship_by)

    def place(self, lines: list[tuple[str, int]], ship_by: dt.date | None) -> None:
        self.tick()
        extra = {"requestedShipDate": ship_by.isoformat()} if ship_by else {}
        payload = self.run(self.api.place(self.handle, lines, **extra))
        expected = self.model.place_problems(lines)
        if expected:
            assert problems_of(payload) == expected
            assert payload["order"] is None
            return
        assert problems_of(payload) == []
        order = payload["order"]
        assert order["number"] == 1001 + len(self.model.orders)
        merged: dict[str, int] = {}
        for sku, quantity in lines:
            merged[sku] = merged.get(sku, 0) + quantity
        gids = {line["sku"]: line["id"] for line in order["lines"]}
        assert list(gids) == list(merged), "one line per SKU, in the order first named"
        self.model.place(
            order["id"],
            order["number"],
            ship_by,
            [MLine(gids[sku], sku, quantity, 0, 0) for sku, quantity in merged.items()],
        )

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), everything=st.booleans())
    def ship_order(self, data: st.DataObject, everything: bool) -> None:
        self.tick()
        order = self.draw_order(data)
        chosen = None if everything else self.draw_lines(data, order)
        payload = self.run(
            self.api.ship(
                self.handle,
                order.gid,
                None if chosen is None else [(ln.gid, q) for ln, q in chosen],
            )
        )
        if order.status() in ("SHIPPED", "CANCELLED"):
            assert problems_of(payload) == [("ALREADY_CLOSED", ("orderId",))]
            return
        if chosen is None:
            chosen = [(line, line.allocated) for line in order.lines if line.allocated]
            if not chosen:
                assert problems_of(payload) == [("NOT_SHIPPABLE", ("orderId",))]
                return
        refusals = [
            ("NOT_SHIPPABLE", ("lines", str(index), "quantity"))
            for index, (line, quantity) in enumerate(chosen)
            if quantity > line.allocated
        ]
        assert problems_of(payload) == refusals
        if refusals:
            return
        for line, quantity in chosen:
            line.allocated -= quantity
            line.shipped += quantity
            self.model.products[line.sku].on_hand -= quantity

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), everything=st.booleans(), reason=st.sampled_from(REASONS))
    def cancel_order(self, data: st.DataObject, everything: bool, reason: str) -> None:
        self.tick()
        order = self.draw_order(data)
        chosen = None if everything else self.draw_lines(data, order)
        payload = self.run(
            self.api.cancel(
                self.handle,
                order.gid,
                reason,
                None if chosen is None else [(ln.gid, q) for ln, q in chosen],
            )
        )
        if order.status() in ("SHIPPED", "CANCELLED"):
            assert problems_of(payload) == [("ALREADY_CLOSED", ("orderId",))]
            return
        if chosen is None:
            chosen = [(line, line.open) for line in order.lines if line.open]
        refusals = [
            ("INVALID", ("lines", str(index), "quantity"))
            for index, (line, quantity) in enumerate(chosen)
            if quantity > line.open
        ]
        assert problems_of(payload) == refusals
        if refusals:
            return
        for line, quantity in chosen:
            from_backorder = min(quantity, line.backordered)
            line.backordered -= from_backorder
            line.allocated -= quantity - from_backorder
            line.cancelled += quantity
        for sku in {line.sku for line, _ in chosen}:
            self.model.fill(sku)

    def draw_order(self, data: st.DataObject) -> MOrder:
        """Mostly an open order; now and then any, closed ones included."""
        still_open = [o for o in self.model.orders if o.status() in ("OPEN", "PARTIALLY_SHIPPED")]
        if not still_open or data.draw(st.integers(0, 3), label="any order") == 0:
            return data.draw(st.sampled_from(self.model.orders), label="order")
        return data.draw(st.sampled_from(still_open), label="open order")

    @staticmethod
    def draw_lines(data: st.DataObject, order: MOrder) -> list[tuple[MLine, int]]:
        picked = data.draw(
            st.lists(st.sampled_from(order.lines), min_size=1, unique_by=lambda ln: ln.gid),
            label="lines",
        )
        return [
            (line, data.draw(st.integers(1, line.quantity), label=f"quantity of {line.sku}"))
            for line in picked
        ]

    # -- after every step -------------------------------------------------------------
    @invariant()
    def store_matches_the_model(self) -> None:
        if self.store is None:
            return
        data = self.run(self.api.gql(STATE_QUERY, {"h": self.handle.handle}, self.handle.token))
        actual = api_snapshot(data["store"])
        check_rules(actual)
        assert actual == self.model.snapshot(self.clock())


def run_machine(database_url: str, examples: int, steps: int) -> None:
    machine = type("StoreMachineOn", (StoreMachine,), {"database_url": database_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            print_blob=True,
        ),
    )


def _migrate(url: str) -> None:
    async def go() -> None:
        db = Database(url)
        await upgrade(db)
        await db.dispose()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()


@pytest.mark.exhaustive
def test_random_mutation_sequences_keep_every_rule_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stateful.db'}"
    _migrate(url)
    run_machine(url, examples=20, steps=35)


@pytest.mark.postgres
def test_random_mutation_sequences_keep_every_rule_on_postgresql(pg_url: str) -> None:
    run_machine(pg_url, examples=10, steps=35)
