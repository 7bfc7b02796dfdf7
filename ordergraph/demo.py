"""Demo data: three stores and ninety days of trade, made by the real services.

The world is laid out on a timeline that starts at S = end - 90 days, where `end`
is the seeding instant (or `--now`). Everything happens at a fixed offset from S
that only the seed decides: the stores' opening stock, every order, the morning
deliveries, the afternoon shipping waves, cancellations and the nightly overdue
sweeps. Calendar dates (requested ship dates, restock dates) are whole days after
S's local date in the store's timezone. So the same seed gives the same orders,
lines, quantities and event sequence, with every time shifted by the start instant
(save for a daylight-saving change in a store's timezone moving a local date
near midnight).

Each store's operations run in time order, each in its own `store_session` at the
instant it happens (a session's events share one instant): every order alone, a
day's deliveries in one session, a day's shipments and cancellations in another.
"Day" and the hours in it count from S, not from the stores' local midnights.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ordergraph.clock import Clock
from ordergraph.domain import services
from ordergraph.domain.model import BackorderPolicy, CancelReason, Store
from ordergraph.overdue import sweep_overdue
from ordergraph.storage import tables as t
from ordergraph.storage.admin import create_store
from ordergraph.storage.db import Database
from ordergraph.storage.uow import SqlStoreSession, store_session

DAYS = 90
DEFAULT_ORDERS = 3000
DEFAULT_SEED = 1
DAY = dt.timedelta(days=1)
# Units in an average order: lines (see _Runner.order) times units per line.
_UNITS_PER_ORDER = 2.17 * 1.9

Progress = Callable[[int, int], None]


class DemoError(Exception):
    """The demo cannot be seeded here (one line, for the command)."""


@dataclass(frozen=True)
class DemoStore:
    handle: str
    name: str
    currency: str
    timezone: str
    default_policy: BackorderPolicy
    products: int
    share: float  # of the orders
    order_prefix: str
    price_low: int
    price_high: int
    cents: bool


DEMO_STORES = (
    DemoStore(
        "demo-new-york",
        "Hudson Outfitters (demo)",
        "USD",
        "America/New_York",
        BackorderPolicy.ALLOW,
        120,
        0.40,
        "HUD",
        8,
        240,
        True,
    ),
    DemoStore(
        "demo-berlin",
        "Spree Werkstatt (demo)",
        "EUR",
        "Europe/Berlin",
        BackorderPolicy.LIMIT,
        100,
        0.33,
        "SPR",
        6,
        190,
        True,
    ),
    DemoStore(
        "demo-tokyo",
        "Kanda Goods (demo)",
        "JPY",
        "Asia/Tokyo",
        BackorderPolicy.DENY,
        80,
        0.27,
        "KND",
        800,
        28000,
        False,
    ),
)
DEMO_HANDLES = tuple(s.handle for s in DEMO_STORES)

_ADJECTIVES = (
    "Alpine", "Harbor", "Cedar", "Urban", "Coastal", "Granite", "Linen", "Copper",
    "Field", "Nordic", "Indigo", "Maple", "Summit", "Canvas", "Willow", "Ember",
)  # fmt: skip
_THINGS = (
    ("Backpack", "BAG"), ("Water Bottle", "BTL"), ("Rain Jacket", "JKT"), ("Wool Socks", "SCK"),
    ("Camp Mug", "MUG"), ("Headlamp", "LMP"), ("Trail Cap", "CAP"), ("Tote Bag", "TOT"),
    ("Notebook", "NTB"), ("Scarf", "SCF"), ("Gloves", "GLV"), ("Thermos", "THM"),
    ("Blanket", "BLK"), ("Sunglasses", "SUN"), ("Belt", "BLT"), ("Apron", "APR"),
)  # fmt: skip


@dataclass
class _Item:
    sku: str
    title: str
    price: Decimal
    policy: BackorderPolicy
    limit: int | None
    weight: float
    lead_days: int
    reorder_point: int
    reorder_qty: int
    opening_stock: int
    constrained: bool  # the supplier sends small lots, late: its queue rarely clears


@dataclass
class _Plan:
    spec: DemoStore
    items: list[_Item]
    order_offsets: list[float]  # seconds after the start instant, ascending
    rng: random.Random
    start: dt.datetime
    start_date: dt.date  # the local date of the start instant
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)  # sku -> (day, qty)
    # For each order with a requested ship date: the first day whose sweep may flag it.
    due_from: list[int] = field(default_factory=list)
    order_seq: int = 0


def _catalogue(spec: DemoStore, orders: int, rng: random.Random) -> list[_Item]:
    """The store's products; stock levels follow each product's expected demand."""
    items: list[_Item] = []
    names = [(a, thing) for thing in _THINGS for a in _ADJECTIVES]
    rng.shuffle(names)
    weights = [1.0 / (1 + index % 37) ** 0.8 for index in range(spec.products)]
    units_per_day = orders / DAYS * _UNITS_PER_ORDER
    for index in range(spec.products):
        adjective, (thing, code) = names[index]
        if spec.cents:
            price = Decimal(rng.randint(spec.price_low, spec.price_high)) - Decimal("0.01")
        else:
            price = Decimal(rng.randint(spec.price_low // 10, spec.price_high // 10) * 10)
        roll = rng.random()
        if roll < 0.40:
            policy, limit = BackorderPolicy.ALLOW, None
        elif roll < 0.70:
            policy, limit = BackorderPolicy.LIMIT, rng.choice((5, 10, 20, 40))
        else:
            policy, limit = BackorderPolicy.DENY, None
        constrained = rng.random() < 0.2  # a slow supplier: long lead, small lots
        daily = units_per_day * weights[index] / sum(weights)
        lead = rng.randint(12, 30) if constrained else rng.randint(3, 9)
        cover = rng.uniform(2, 5) if constrained else rng.uniform(8, 20)
        reorder_qty = max(1 if constrained else 3, round(daily * cover))
        opening = 0 if rng.random() < 0.06 else reorder_qty + rng.randint(0, reorder_qty)
        items.append(
            _Item(
                sku=f"{code}-{adjective[:3].upper()}-{index + 1:03d}",
                title=f"{adjective} {thing}",
                price=price,
                policy=policy,
                limit=limit,
                weight=weights[index],
                lead_days=lead,
                reorder_point=round(daily * lead * rng.uniform(0.3, 0.8)),
                reorder_qty=reorder_qty,
                opening_stock=opening,
                constrained=constrained,
            )
        )
    return items


def _order_times(count: int, rng: random.Random) -> list[float]:
    """Seconds after the start, over DAYS days: busier towards the end, quieter 2 days a week."""
    weights = [
        (0.75 + 0.5 * day / DAYS) * (0.6 if day % 7 in (5, 6) else 1.0) for day in range(DAYS)
    ]
    days = rng.choices(range(DAYS), weights=weights, k=count)
    return sorted(day * 86400 + rng.uniform(60, 86340) for day in days)


def _plan(spec: DemoStore, seed: int, orders: int, start: dt.datetime) -> _Plan:
    rng = random.Random(f"ordergraph-demo:{seed}:{spec.handle}")
    items = _catalogue(spec, orders, rng)
    return _Plan(
        spec=spec,
        items=items,
        order_offsets=_order_times(orders, rng),
        rng=rng,
        start=start,
        start_date=start.astimezone(ZoneInfo(spec.timezone)).date(),
    )


def _split(orders: int) -> list[int]:
    counts = [int(orders * s.share) for s in DEMO_STORES]
    counts[0] += orders - sum(counts)
    return counts


# -- the operations -----------------------------------------------------------


class _Runner:
    def __init__(self, db: Database, store: Store, plan: _Plan, tick: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.plan = plan
        self.clock = Clock()
        self.tick = tick
        self.held_until: dict[int, float] = {}  # order id -> offset: some orders wait a check

    def at(self, seconds: float) -> None:
        self.clock.freeze(self.plan.start + dt.timedelta(seconds=seconds))

    async def opening(self) -> None:
        """Day 0: the catalogue and its opening stock, in one session."""
        self.at(0)
        async with store_session(self.db, self.store.id, self.clock) as session:
            for item in self.plan.items:
                restock = None
                if item.opening_stock == 0:  # pre-order: first delivery after the lead time
                    self.plan.pending[item.sku] = (item.lead_days, item.reorder_qty * 2)
                    restock = self.plan.start_date + dt.timedelta(days=item.lead_days)
                await services.upsert_product(
                    session,
                    services.UpsertProduct(
                        sku=item.sku,
                        title=item.title,
                        price=item.price,
                        backorder_policy=item.policy,
                        backorder_limit=item.limit,
                        backorder_limit_given=item.limit is not None,
                        restock_date=restock,
                        restock_date_given=True,
                    ),
                )
            for item in self.plan.items:
                if item.opening_stock:
                    await services.receive_stock(
                        session, item.sku, item.opening_stock, note="opening stock"
                    )
        self.tick()

    async def sweep(self, day: int) -> None:
        """The nightly overdue sweep, at the start of each day (a whole number of days after S).

        An order due on local date start_date + m ends before start + (m + 1) days, so the
        sweep of day m + 1 is the first that may flag it, whatever S's time of day.
        """
        due = self.plan.due_from
        if not due or min(due) > day:
            self.tick()
            return
        due[:] = [d for d in due if d > day]
        self.at(day * 86400)
        async with store_session(self.db, self.store.id, self.clock) as session:
            await services.mark_overdue(session)
        self.tick()

    async def deliveries(self, day: int) -> None:
        """8 h into the day: receipts due, new purchase orders (with restock dates), count fixes."""
        plan, rng = self.plan, self.plan.rng
        self.at(day * 86400 + 8 * 3600)
        async with store_session(self.db, self.store.id, self.clock) as session:
            products = await session.products_by_sku([i.sku for i in plan.items])
            for item in plan.items:
                due = plan.pending.get(item.sku)
                if due is not None and due[0] <= day:
                    del plan.pending[item.sku]
                    await services.receive_stock(
                        session, item.sku, due[1], note=f"PO {plan.spec.order_prefix}-{day:02d}"
                    )
                    await self._restock_date(session, item.sku, None)
            for item in plan.items:
                product = products[item.sku]
                position = product.available - product.backordered
                if item.sku in plan.pending or position > item.reorder_point:
                    continue
                lead = max(1, item.lead_days + rng.randint(-1, 3))
                quantity = item.reorder_qty
                if not item.constrained:
                    quantity += product.backordered
                plan.pending[item.sku] = (day + lead, quantity)
                await self._restock_date(
                    session, item.sku, plan.start_date + dt.timedelta(days=day + lead)
                )
            if rng.random() < 0.2:
                item = rng.choice(plan.items)
                product = products[item.sku]
                delta = -1 if product.on_hand > 0 and rng.random() < 0.7 else 1
                await services.adjust_stock(
                    session,
                    item.sku,
                    delta=delta,
                    set_on_hand=None,
                    reason="cycle count" if delta < 0 else "found in the back room",
                )
        self.tick()

    async def _restock_date(self, session: SqlStoreSession, sku: str, date: dt.date | None) -> None:
        await services.upsert_product(
            session, services.UpsertProduct(sku=sku, restock_date=date, restock_date_given=True)
        )

    async def wave(self, day: int) -> None:
        """16 h into the day: ship what is allocated; some cancel, some decline to wait longer."""
        rng = self.plan.rng
        self.at(day * 86400 + 16 * 3600)
        async with store_session(self.db, self.store.id, self.clock) as session:
            o = t.orders
            rows = (
                await session.conn.execute(
                    select(o.c.id, o.c.placed_at, o.c.status, o.c.stock_status)
                    .where(o.c.store_id == self.store.id, o.c.in_backlog.is_(True))
                    .order_by(o.c.number)
                )
            ).all()
            now = (session.now - self.plan.start).total_seconds()
            ships: dict[int, str] = {}  # order id -> tracking number
            cancels: dict[int, CancelReason] = {}
            for order_id, placed_at, status, stock in rows:
                age = (session.now - _utc(placed_at)) / DAY
                roll = rng.random()
                if self.held_until.get(order_id, 0) > now:
                    continue  # waiting for a payment or address check
                if stock == "ALLOCATED":
                    if age < 1 and roll < 0.012:
                        cancels[order_id] = (
                            CancelReason.FRAUD if roll < 0.002 else CancelReason.CUSTOMER_REQUEST
                        )
                    elif age >= 0.5 and roll < min(0.95, 0.15 + 0.3 * age):
                        ships[order_id] = _tracking(rng)
                elif age >= 6 and roll < 0.035:
                    cancels[order_id] = CancelReason.CUSTOMER_DECLINED_BACKORDER
                elif (
                    stock == "PARTIALLY_BACKORDERED"
                    and status == "OPEN"
                    and age >= 2
                    and roll < 0.3
                ):
                    ships[order_id] = _tracking(rng)  # what is there goes now
            if ships or cancels:
                # Load the day's orders and the catalogue in a few queries, not one per order.
                await session._load_orders([*ships, *cancels])
                await session.products_by_sku([item.sku for item in self.plan.items])
            for order_id in sorted([*ships, *cancels]):
                if order_id in ships:
                    await services.ship_order(session, order_id, None, ships[order_id])
                else:
                    await services.cancel_order(session, order_id, cancels[order_id], None)
        self.tick()

    async def order(self, offset: float) -> None:
        """One customer's order, at its own instant; the storefront shows what can be sold."""
        plan, rng = self.plan, self.plan.rng
        self.at(offset)
        lines = rng.choice((1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5))
        picked = rng.choices(plan.items, weights=[i.weight for i in plan.items], k=lines)
        wanted: dict[str, int] = {}
        for item in picked:
            roll = rng.random()
            qty = 1 if roll < 0.6 else 2 if roll < 0.85 else rng.randint(3, 5)
            if roll > 0.98:
                qty = rng.randint(6, 20)
            wanted[item.sku] = wanted.get(item.sku, 0) + qty
        day = int(offset // 86400)
        ship_date = None
        if rng.random() < 0.45:
            lead = rng.choice((2, 3, 3, 4, 5, 7, 10))
            ship_date = plan.start_date + dt.timedelta(days=day + lead)
            plan.due_from.append(day + lead + 1)
        plan.order_seq += 1
        external = (
            f"{plan.spec.order_prefix}-{10000 + plan.order_seq}" if rng.random() < 0.7 else None
        )
        customer = f"C{rng.randint(1000, 9999)}"
        hold = rng.randint(5, 15) if rng.random() < 0.06 else 0
        if hold and ship_date is None:  # held orders are the ones asked for by a date
            lead = rng.choice((2, 3, 4))
            ship_date = plan.start_date + dt.timedelta(days=day + lead)
            plan.due_from.append(day + lead + 1)
        async with store_session(self.db, self.store.id, self.clock) as session:
            products = await session.products_by_sku(wanted)
            requests = []
            for sku, qty in wanted.items():
                sellable = products[sku].available_to_sell
                if sellable is not None:
                    qty = min(qty, sellable)
                if qty > 0:
                    requests.append(services.LineRequest(sku, qty))
            if requests:
                order = await services.place_order(
                    session,
                    services.PlaceOrder(
                        lines=requests,
                        external_id=external,
                        customer_ref=customer,
                        requested_ship_date=ship_date,
                    ),
                )
                if hold:
                    self.held_until[order.id] = offset + hold * 86400
        self.tick()

    async def run(self) -> None:
        steps: list[tuple[float, int, int]] = [(0.0, 0, 0)]
        for day in range(DAYS):
            if day:
                steps.append((day * 86400.0, 1, day))
            steps.append((day * 86400.0 + 8 * 3600, 2, day))
            steps.append((day * 86400.0 + 16 * 3600, 4, day))
        steps.extend((offset, 3, 0) for offset in self.plan.order_offsets)
        steps.sort(key=lambda s: (s[0], s[1]))
        for offset, kind, day in steps:
            if kind == 0:
                await self.opening()
            elif kind == 1:
                await self.sweep(day)
            elif kind == 2:
                await self.deliveries(day)
            elif kind == 3:
                await self.order(offset)
            else:
                await self.wave(day)

    @property
    def steps(self) -> int:
        return 1 + (DAYS - 1) + 2 * DAYS + len(self.plan.order_offsets)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _tracking(rng: random.Random) -> str:
    return f"1Z{rng.randrange(16**10):010X}"


# -- entry point ----------------------------------------------------------------


@dataclass(frozen=True)
class SeededStore:
    store: Store
    products: int
    orders: int


async def demo_stores(db: Database) -> dict[str, Store]:
    """The demo stores present in the database, by handle."""
    from ordergraph.storage.mapping import store_from

    async with db.read() as conn:
        rows = (
            (await conn.execute(select(t.stores).where(t.stores.c.handle.in_(DEMO_HANDLES))))
            .mappings()
            .all()
        )
    return {row["handle"]: store_from(row) for row in rows}


async def has_stores(db: Database) -> bool:
    async with db.read() as conn:
        return (await conn.execute(select(t.stores.c.id).limit(1))).first() is not None


async def seed_demo(
    db: Database,
    *,
    seed: int = DEFAULT_SEED,
    orders: int = DEFAULT_ORDERS,
    now: dt.datetime | None = None,
    progress: Progress | None = None,
) -> list[SeededStore]:
    """Create the three demo stores and their ninety days; the database must be migrated.

    `now` is the end of the simulated days (default: the current time). The final
    overdue sweep runs at `now`, on the real clock when `now` is not given.
    """
    found = await demo_stores(db)
    if found:
        raise DemoError(
            "the demo stores already exist in this database ("
            + ", ".join(sorted(found))
            + "); seed an empty database"
        )
    final_clock = Clock()
    if now is None:
        end = final_clock().replace(microsecond=0)
    else:
        end = now.astimezone(dt.UTC)
        final_clock.freeze(end)
    start = end - DAYS * DAY
    plans = [
        _plan(spec, seed, count, start)
        for spec, count in zip(DEMO_STORES, _split(orders), strict=True)
    ]
    runners: list[_Runner] = []
    done = 0
    total = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for spec, plan in zip(DEMO_STORES, plans, strict=True):
        store, _ = await create_store(
            db,
            handle=spec.handle,
            name=spec.name,
            currency_code=spec.currency,
            timezone=spec.timezone,
            default_policy=spec.default_policy,
            now=start - dt.timedelta(hours=1),
        )
        runners.append(_Runner(db, store, plan, tick))
    total = sum(r.steps for r in runners) + 1
    if db.is_sqlite:  # one writer at a time anyway
        for runner in runners:
            await runner.run()
    else:  # each store has its own lock: run them side by side
        await asyncio.gather(*(runner.run() for runner in runners))
    await sweep_overdue(db, final_clock)
    tick()
    result = []
    async with db.read() as conn:
        for runner in runners:
            sid = runner.store.id
            n_products = len(
                (
                    await conn.execute(select(t.products.c.id).where(t.products.c.store_id == sid))
                ).all()
            )
            n_orders = len(
                (await conn.execute(select(t.orders.c.id).where(t.orders.c.store_id == sid))).all()
            )
            result.append(SeededStore(runner.store, n_products, n_orders))
    return result
