"""Webhook types: subscriptions, their delivery log, the mutations' inputs and payloads."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from ordergraph.domain.paging import Page, PageRequest, encode_cursor
from ordergraph.domain.webhooks import DeliveryAttempt, WebhookRecord, event_id
from ordergraph.resolvers import ids
from ordergraph.resolvers.webhook_reads import deliveries_page
from ordergraph.schema.connections import Connection
from ordergraph.schema.nodes import Ctx, Node, traverse

if TYPE_CHECKING:
    from ordergraph.schema.types import StoreType, UserError

_TOPICS = {
    "ORDER_PLACED": "An order was placed (OrderEventType.PLACED).",
    "ORDER_BACKORDERED": "An order waits for stock on some units (BACKORDERED).",
    "ORDER_BACKORDER_FILLED": "Stock arrived for an order's backordered units.",
    "ORDER_PARTIALLY_SHIPPED": "Some of an order's units shipped.",
    "ORDER_SHIPPED": "An order shipped in full.",
    "ORDER_CANCELLED": "An order was cancelled.",
    "ORDER_OVERDUE": "An open order's requested ship date ended.",
    "ORDER_EXPECTED_SHIP_DATE_CHANGED": "A waiting order's expected ship date changed, "
    "because a receipt was scheduled, changed, cancelled or received against "
    "(EXPECTED_SHIP_DATE_CHANGED).",
    "INVENTORY_RECEIVED": "Stock was received for a product.",
    "INVENTORY_ADJUSTED": "A product's stock was adjusted.",
    "INVENTORY_OUT_OF_STOCK": "A product ran out of available stock.",
    "INVENTORY_BACK_IN_STOCK": "A product has available stock again.",
    "BACKLOG_CHANGED": "The store's backlog figures after a change that moved them.",
}


@strawberry.enum(
    name="WebhookTopic",
    description="What a webhook subscription receives: one order or inventory event "
    "type, or BACKLOG_CHANGED, the store's backlog figures after each change.",
)
class WebhookTopic(Enum):
    ORDER_PLACED = strawberry.enum_value("ORDER_PLACED", description=_TOPICS["ORDER_PLACED"])
    ORDER_BACKORDERED = strawberry.enum_value(
        "ORDER_BACKORDERED", description=_TOPICS["ORDER_BACKORDERED"]
    )
    ORDER_BACKORDER_FILLED = strawberry.enum_value(
        "ORDER_BACKORDER_FILLED", description=_TOPICS["ORDER_BACKORDER_FILLED"]
    )
    ORDER_PARTIALLY_SHIPPED = strawberry.enum_value(
        "ORDER_PARTIALLY_SHIPPED", description=_TOPICS["ORDER_PARTIALLY_SHIPPED"]
    )
    ORDER_SHIPPED = strawberry.enum_value("ORDER_SHIPPED", description=_TOPICS["ORDER_SHIPPED"])
    ORDER_CANCELLED = strawberry.enum_value(
        "ORDER_CANCELLED", description=_TOPICS["ORDER_CANCELLED"]
    )
    ORDER_OVERDUE = strawberry.enum_value("ORDER_OVERDUE", description=_TOPICS["ORDER_OVERDUE"])
    ORDER_EXPECTED_SHIP_DATE_CHANGED = strawberry.enum_value(
        "ORDER_EXPECTED_SHIP_DATE_CHANGED",
        description=_TOPICS["ORDER_EXPECTED_SHIP_DATE_CHANGED"],
    )
    INVENTORY_RECEIVED = strawberry.enum_value(
        "INVENTORY_RECEIVED", description=_TOPICS["INVENTORY_RECEIVED"]
    )
    INVENTORY_ADJUSTED = strawberry.enum_value(
        "INVENTORY_ADJUSTED", description=_TOPICS["INVENTORY_ADJUSTED"]
    )
    INVENTORY_OUT_OF_STOCK = strawberry.enum_value(
        "INVENTORY_OUT_OF_STOCK", description=_TOPICS["INVENTORY_OUT_OF_STOCK"]
    )
    INVENTORY_BACK_IN_STOCK = strawberry.enum_value(
        "INVENTORY_BACK_IN_STOCK", description=_TOPICS["INVENTORY_BACK_IN_STOCK"]
    )
    BACKLOG_CHANGED = strawberry.enum_value(
        "BACKLOG_CHANGED", description=_TOPICS["BACKLOG_CHANGED"]
    )


@strawberry.enum(name="WebhookState", description="Whether a subscription delivers.")
class WebhookState(Enum):
    ACTIVE = strawberry.enum_value("ACTIVE", description="Delivering, or caught up.")
    PAUSED = strawberry.enum_value(
        "PAUSED",
        description="Sends nothing but keeps its cursor: on resume it catches up, nothing is lost.",
    )
    FAILING = strawberry.enum_value(
        "FAILING",
        description="The next event failed and is retried with backoff (see lastError, "
        "nextAttemptAt); later events wait behind it.",
    )
    DISABLED = strawberry.enum_value(
        "DISABLED",
        description="Stopped after a 410 answer or when the retry window ran out (see "
        "lastError); updateWebhookSubscription(paused: false) resumes from the cursor.",
    )


@strawberry.enum(name="WebhookDeliveryStatus", description="What one delivery attempt came to.")
class WebhookDeliveryStatus(Enum):
    PENDING = strawberry.enum_value(
        "PENDING", description="Not attempted yet (attempts in the log are never pending)."
    )
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Answered with a 2xx.")
    FAILED_RETRYING = strawberry.enum_value(
        "FAILED_RETRYING", description="Failed; tried again at nextAttemptAt."
    )
    GAVE_UP = strawberry.enum_value(
        "GAVE_UP", description="Failed, and the subscription was disabled."
    )


@strawberry.type(
    name="WebhookDelivery",
    description="One attempt to deliver one event to a webhook subscription's URL.",
)
class WebhookDeliveryType:
    _attempt: strawberry.Private[DeliveryAttempt]
    _store_id: strawberry.Private[int]

    @strawberry.field(description="The delivered event's id, as in the body's `id`.")
    def event_id(self) -> strawberry.ID:
        return strawberry.ID(event_id(self._store_id, self._attempt.seq, self._attempt.topic))

    @strawberry.field(description="The event's cursor in the store's log (as orderEvents cursors).")
    def cursor(self) -> str:
        return encode_cursor([self._attempt.seq])

    @strawberry.field(description="The topic the event was delivered as.")
    def topic(self) -> WebhookTopic:
        return WebhookTopic(self._attempt.topic.value)

    @strawberry.field(description="What this attempt came to.")
    def status(self) -> WebhookDeliveryStatus:
        return WebhookDeliveryStatus(self._attempt.status.value)

    @strawberry.field(
        description="Which attempt at this event this was, counting from 1 since the "
        "event became the subscription's next one."
    )
    def attempts(self) -> int:
        return self._attempt.attempt

    @strawberry.field(description="The HTTP status answered; null when none came.")
    def last_status_code(self) -> int | None:
        return self._attempt.status_code

    @strawberry.field(description="Milliseconds from sending to the answer (or failure).")
    def last_latency_ms(self) -> int | None:
        return self._attempt.latency_ms

    @strawberry.field(description="When the attempt was made.")
    def attempted_at(self) -> dt.datetime:
        return self._attempt.at

    @strawberry.field(
        description="Why the attempt failed (status, timeout, refused address...); null on success."
    )
    def error(self) -> str | None:
        return self._attempt.error

    @strawberry.field(description="When the event is tried again; null unless retrying.")
    def next_attempt_at(self) -> dt.datetime | None:
        return self._attempt.next_attempt_at


@strawberry.type(
    name="WebhookSubscription",
    description="A store's webhook subscription: ordergraph POSTs each matching event of "
    "the store's log to `url`, signed, in order, one at a time (docs/webhooks.md).",
)
class WebhookSubscriptionType(Node):
    _record: strawberry.Private[WebhookRecord]

    @strawberry.field(description="The subscription's global ID.")
    def id(self) -> strawberry.ID:
        r = self._record
        return strawberry.ID(ids.encode("WebhookSubscription", r.store_id, r.id))

    @strawberry.field(description="The store whose events are delivered (READ scope).")
    async def store(
        self, info: Ctx
    ) -> Annotated[StoreType, strawberry.lazy("ordergraph.schema.types")]:
        from ordergraph.schema.types import StoreType

        await traverse(info)
        store = await info.context.loaders.store.load(self._record.store_id)
        assert store is not None
        return StoreType(_store=store)

    @strawberry.field(description="Where events are POSTed (https).")
    def url(self) -> str:
        return self._record.url

    @strawberry.field(description="The topics delivered, sorted.")
    def topics(self) -> list[WebhookTopic]:
        return [WebhookTopic(t.value) for t in self._record.topics]

    @strawberry.field(
        description="The SKU filter: order events are delivered only for orders with a "
        "line of one of these SKUs, inventory events only for products with one of them "
        "(BACKLOG_CHANGED is the whole store's and is not filtered). Null: every SKU."
    )
    def skus(self) -> list[str] | None:
        return list(self._record.skus) if self._record.skus is not None else None

    @strawberry.field(description="Whether it delivers, and if not why (see WebhookState).")
    def state(self) -> WebhookState:
        return WebhookState(self._record.state.value)

    @strawberry.field(description="When the subscription was created.")
    def created_at(self) -> dt.datetime:
        return self._record.created_at

    @strawberry.field(description="When an event was last acknowledged with a 2xx.")
    def last_success_at(self) -> dt.datetime | None:
        return self._record.last_success_at

    @strawberry.field(description="When an attempt last failed.")
    def last_failure_at(self) -> dt.datetime | None:
        return self._record.last_failure_at

    @strawberry.field(description="Why the last failed attempt failed; null if none did.")
    def last_error(self) -> str | None:
        return self._record.last_error

    @strawberry.field(
        description="How many times the next event has failed so far (0 when none did)."
    )
    def attempts(self) -> int:
        return self._record.attempts

    @strawberry.field(description="When the next event is tried again; null when not waiting.")
    def next_attempt_at(self) -> dt.datetime | None:
        return self._record.next_attempt_at

    @strawberry.field(
        description="Cursor of the last event delivered and acknowledged, in the store's "
        "event order (the same cursors as orderEvents); null before the store's first event."
    )
    def delivered_through(self) -> str | None:
        seq = self._record.delivered_through
        return encode_cursor([seq]) if seq is not None else None

    @strawberry.field(
        description="The delivery log, newest attempt first: `first` at most 100 "
        "(default 20), `after` an endCursor of this connection. Attempts are kept "
        "for ORDERGRAPH_WEBHOOK_LOG_DAYS days."
    )
    async def deliveries(
        self,
        info: Ctx,
        first: Annotated[
            int | None, strawberry.argument(description="How many attempts (at most 100).")
        ] = None,
        after: Annotated[
            str | None, strawberry.argument(description="An endCursor of this connection.")
        ] = None,
    ) -> Connection[WebhookDeliveryType]:
        r = self._record
        page: Page = await deliveries_page(info.context, r, PageRequest(first=first, after=after))
        return Connection[WebhookDeliveryType].of(
            page, lambda a: WebhookDeliveryType(_attempt=a, _store_id=r.store_id)
        )


@strawberry.input(description="A new webhook subscription.")
class CreateWebhookSubscriptionInput:
    store_id: strawberry.ID = strawberry.field(description="The store whose events to send.")
    url: str = strawberry.field(
        description="An https URL (at most 2,048 characters) on a public address."
    )
    topics: list[WebhookTopic] = strawberry.field(description="At least one topic.")
    after: str | None = strawberry.field(
        default=None,
        description="Start delivering after this event cursor (orderEvents cursors); "
        "null = events committed from now on.",
    )
    skus: list[str] | None = strawberry.field(
        default=None,
        description="Only events that concern these SKUs (1 to 100 SKUs; they need not "
        "exist yet): see WebhookSubscription.skus. Null: every SKU.",
    )


@strawberry.input(description="Changes to a webhook subscription; null leaves a value as is.")
class UpdateWebhookSubscriptionInput:
    id: strawberry.ID = strawberry.field(description="The subscription's ID.")
    url: str | None = strawberry.field(default=None, description="A new https URL.")
    topics: list[WebhookTopic] | None = strawberry.field(
        default=None, description="The new set of topics (at least one)."
    )
    paused: bool | None = strawberry.field(
        default=None,
        description="true pauses (the cursor stays, nothing is lost); false resumes a "
        "PAUSED or DISABLED subscription from its cursor.",
    )
    skus: list[str] | None = strawberry.field(
        default=None,
        description="A new SKU filter (at most 100 SKUs); an empty list removes the "
        "filter (every SKU again); null leaves it as is.",
    )


@strawberry.input(description="Deliver events again from a cursor.")
class RedeliverWebhookInput:
    id: strawberry.ID = strawberry.field(description="The subscription's ID.")
    after: str = strawberry.field(
        description="Every matching event after this cursor is delivered again, in order "
        "(to send one event again, give the cursor of the event before it)."
    )


@strawberry.input(description="Send one event again.")
class RedeliverWebhookEventInput:
    id: strawberry.ID = strawberry.field(description="The subscription's ID.")
    event_id: strawberry.ID = strawberry.field(
        description="The event's id, as a delivery's body `id`, its `Ordergraph-Event-Id` "
        "header or `WebhookDelivery.eventId` give it. The subscription must have delivered "
        "it already, and it must match the subscription's topics and SKUs."
    )


@strawberry.type(description="The new subscription, and its signing secret (shown once).")
class CreateWebhookSubscriptionPayload:
    webhook_subscription: WebhookSubscriptionType | None = strawberry.field(
        description="The subscription; null when userErrors says why not."
    )
    secret: str | None = strawberry.field(
        description="The signing secret: shown only here; keep it to verify signatures."
    )
    user_errors: list[Annotated[UserError, strawberry.lazy("ordergraph.schema.types")]] = (
        strawberry.field(description="Why nothing was created (empty on success).")
    )


@strawberry.type(description="The subscription after the change.")
class UpdateWebhookSubscriptionPayload:
    webhook_subscription: WebhookSubscriptionType | None = strawberry.field(
        description="The subscription; null when userErrors says why not."
    )
    user_errors: list[Annotated[UserError, strawberry.lazy("ordergraph.schema.types")]] = (
        strawberry.field(description="Why nothing changed (empty on success).")
    )


@strawberry.type(description="Which subscription was deleted.")
class DeleteWebhookSubscriptionPayload:
    deleted_id: strawberry.ID | None = strawberry.field(
        description="The deleted subscription's ID; null when userErrors says why not."
    )
    user_errors: list[Annotated[UserError, strawberry.lazy("ordergraph.schema.types")]] = (
        strawberry.field(description="Why nothing was deleted (empty on success).")
    )


@strawberry.type(description="The subscription with its new secret (shown once).")
class RotateWebhookSecretPayload:
    webhook_subscription: WebhookSubscriptionType | None = strawberry.field(
        description="The subscription; null when userErrors says why not."
    )
    secret: str | None = strawberry.field(
        description="The new signing secret, shown only here. The previous one keeps "
        "signing, as a second v1= signature, for 24 hours."
    )
    user_errors: list[Annotated[UserError, strawberry.lazy("ordergraph.schema.types")]] = (
        strawberry.field(description="Why nothing changed (empty on success).")
    )


@strawberry.type(description="The subscription with its cursor moved back.")
class RedeliverWebhookPayload:
    webhook_subscription: WebhookSubscriptionType | None = strawberry.field(
        description="The subscription; null when userErrors says why not."
    )
    user_errors: list[Annotated[UserError, strawberry.lazy("ordergraph.schema.types")]] = (
        strawberry.field(description="Why nothing changed (empty on success).")
    )
