"""Webhook subscriptions and their delivery log in SQL.

`SqlWebhooks` is what the API's mutations and fields use (the port in
domain/webhooks.py, `ctx.webhooks`). The module functions below it are the delivery
worker's (ordergraph/webhooks.py): claim due subscriptions, find a subscription's next
matching slot in the log, and record each attempt.

Claims: a worker reads which subscriptions are due, then sets `claimed_by` /
`claimed_until` on them, one UPDATE per store that only takes rows whose claim is free
or expired (checked again on each row it locks, so two processes never take the same
row; one store per transaction, so on Citus each touches one shard); it sends, then
records the outcome only while it still holds the claim and the position did not move
(a redeliver meanwhile wins). A process that dies leaves its claims to expire.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ordergraph.domain.errors import DomainError, ErrorCode
from ordergraph.domain.webhooks import (
    TOPIC_EVENTS,
    CreatedWebhook,
    DeliveryAttempt,
    DeliveryStatus,
    WebhookRecord,
    WebhookState,
    WebhookTopic,
    backlog_position,
    event_position,
    position_after,
    seq_of,
    slot_position,
    topic_of,
)
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database

Clock = Callable[[], dt.datetime]
ws = t.webhook_subscriptions
wd = t.webhook_deliveries
MAX_ERROR = 500
# How many log entries one look for a subscription's next event reads at most: a narrow
# filter over a long log moves the cursor a window at a time rather than in one scan.
SCAN_WINDOW = 10_000


def _topics(raw: str) -> tuple[WebhookTopic, ...]:
    return tuple(WebhookTopic(x) for x in raw.split(",") if x)


def _skus(raw: str | None) -> tuple[str, ...] | None:
    return tuple(raw.split(",")) if raw else None


def record_of(row: RowMapping) -> WebhookRecord:
    return WebhookRecord(
        id=int(row["id"]),
        store_id=int(row["store_id"]),
        url=row["url"],
        topics=_topics(row["topics"]),
        state=WebhookState(row["state"]),
        created_at=row["created_at"],
        position=int(row["position"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
        last_error=row["last_error"],
        last_status=row["last_status"],
        skus=_skus(row["skus"]),
        resume_position=row["resume_position"],
    )


def _attempt_of(row: RowMapping) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=int(row["id"]),
        subscription_id=int(row["subscription_id"]),
        seq=int(row["seq"]),
        topic=WebhookTopic(row["topic"]),
        status=DeliveryStatus(row["status"]),
        attempt=int(row["attempt"]),
        status_code=row["status_code"],
        latency_ms=row["latency_ms"],
        error=row["error"],
        at=row["at"],
        next_attempt_at=row["next_attempt_at"],
    )


async def _last_seq(conn: AsyncConnection, store_id: int) -> int | None:
    found = await conn.execute(select(t.stores.c.last_event_seq).where(t.stores.c.id == store_id))
    value = found.scalar()
    return None if value is None else int(value)


def _key(store_id: int, webhook_id: int) -> Any:
    return and_(ws.c.store_id == store_id, ws.c.id == webhook_id)


def _cursor_position(after_seq: int, last_seq: int) -> int:
    if after_seq > last_seq:
        raise DomainError.one(
            ErrorCode.INVALID, "the cursor is after the store's last event", ["after"]
        )
    return position_after(after_seq)


class SqlWebhooks:
    """The API's side: create, change, list and remove subscriptions; the delivery log."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self,
        store_id: int,
        url: str,
        topics: Sequence[WebhookTopic],
        after_seq: int | None,
        secret: str,
        skus: Sequence[str] | None = None,
    ) -> CreatedWebhook:
        s = t.stores
        async with self.db.write() as conn:
            # The store's id counter, under the store's row lock (as a unit of work takes it).
            bumped = await conn.execute(
                update(s)
                .where(s.c.id == store_id)
                .values(next_id=s.c.next_id + 1)
                .returning(s.c.next_id, s.c.last_event_seq)
            )
            row = bumped.first()
            if row is None:
                raise DomainError.one(ErrorCode.NOT_FOUND, "store not found", ["storeId"])
            webhook_id, last_seq = int(row[0]) - 1, int(row[1])
            position = (
                position_after(last_seq)
                if after_seq is None
                else _cursor_position(after_seq, last_seq)
            )
            await conn.execute(
                ws.insert().values(
                    store_id=store_id,
                    id=webhook_id,
                    url=url,
                    topics=",".join(topics),
                    state=WebhookState.ACTIVE.value,
                    secret=secret,
                    created_at=self.clock(),
                    position=position,
                    attempts=0,
                    log_serial=0,
                    skus=",".join(skus) if skus else None,
                )
            )
            found = (await conn.execute(select(ws).where(_key(store_id, webhook_id)))).mappings()
            created = CreatedWebhook(webhook=record_of(found.one()), secret=secret)
        self.db.webhooks_changed(store_id)
        return created

    async def get(self, store_id: int, webhook_id: int) -> WebhookRecord | None:
        async with self.db.read() as conn:
            row = (
                (await conn.execute(select(ws).where(_key(store_id, webhook_id))))
                .mappings()
                .first()
            )
        return record_of(row) if row else None

    async def of_store(self, store_id: int) -> list[WebhookRecord]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(ws).where(ws.c.store_id == store_id).order_by(ws.c.id))
            return [record_of(r) for r in rows.mappings()]

    async def _change(self, store_id: int, webhook_id: int, **values: Any) -> WebhookRecord | None:
        async with self.db.write() as conn:
            done = await conn.execute(update(ws).where(_key(store_id, webhook_id)).values(**values))
            if done.rowcount == 0:
                return None
            row = (await conn.execute(select(ws).where(_key(store_id, webhook_id)))).mappings()
            changed = record_of(row.one())
        # A resumed, redelivered or re-pointed subscription may have something to send now.
        self.db.webhooks_changed(store_id)
        return changed

    async def update(
        self,
        store_id: int,
        webhook_id: int,
        *,
        url: str | None,
        topics: Sequence[WebhookTopic] | None,
        paused: bool | None,
        skus: Sequence[str] | None = None,
        clear_skus: bool = False,
    ) -> WebhookRecord | None:
        values = _changes(url, topics, paused)
        if skus is not None or clear_skus:
            values["skus"] = ",".join(skus) if skus else None
        if paused is False:
            # Only a paused or disabled subscription is resumed; an active or failing one
            # keeps its state and its retry schedule.
            current = await self.get(store_id, webhook_id)
            if current is None:
                return None
            if current.state in (WebhookState.PAUSED, WebhookState.DISABLED):
                values.update(_fresh_head(WebhookState.ACTIVE))
        if not values:
            return await self.get(store_id, webhook_id)
        return await self._change(store_id, webhook_id, **values)

    async def delete(self, store_id: int, webhook_id: int) -> bool:
        async with self.db.write() as conn:
            await conn.execute(
                wd.delete().where(wd.c.store_id == store_id, wd.c.subscription_id == webhook_id)
            )
            done = await conn.execute(ws.delete().where(_key(store_id, webhook_id)))
            return bool(done.rowcount)

    async def rotate(
        self, store_id: int, webhook_id: int, secret: str, overlap: dt.timedelta
    ) -> WebhookRecord | None:
        return await self._change(
            store_id,
            webhook_id,
            previous_secret=ws.c.secret,
            previous_secret_until=self.clock() + overlap,
            secret=secret,
        )

    async def redeliver(
        self, store_id: int, webhook_id: int, after_seq: int
    ) -> WebhookRecord | None:
        async with self.db.read() as conn:
            last_seq = await _last_seq(conn, store_id)
        if last_seq is None:
            return None
        position = _cursor_position(after_seq, last_seq)
        current = await self.get(store_id, webhook_id)
        if current is None:
            return None
        state = WebhookState.PAUSED if current.state is WebhookState.PAUSED else WebhookState.ACTIVE
        return await self._change(
            store_id, webhook_id, position=position, resume_position=None, **_fresh_head(state)
        )

    async def redeliver_event(
        self, store_id: int, webhook_id: int, seq: int, figures: bool
    ) -> WebhookRecord | None:
        current = await self.get(store_id, webhook_id)
        if current is None:
            return None
        wanted = slot_position(seq, figures)
        # Where the cursor returns after the resend: where it is now, or where an
        # unfinished resend would have returned it.
        back_to = max(current.position, current.resume_position or 0)
        if wanted > back_to:
            raise DomainError.one(
                ErrorCode.INVALID,
                "this subscription has not delivered that event yet: it comes in its turn",
                ["eventId"],
            )
        async with self.db.read() as conn:
            matches = await _slot_matches(
                conn, store_id, current.topics, current.skus, seq, figures
            )
        if not matches:
            raise DomainError.one(
                ErrorCode.INVALID,
                "that event is not one this subscription receives (store, topics or SKUs)",
                ["eventId"],
            )
        state = WebhookState.PAUSED if current.state is WebhookState.PAUSED else WebhookState.ACTIVE
        return await self._change(
            store_id,
            webhook_id,
            position=wanted - 1,
            resume_position=back_to,
            **_fresh_head(state),
        )

    async def deliveries(
        self, store_id: int, webhook_id: int, first: int, before_id: int | None
    ) -> list[DeliveryAttempt]:
        """Attempts newest first, `first` of them, older than `before_id` if given."""
        query = select(wd).where(wd.c.store_id == store_id, wd.c.subscription_id == webhook_id)
        if before_id is not None:
            query = query.where(wd.c.id < before_id)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(wd.c.id.desc()).limit(first))
            return [_attempt_of(r) for r in rows.mappings()]


def _changes(
    url: str | None, topics: Sequence[WebhookTopic] | None, paused: bool | None
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if url is not None:
        values.update(url=url, next_attempt_at=None)
    if topics is not None:
        values["topics"] = ",".join(topics)
    if paused is True:
        values["state"] = WebhookState.PAUSED.value
    return values


def _fresh_head(state: WebhookState) -> dict[str, Any]:
    return {"state": state.value, "attempts": 0, "next_attempt_at": None, "first_failure_at": None}


# -- the worker's side ---------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A subscription a worker holds: what it needs to send its head."""

    store_id: int
    id: int
    url: str
    topics: tuple[WebhookTopic, ...]
    state: WebhookState
    secrets: tuple[str, ...]  # the current secret, then the previous one while it lasts
    position: int
    attempts: int
    first_failure_at: dt.datetime | None
    skus: tuple[str, ...] | None = None
    resume_position: int | None = None
    claimed_until: dt.datetime | None = None  # when the worker's claim lapses

    def after(self, position: int) -> int:
        """Where the cursor goes once the slot at `position` was acknowledged: past it,
        or back to where it stood before a single event was sent again."""
        return max(position, self.resume_position or 0)


@dataclass(frozen=True)
class Slot:
    """The next matching entry of the log after a subscription's position."""

    position: int
    seq: int
    topic: WebhookTopic
    occurred_at: dt.datetime
    event: RowMapping | None  # the events row (order and inventory topics)
    point: RowMapping | None  # the tally_points row (BACKLOG_CHANGED)


DELIVERING = (WebhookState.ACTIVE.value, WebhookState.FAILING.value)


async def delivering_stores(db: Database) -> set[int]:
    """The stores that have a subscription delivering (active or failing): the only ones
    a round woken by commits needs to look at."""
    async with db.read() as conn:
        query = select(ws.c.store_id).where(ws.c.state.in_(DELIVERING)).distinct()
        rows = await conn.execute(query)
    return {int(row[0]) for row in rows}


async def claim(
    db: Database,
    worker: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    stores: Collection[int] | None = None,
) -> list[Claimed]:
    """Take up to `limit` subscriptions that are due: delivering, their retry time come,
    the store's log past their position, and no live claim on them; of `stores` only
    when given (on Citus the read then reaches their shards alone)."""
    if stores is not None and not stores:
        return []
    s = t.stores
    due = (
        select(ws.c.store_id, ws.c.id)
        .join(s, s.c.id == ws.c.store_id)
        .where(
            ws.c.state.in_(DELIVERING),
            or_(ws.c.next_attempt_at.is_(None), ws.c.next_attempt_at <= now),
            or_(ws.c.claimed_until.is_(None), ws.c.claimed_until < now),
            s.c.last_event_seq * 2 + 1 > ws.c.position,
        )
        .order_by(ws.c.next_attempt_at.nulls_first(), ws.c.store_id, ws.c.id)
        .limit(limit)
    )
    if stores is not None:
        due = due.where(ws.c.store_id.in_(sorted(stores)))
    # A read first: most rounds find nothing due, and need no write transaction (on
    # SQLite, no write lock).
    async with db.read() as conn:
        keys = [(int(r[0]), int(r[1])) for r in await conn.execute(due)]
    by_store: dict[int, list[int]] = {}
    for store_id, webhook_id in keys:
        by_store.setdefault(store_id, []).append(webhook_id)
    # Then each store's in a transaction of its own (one shard on Citus): the UPDATE
    # checks the claim again on each row it locks, so of two processes that read the
    # same rows, one takes each; the other's UPDATE finds it claimed and skips it.
    rows = []
    for store_id, webhook_ids in by_store.items():
        async with db.write() as conn:
            taken = await conn.execute(
                update(ws)
                .where(ws.c.store_id == store_id, ws.c.id.in_(webhook_ids))
                .where(or_(ws.c.claimed_until.is_(None), ws.c.claimed_until < now))
                .values(claimed_by=worker, claimed_until=now + lease)
                .returning(ws)
            )
            rows += list(taken.mappings())
    return [_claimed(r, now) for r in rows]


def _claimed(row: RowMapping, now: dt.datetime) -> Claimed:
    secrets = [row["secret"]]
    until = row["previous_secret_until"]
    if row["previous_secret"] and until is not None and until > now:
        secrets.append(row["previous_secret"])
    return Claimed(
        store_id=int(row["store_id"]),
        id=int(row["id"]),
        url=row["url"],
        topics=_topics(row["topics"]),
        state=WebhookState(row["state"]),
        secrets=tuple(secrets),
        position=int(row["position"]),
        attempts=int(row["attempts"]),
        first_failure_at=row["first_failure_at"],
        skus=_skus(row["skus"]),
        resume_position=row["resume_position"],
        claimed_until=row["claimed_until"],
    )


def _event_filter(
    e: Any, store_id: int, topics: Sequence[WebhookTopic], skus: Sequence[str] | None
) -> Any:
    """The events (of the store `store_id`) a subscription receives: its topics' types,
    and with a SKU filter only the order events of orders with a line of one of the SKUs
    and the inventory events of products with one of them. Each subquery names the store
    itself: joined only on the event's `store_id`, Citus would read every shard."""
    wanted = [TOPIC_EVENTS[x] for x in topics if x in TOPIC_EVENTS]
    by_type = or_(*(and_(e.c.stream == a, e.c.type == b) for a, b in wanted))
    if not skus:
        return by_type
    lines, products = t.order_lines, t.products
    of_order = exists().where(
        lines.c.store_id == store_id,
        lines.c.store_id == e.c.store_id,
        lines.c.order_id == e.c.order_id,
        lines.c.sku.in_(list(skus)),
    )
    of_product = exists().where(
        products.c.store_id == store_id,
        products.c.store_id == e.c.store_id,
        products.c.id == e.c.product_id,
        products.c.sku.in_(list(skus)),
    )
    concerned = or_(
        and_(e.c.stream == "order", of_order), and_(e.c.stream == "inventory", of_product)
    )
    return and_(by_type, concerned)


async def _slot_matches(
    conn: AsyncConnection,
    store_id: int,
    topics: Sequence[WebhookTopic],
    skus: Sequence[str] | None,
    seq: int,
    figures: bool,
) -> bool:
    """Whether the event at `seq` (or its commit's figures change) is one the
    subscription receives."""
    if figures:
        if WebhookTopic.BACKLOG_CHANGED not in topics:
            return False
        p = t.tally_points
        found = await conn.execute(select(p.c.seq).where(p.c.store_id == store_id, p.c.seq == seq))
        return found.first() is not None
    if not any(x in TOPIC_EVENTS for x in topics):
        return False
    e = t.events
    found = await conn.execute(
        select(e.c.seq).where(
            e.c.store_id == store_id, e.c.seq == seq, _event_filter(e, store_id, topics, skus)
        )
    )
    return found.first() is not None


async def next_slots(db: Database, sub: Claimed, limit: int) -> tuple[list[Slot], int]:
    """Up to `limit` matching slots after the subscription's position, in log order (read
    ahead in one pass, so that a backlog costs these reads once per `limit` deliveries, not
    per delivery; committed log entries never change), and the position the subscription
    may move to when there is none (everything read so far matched nothing). At most
    SCAN_WINDOW log entries are read."""
    wanted = any(x in TOPIC_EVENTS for x in sub.topics)
    backlog = WebhookTopic.BACKLOG_CHANGED in sub.topics
    after_seq_event = seq_of(sub.position)  # events: seq > this
    after_seq_point = (sub.position - 1) // 2  # points: seq > this
    limit = max(1, limit)
    async with db.read() as conn:
        last_seq = await _last_seq(conn, sub.store_id) or 0
        upto = min(last_seq, after_seq_point + SCAN_WINDOW)
        events: list[RowMapping] = []
        if wanted:
            e = t.events
            found = await conn.execute(
                select(e)
                .where(
                    e.c.store_id == sub.store_id,
                    e.c.seq > after_seq_event,
                    e.c.seq <= upto,
                    _event_filter(e, sub.store_id, sub.topics, sub.skus),
                )
                .order_by(e.c.seq)
                .limit(limit)
            )
            events = list(found.mappings())
        points: list[RowMapping] = []
        if backlog:
            p = t.tally_points
            found = await conn.execute(
                select(p)
                .where(
                    p.c.store_id == sub.store_id,
                    p.c.seq > after_seq_point,
                    p.c.seq <= upto,
                )
                .order_by(p.c.seq)
                .limit(limit)
            )
            points = list(found.mappings())
    caught_up = sub.after(max(sub.position, position_after(upto)))
    slots: list[Slot] = []
    for event in events:
        topic = topic_of(event["stream"], event["type"])
        assert topic is not None
        seq = int(event["seq"])
        slots.append(Slot(event_position(seq), seq, topic, event["occurred_at"], event, None))
    for point in points:
        seq = int(point["seq"])
        slots.append(
            Slot(backlog_position(seq), seq, WebhookTopic.BACKLOG_CHANGED, point["at"], None, point)
        )
    slots.sort(key=lambda x: x.position)
    return slots[:limit], caught_up


async def next_slot(db: Database, sub: Claimed) -> tuple[Slot | None, int]:
    """The first matching slot after the subscription's position (`next_slots` of one)."""
    slots, caught_up = await next_slots(db, sub, 1)
    return (slots[0] if slots else None), caught_up


def _held(sub: Claimed, worker: str) -> Any:
    return and_(
        _key(sub.store_id, sub.id),
        ws.c.claimed_by == worker,
        ws.c.position == sub.position,
    )


async def move_on(db: Database, sub: Claimed, worker: str, position: int) -> bool:
    """Nothing to send up to `position`: move the cursor there and let the claim go. False
    if the claim was lost or the position moved meanwhile (nothing changed)."""
    async with db.write() as conn:
        done = await conn.execute(
            update(ws)
            .where(_held(sub, worker))
            .values(position=position, resume_position=None, claimed_by=None, claimed_until=None)
        )
        return bool(done.rowcount)


async def renew(db: Database, sub: Claimed, worker: str, until: dt.datetime) -> bool:
    """Extend the worker's claim to `until`; False if it was lost or the position moved."""
    async with db.write() as conn:
        done = await conn.execute(update(ws).where(_held(sub, worker)).values(claimed_until=until))
        return bool(done.rowcount)


async def release(db: Database, sub: Claimed, worker: str) -> None:
    async with db.write() as conn:
        await conn.execute(
            update(ws)
            .where(_key(sub.store_id, sub.id), ws.c.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None)
        )


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    status: DeliveryStatus
    status_code: int | None
    latency_ms: int
    error: str | None
    at: dt.datetime
    next_attempt_at: dt.datetime | None = None
    state: WebhookState = WebhookState.ACTIVE


async def record(
    db: Database,
    sub: Claimed,
    worker: str,
    slot: Slot,
    outcome: Outcome,
    *,
    keep_for: dt.timedelta | None = None,
    through: int | None = None,
) -> bool:
    """Log the attempt and move the subscription on (success) or schedule its retry;
    the claim is let go, or (`keep_for`) renewed to send the next one. `through`: on
    success, move the position on to it (a position `next_slots` gave as caught up, when
    this slot was the last one it read: what `move_on` would do next, in the same
    statement). False if the claim was lost or the position moved meanwhile: the attempt
    is still logged, and a success whose claim lapsed still moves the position if it is
    where the attempt found it."""
    succeeded = outcome.status is DeliveryStatus.SUCCEEDED
    error = outcome.error[:MAX_ERROR] if outcome.error else None
    keep = keep_for is not None
    values: dict[str, Any] = {
        "claimed_by": worker if keep else None,
        "claimed_until": outcome.at + keep_for if keep_for is not None else None,
        "last_status": outcome.status_code,
        "log_serial": ws.c.log_serial + 1,
    }
    if succeeded:
        values.update(
            position=sub.after(slot.position if through is None else max(slot.position, through)),
            resume_position=None,
            state=WebhookState.ACTIVE.value,
            attempts=0,
            next_attempt_at=None,
            first_failure_at=None,
            last_success_at=outcome.at,
        )
    else:
        values.update(
            state=outcome.state.value,
            attempts=sub.attempts + 1,
            next_attempt_at=outcome.next_attempt_at,
            first_failure_at=sub.first_failure_at or outcome.at,
            last_failure_at=outcome.at,
            last_error=error,
        )
    async with db.write() as conn:
        done = await conn.execute(
            update(ws).where(_held(sub, worker)).values(**values).returning(ws.c.log_serial)
        )
        serial = done.scalar()
        if serial is None:
            # The claim lapsed (another worker may hold it now) or a redeliver moved the
            # cursor. A 2xx is still a 2xx: if the cursor is where this attempt found it,
            # it moves past the slot, so that the event is not sent again for a lapse
            # alone (another holder's record then finds the cursor moved and lets go).
            # The claim is left as it is; anything else is logged only.
            claim = ("claimed_by", "claimed_until")
            moved = (
                {k: v for k, v in values.items() if k not in claim}
                if succeeded
                else {"log_serial": ws.c.log_serial + 1}
            )
            serial = (
                await conn.execute(
                    update(ws)
                    .where(_key(sub.store_id, sub.id), ws.c.position == sub.position)
                    .values(**moved)
                    .returning(ws.c.log_serial)
                )
            ).scalar()
            if serial is None:  # the cursor moved meanwhile: log only
                serial = (
                    await conn.execute(
                        update(ws)
                        .where(_key(sub.store_id, sub.id))
                        .values(log_serial=ws.c.log_serial + 1)
                        .returning(ws.c.log_serial)
                    )
                ).scalar()
            if serial is None:  # deleted meanwhile
                return False
            held = False
        else:
            held = True
        await conn.execute(
            wd.insert().values(
                store_id=sub.store_id,
                subscription_id=sub.id,
                id=int(serial),
                seq=slot.seq,
                topic=slot.topic.value,
                status=outcome.status.value,
                attempt=sub.attempts + 1,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=error,
                at=outcome.at,
                next_attempt_at=outcome.next_attempt_at,
            )
        )
    return held


def advanced(sub: Claimed, slot: Slot, until: dt.datetime | None = None) -> Claimed:
    """The claim after the slot was acknowledged: the position past it, a fresh head, the
    claim renewed to `until`."""
    return replace(
        sub,
        position=sub.after(slot.position),
        resume_position=None,
        attempts=0,
        first_failure_at=None,
        claimed_until=until,
    )


async def prune_log(db: Database, before: dt.datetime) -> int:
    """Forget delivery attempts older than `before`."""
    async with db.write() as conn:
        done = await conn.execute(wd.delete().where(wd.c.at < before))
        return int(done.rowcount or 0)


async def lag_by_state(db: Database, now: dt.datetime) -> dict[str, float]:
    """Per state, the age in seconds of the oldest undelivered event of any subscription
    in it (the log time of the first event after each position; 0 when caught up)."""
    e = t.events
    # The first event after the cursor, by the key's index (business time never runs
    # backwards within a store, so it is also the oldest).
    first_after = (
        select(e.c.occurred_at)
        .where(e.c.store_id == ws.c.store_id, e.c.seq > ws.c.position // 2)
        .order_by(e.c.seq)
        .limit(1)
        .correlate(ws)
        .scalar_subquery()
    )
    async with db.read() as conn:
        rows = await conn.execute(select(ws.c.state, func.min(first_after)).group_by(ws.c.state))
        found: dict[str, float] = {}
        for state, oldest in rows:
            found[state] = 0.0
            if oldest is not None:
                when = t.UtcDateTime().process_result_value(oldest, conn.dialect)
                if when is not None:
                    found[state] = max(0.0, (now - when).total_seconds())
        return found
