"""One demo store's ninety days, run in time order through the real services.

Each operation runs at the instant it happens (its events share that instant): every
order alone, a day's deliveries in one operation, a day's shipments and cancellations
in another. A store's operations of one local day share a unit of work (units.py); the
overdue sweep, which reads the due orders from the database, starts a new one when an
order of the open unit may be due. The runner is the store's only writer, so it keeps
what the wave decides on (number, placing time, status, stock status) of each order in
the backlog itself, taken from the orders each session held before it was written; the
wave loads only the orders it ships or cancels. It reads through the session's public
methods and changes only through the domain services.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass

from ordergraph.clock import Clock
from ordergraph.demo.units import Units, preload_orders
from ordergraph.demo.world import DAY, DAYS, Incoming, Item, Plan
from ordergraph.domain import services
from ordergraph.domain.commands import ScheduleReceipt, UpdateReceipt
from ordergraph.domain.model import CancelReason, Product, StockStatus, Store
from ordergraph.domain.model import OrderStatus as Status
from ordergraph.domain.reads import OrderFilter
from ordergraph.storage.db import Database
from ordergraph.storage.uow import SqlStoreSession

_BACKLOG = OrderFilter(in_backlog=True)


@dataclass(frozen=True)
class _Waiting:
    """What the wave decides on, of one order in the backlog."""

    id: int
    number: int
    placed_at: dt.datetime
    status: Status
    stock_status: StockStatus | None


@dataclass(frozen=True)
class _Draft:
    """What one customer asks for, before the storefront trims it to what can be sold."""

    wanted: dict[str, int]
    ship_date: dt.date | None
    external_id: str | None
    customer: str
    hold_days: int


class Runner:
    def __init__(
        self,
        db: Database,
        store: Store,
        plan: Plan,
        tick: Callable[[], None],
        *,
        batched: bool = True,
    ) -> None:
        self.db = db
        self.store = store
        self.plan = plan
        self.clock = Clock()
        self.tick = tick
        self.units = Units(
            db,
            store.id,
            self.clock,
            batched=batched,
            catalogue=[i.sku for i in plan.items],
            before_close=self._remember,
        )
        self._local_date: dt.date | None = None  # of the last operation, in the store's zone
        self.held_until: dict[int, float] = {}  # order id -> offset: some orders wait a check
        self.backlog: dict[int, _Waiting] = {}  # the store's orders in the backlog

    def at(self, seconds: float) -> None:
        self.clock.freeze(self.plan.start + dt.timedelta(seconds=seconds))

    async def opening(self) -> None:
        """Day 0: the catalogue and its opening stock, in one session."""
        self.at(0)
        async with self.units.session() as session:
            await session.reading(lambda: self._opening_in(session))
        await self.close()  # the products are created at the opening's instant
        self.tick()

    async def _opening_in(self, session: SqlStoreSession) -> None:
        for item in self.plan.items:
            await services.upsert_product(
                session,
                services.UpsertProduct(
                    sku=item.sku,
                    title=item.title,
                    price=item.price,
                    backorder_policy=item.policy,
                    backorder_limit=item.limit,
                    backorder_limit_given=item.limit is not None,
                ),
            )
        for index, item in enumerate(self.plan.items):
            if item.opening_stock:
                await services.receive_stock(
                    session, item.sku, item.opening_stock, note="opening stock"
                )
            else:  # pre-order: the first delivery is on its way, due after the lead time
                await self._schedule(session, index, 0, item.lead_days, item.reorder_qty * 2)

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
        if self.units.first_due is not None and self.units.first_due <= day:
            await self.close()  # the sweep reads the due orders from the database
        self.at(day * 86400)
        async with self.units.session() as session:
            await session.reading(lambda: services.mark_overdue(session))
        self.tick()

    async def deliveries(self, day: int) -> None:
        """8 h into the day: receipts due, new purchase orders (scheduled receipts), count fixes."""
        self.at(day * 86400 + 8 * 3600)
        async with self.units.session() as session:
            await session.reading(lambda: self._deliveries_in(session, day))
        self.tick()

    async def _deliveries_in(self, session: SqlStoreSession, day: int) -> None:
        products = await session.products_by_sku([i.sku for i in self.plan.items])
        # The receipts below re-date the waiting lines of the products due or to reorder:
        # read their queues, open receipts and waiting orders in a few queries rather than
        # a few per receipt (an optimization only: the services read what is missing).
        pending = self.plan.pending
        touched = [
            products[item.sku].id
            for item in self.plan.items
            if (item.sku in pending and pending[item.sku].day <= day)
            or (
                item.sku not in pending
                and products[item.sku].available - products[item.sku].backordered
                <= item.reorder_point
            )
        ]
        if touched:
            queues = await session.fill_inputs(touched)
            waiting = {order for pid in touched for _, order, _ in queues[pid].queue}
            await preload_orders(session, waiting)
            held = await session.orders_by_id(waiting)  # and the other products they wait for
            await session.fill_inputs(
                {line.product_id for o in held.values() for line in o.lines if line.backordered}
            )
        await self._receive_due(session, day)
        await self._reorder(session, day, products)
        await self._count_fix(session, products)

    async def _receive_due(self, session: SqlStoreSession, day: int) -> None:
        """Each receipt due today: the supplier may be late (once: the receipt moves a few
        days), send part now and the rest a few days later (once), or send it all."""
        plan, rng = self.plan, self.plan.rng
        for item in plan.items:
            due = plan.pending.get(item.sku)
            if due is None or due.day > day:
                continue
            if not due.delayed and rng.random() < 0.2:
                due.delayed = True
                await self._move(session, due, day + rng.randint(2, 6))
                continue
            units, note = due.quantity, due.reference + (", the rest" if due.partial else "")
            if not due.partial and units >= 2 and rng.random() < 0.25:
                units = max(1, round(units * rng.uniform(0.3, 0.7)))
                note = f"{due.reference}, part"
            await services.receive_stock(
                session, item.sku, units, note=note, receipt_id=due.receipt_id
            )
            if units < due.quantity:  # the rest follows
                due.partial = True
                due.quantity -= units
                await self._move(session, due, day + rng.randint(2, 5))
            else:
                del plan.pending[item.sku]

    async def _reorder(
        self, session: SqlStoreSession, day: int, products: dict[str, Product]
    ) -> None:
        plan, rng = self.plan, self.plan.rng
        for index, item in enumerate(plan.items):
            product = products[item.sku]
            position = product.available - product.backordered
            if item.sku in plan.pending or position > item.reorder_point:
                continue
            lead = max(1, item.lead_days + rng.randint(-1, 3))
            quantity = item.reorder_qty
            if not item.constrained:
                quantity += product.backordered
            await self._schedule(session, index, day, day + lead, quantity)

    async def _schedule(
        self, session: SqlStoreSession, index: int, day: int, arrives: int, quantity: int
    ) -> None:
        """A purchase order placed on `day`: a receipt expected `arrives` days after the start."""
        plan = self.plan
        item = plan.items[index]
        reference = f"PO {plan.spec.order_prefix}-{day:02d}-{index + 1:03d}"
        receipt = await services.schedule_receipt(
            session,
            ScheduleReceipt(
                sku=item.sku,
                quantity=quantity,
                expected_at=plan.start_date + dt.timedelta(days=arrives),
                reference=reference,
            ),
        )
        plan.pending[item.sku] = Incoming(receipt.id, reference, arrives, quantity)

    async def _move(self, session: SqlStoreSession, due: Incoming, arrives: int) -> None:
        due.day = arrives
        await services.update_receipt(
            session,
            UpdateReceipt(
                receipt_id=due.receipt_id,
                expected_at=self.plan.start_date + dt.timedelta(days=arrives),
            ),
        )

    async def _count_fix(self, session: SqlStoreSession, products: dict[str, Product]) -> None:
        rng = self.plan.rng
        if rng.random() < 0.2:
            item = rng.choice(self.plan.items)
            product = products[item.sku]
            delta = -1 if product.on_hand > 0 and rng.random() < 0.7 else 1
            await services.adjust_stock(
                session,
                item.sku,
                delta=delta,
                set_on_hand=None,
                reason="cycle count" if delta < 0 else "found in the back room",
            )

    async def wave(self, day: int) -> None:
        """16 h into the day: ship what is allocated; some cancel, some decline to wait longer
        (`_gives_up`)."""
        self.at(day * 86400 + 16 * 3600)
        async with self.units.session() as session:
            await session.reading(lambda: self._wave_in(session))
        self.tick()

    async def _wave_in(self, session: SqlStoreSession) -> None:
        self._remember(session)  # the open unit's orders as they stand now
        backlog = sorted(self.backlog.values(), key=lambda order: order.number)
        ships, cancels = self._decide(backlog, session.now)
        if ships or cancels:  # the catalogue and the orders in one go, not one per order
            await session.products_by_sku([item.sku for item in self.plan.items])
            await preload_orders(session, [*ships, *cancels])
        for order_id in sorted([*ships, *cancels]):
            if order_id in ships:
                await services.ship_order(session, order_id, None, ships[order_id])
            else:
                await services.cancel_order(session, order_id, cancels[order_id], None)

    def _remember(self, session: SqlStoreSession) -> None:
        """Take the backlog's state from the orders the session holds: only those can
        have changed since the last unit of work was written (the runner is the store's
        only writer, and every order was placed, and so held, in one of its sessions)."""
        for order in session.held_orders():
            if order.in_backlog:
                self.backlog[order.id] = _Waiting(
                    order.id, order.number, order.placed_at, order.status, order.stock_status
                )
            else:
                self.backlog.pop(order.id, None)

    def _decide(
        self, backlog: list[_Waiting], now: dt.datetime
    ) -> tuple[dict[int, str], dict[int, CancelReason]]:
        """Which orders of the backlog ship (with a tracking number) and which cancel."""
        rng = self.plan.rng
        elapsed = (now - self.plan.start).total_seconds()
        ships: dict[int, str] = {}  # order id -> tracking number
        cancels: dict[int, CancelReason] = {}
        for order in backlog:
            age = (now - _utc(order.placed_at)) / DAY
            roll = rng.random()
            stock = order.stock_status
            if self.held_until.get(order.id, 0) > elapsed:
                continue  # waiting for a payment or address check
            if stock == StockStatus.ALLOCATED:
                if age < 1 and roll < 0.012:
                    cancels[order.id] = (
                        CancelReason.FRAUD if roll < 0.002 else CancelReason.CUSTOMER_REQUEST
                    )
                elif age >= 0.5 and roll < min(0.95, 0.15 + 0.3 * age):
                    ships[order.id] = _tracking(rng)
            elif (reason := _gives_up(age, roll)) is not None:
                cancels[order.id] = reason
            elif (
                stock == StockStatus.PARTIALLY_BACKORDERED
                and order.status == Status.OPEN
                and age >= 2
                and roll < 0.3
            ):
                ships[order.id] = _tracking(rng)  # what is there goes now
        return ships, cancels

    def _draft(self, offset: float) -> _Draft:
        plan, rng = self.plan, self.plan.rng
        lines = rng.choice((1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5))
        picked: list[Item] = rng.choices(
            plan.items, weights=[i.weight for i in plan.items], k=lines
        )
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
        return _Draft(wanted, ship_date, external, customer, hold)

    async def order(self, offset: float) -> None:
        """One customer's order, at its own instant; the storefront shows what can be sold."""
        self.at(offset)
        draft = self._draft(offset)
        async with self.units.session() as session:
            products = await session.products_by_sku(draft.wanted)
            requests = []
            for sku, qty in draft.wanted.items():
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
                        external_id=draft.external_id,
                        customer_ref=draft.customer,
                        requested_ship_date=draft.ship_date,
                    ),
                )
                self.units.placed.append(order.id)
                if draft.hold_days:
                    self.held_until[order.id] = offset + draft.hold_days * 86400
                if draft.ship_date is not None:
                    due = (draft.ship_date - self.plan.start_date).days + 1
                    self.units.first_due = min(due, self.units.first_due or due)
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
            await self._day_boundary(offset)
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
        await self.close()

    async def close(self) -> None:
        """End the unit of work: write and commit what the operations since did."""
        await self.units.close()

    async def _day_boundary(self, offset: float) -> None:
        """End the unit of work at each local midnight of the store: the history then has
        a point at every day boundary, where daily figures are read."""
        local = (self.plan.start + dt.timedelta(seconds=offset)).astimezone(self.store.tz).date()
        if self._local_date is not None and local != self._local_date:
            await self.close()
        self._local_date = local

    @property
    def steps(self) -> int:
        return 1 + (DAYS - 1) + 2 * DAYS + len(self.plan.order_offsets)


# What becomes of an order waiting for stock, on each day's wave (on the wave's one roll
# per order): from DECLINE_AFTER days on, more and more customers decline to wait longer
# (CUSTOMER_DECLINED_BACKORDER: the lost revenue), a few cancel for their own reasons,
# and after GIVE_UP_AFTER days the merchant cancels some that no delivery clears.
DECLINE_AFTER = 5
GIVE_UP_AFTER = 30


def _gives_up(age: float, roll: float) -> CancelReason | None:
    """Whether a waiting order placed `age` days ago cancels on this roll (in [0, 1)), and why."""
    declines = min(0.06, 0.015 + 0.003 * (age - DECLINE_AFTER)) if age >= DECLINE_AFTER else 0.0
    chances = (
        (CancelReason.CUSTOMER_DECLINED_BACKORDER, declines),
        (CancelReason.CUSTOMER_REQUEST, 0.002 if age >= 1 else 0.0),
        (CancelReason.OUT_OF_STOCK, 0.02 if age >= GIVE_UP_AFTER else 0.0),
        (CancelReason.OTHER, 0.001 if age >= 3 else 0.0),
    )
    below = 0.0
    for reason, chance in chances:
        below += chance
        if roll < below:
            return reason
    return None


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _tracking(rng: random.Random) -> str:
    return f"1Z{rng.randrange(16**10):010X}"
