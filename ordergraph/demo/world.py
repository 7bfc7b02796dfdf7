"""The demo world before anything happens: the three stores, their catalogues and stock
levels, and the instants of every order, all decided by the seed alone."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from ordergraph.domain.model import BackorderPolicy

DAYS = 90
DEFAULT_ORDERS = 3000
DEFAULT_SEED = 1
DAY = dt.timedelta(days=1)
# Units in an average order: lines (see Runner.order) times units per line.
_UNITS_PER_ORDER = 2.17 * 1.9


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
class Item:
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
class Incoming:
    """A purchase order on its way: a scheduled receipt, and what the runner knows of it."""

    receipt_id: int
    reference: str  # the purchase order's number, the note of what arrives against it
    day: int  # the day it is now expected (days after the start)
    quantity: int  # units still to come
    delayed: bool = False  # the supplier has moved it once already
    partial: bool = False  # part of it has arrived already


@dataclass
class Plan:
    spec: DemoStore
    items: list[Item]
    order_offsets: list[float]  # seconds after the start instant, ascending
    rng: random.Random
    start: dt.datetime
    start_date: dt.date  # the local date of the start instant
    pending: dict[str, Incoming] = field(default_factory=dict)  # sku -> its open receipt
    # For each order with a requested ship date: the first day whose sweep may flag it.
    due_from: list[int] = field(default_factory=list)
    order_seq: int = 0


def catalogue(spec: DemoStore, orders: int, rng: random.Random) -> list[Item]:
    """The store's products; stock levels follow each product's expected demand."""
    items: list[Item] = []
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
            Item(
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


def order_times(count: int, rng: random.Random) -> list[float]:
    """Seconds after the start, over DAYS days: busier towards the end, quieter 2 days a week."""
    weights = [
        (0.75 + 0.5 * day / DAYS) * (0.6 if day % 7 in (5, 6) else 1.0) for day in range(DAYS)
    ]
    days = rng.choices(range(DAYS), weights=weights, k=count)
    return sorted(day * 86400 + rng.uniform(60, 86340) for day in days)


def plan_for(spec: DemoStore, seed: int, orders: int, start: dt.datetime) -> Plan:
    rng = random.Random(f"ordergraph-demo:{seed}:{spec.handle}")
    items = catalogue(spec, orders, rng)
    return Plan(
        spec=spec,
        items=items,
        order_offsets=order_times(orders, rng),
        rng=rng,
        start=start,
        start_date=start.astimezone(ZoneInfo(spec.timezone)).date(),
    )


def split_orders(orders: int) -> list[int]:
    counts = [int(orders * s.share) for s in DEMO_STORES]
    counts[0] += orders - sum(counts)
    return counts
