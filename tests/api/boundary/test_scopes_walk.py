"""Scopes hold through traversal: every field of the served schema, from every root and
mutation payload, with every kind of token.

The schema is read by introspection. From each root (each Query field, each Mutation
field, and `node`/`nodes` once per kind of object) the walk finds the shortest path to
every type it can reach and builds, for every field of that type, a query that goes down
that path and selects the field. Each query is sent with each token below; what it must
answer is derived from two tables:

- ROOTS: what each root field needs (a READ key, an ORDERS or INVENTORY key, the admin
  token);
- FIELDS: for every field of every object type, OWN (a field of the object itself:
  whoever reached the object sees it) or READ (it leads past the object a mutation
  returned, or to store-wide data: only keys with READ; the admin token and keys with
  only ORDERS or INVENTORY get FORBIDDEN).

The expected answer of a query is the first step of its path its token may not take:
UNAUTHENTICATED without a valid token, FORBIDDEN there, or data, in which case the field
must really have been resolved (the test data makes every list on the way non-empty). A
field of the schema missing from FIELDS, or a root missing from ROOTS, fails the test:
a new field needs its row here before it ships.

Probes that fail at the same place are sent together: each probe gets an alias at the
nearest nullable field above the place it fails, so one probe's error cannot hide
another's data (probes with no nullable field on the way go alone). A root a token may
not use is probed once (the root and __typename): nothing below it runs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    build_client_schema,
    get_introspection_query,
    get_named_type,
)
from sqlalchemy import delete

from ordergraph.clock import Clock
from ordergraph.domain.paging import encode_cursor
from ordergraph.settings import Settings
from ordergraph.storage import tables as t
from ordergraph.storage.db import Database
from ordergraph.webhooks import DeliverySettings, WebhookWorker
from tests.client import Api, StoreHandle
from tests.conftest import ADMIN_TOKEN, app_client
from tests.webhook_receiver import Receiver
from tests.ws_client import ws_connect
from tests.ws_support import Key, make_key, serve_in_process, shop

OWN, READ = "own", "read"
# A field that needs the WEBHOOKS scope (a store's subscriptions, their delivery log).
HOOKS = "webhooks"

# What each root field needs. "READ", "ORDERS", "INVENTORY": an API key with that scope
# (for the store it names); "ADMIN": the admin token. Subscriptions need a READ key to
# open the websocket at all.
ROOTS: dict[str, str] = {
    "Query.node": "READ",  # and the admin token for an ApiKey id (see NODE_NEEDS)
    "Query.nodes": "READ",
    "Query.stores": "READ",
    "Query.store": "READ",
    "Mutation.createStore": "ADMIN",
    "Mutation.createApiKey": "ADMIN",
    "Mutation.revokeApiKey": "ADMIN",
    "Mutation.upsertProduct": "INVENTORY",
    "Mutation.receiveStock": "INVENTORY",
    "Mutation.adjustStock": "INVENTORY",
    "Mutation.scheduleReceipt": "INVENTORY",
    "Mutation.updateReceipt": "INVENTORY",
    "Mutation.cancelReceipt": "INVENTORY",
    "Mutation.placeOrder": "ORDERS",
    "Mutation.shipOrder": "ORDERS",
    "Mutation.cancelOrder": "ORDERS",
    "Mutation.createWebhookSubscription": "WEBHOOKS",
    "Mutation.updateWebhookSubscription": "WEBHOOKS",
    "Mutation.deleteWebhookSubscription": "WEBHOOKS",
    "Mutation.rotateWebhookSecret": "WEBHOOKS",
    "Mutation.redeliverWebhook": "WEBHOOKS",
    "Mutation.redeliverWebhookEvent": "WEBHOOKS",
    "Subscription.orderEvents": "READ",
    "Subscription.inventoryEvents": "READ",
    "Subscription.backlogChanged": "READ",
}
NODE_NEEDS = {"Store": "READ", "Product": "READ", "Order": "READ", "OrderLine": "READ"}
NODE_NEEDS["ApiKey"] = "ADMIN"
NODE_NEEDS["WebhookSubscription"] = "WEBHOOKS"
NODE_NEEDS["IncomingReceipt"] = "READ"


def _own(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, OWN)


# Every field of every object type (introspection types aside).
FIELDS: dict[str, dict[str, str]] = {
    # A store is reached by READ keys (its own stores) and by the admin token (the store
    # it created, the stores of a key): the admin sees its id and handle, nothing else.
    "Store": {
        **_own("id", "handle"),
        **dict.fromkeys(
            ["name", "currencyCode", "timezone", "defaultBackorderPolicy", "createdAt"], READ
        ),
        **dict.fromkeys(
            [
                "product",
                "products",
                "backorderedProducts",
                "order",
                "orders",
                "backlog",
                "backlogTrend",
                "events",
                "backorderOutcomes",
                "backorderOutcomesTrend",
                "backorderLeaders",
            ],
            READ,
        ),
        "webhookSubscriptions": HOOKS,
    },
    "Product": {
        **_own(
            "id",
            "sku",
            "title",
            "price",
            "backorderPolicy",
            "backorderLimit",
            "restockDate",
            "onHand",
            "allocated",
            "available",
            "backordered",
            "availableToSell",
        ),
        "store": READ,
        "backorderQueue": READ,
        "incoming": READ,
        "unitsToReorder": READ,
        "expectedFills": READ,
        "backorderOutcomes": READ,
    },
    "IncomingReceipt": {
        **_own("id", "quantity", "received", "expectedAt", "reference", "status", "createdAt"),
        "product": READ,
    },
    "Order": {
        **_own(
            "id",
            "number",
            "externalId",
            "customerRef",
            "placedAt",
            "requestedShipDate",
            "status",
            "stockStatus",
            "inBacklog",
            "isBackordered",
            "isOverdue",
            "expectedShipDate",
            "lines",
            "total",
            "backorderedValue",
        ),
        "store": READ,
        "events": READ,
    },
    "OrderLine": {
        **_own(
            "id",
            "sku",
            "quantity",
            "unitPrice",
            "allocated",
            "backordered",
            "shipped",
            "cancelled",
            "expectedFillDate",
            "queuePosition",
        ),
        "order": READ,  # another object (even its own order): past what was returned
        "product": READ,
    },
    "ApiKey": _own("id", "name", "scopes", "stores", "createdAt", "revokedAt"),
    "Money": _own("amount", "currencyCode"),
    "PageInfo": _own("hasNextPage", "hasPreviousPage", "startCursor", "endCursor"),
    "UserError": _own("field", "message", "code"),
    "StoreEdge": _own("cursor", "node"),
    "StoreConnection": _own("edges", "nodes", "pageInfo"),
    "ProductEdge": _own("cursor", "node"),
    "ProductConnection": _own("edges", "nodes", "pageInfo", "totalCount"),
    "OrderEdge": _own("cursor", "node"),
    "OrderConnection": _own("edges", "nodes", "pageInfo", "totalCount"),
    "OrderLineEdge": _own("cursor", "node"),
    "OrderLineConnection": _own("edges", "nodes", "pageInfo", "totalCount"),
    "OrderEvent": _own("cursor", "type", "occurredAt", "status", "stockStatus", "order"),
    "OrderEventEdge": _own("cursor", "node"),
    "OrderEventConnection": _own("edges", "nodes", "pageInfo"),
    "StoreEvent": _own("id", "cursor", "occurredAt", "orderEvent", "inventoryEvent"),
    "StoreEventEdge": _own("cursor", "node"),
    "StoreEventConnection": _own("edges", "nodes", "pageInfo"),
    "InventoryEvent": _own(
        "cursor", "type", "occurredAt", "product", "onHand", "available", "backordered"
    ),
    "OrderTally": _own("orders", "units", "value"),
    "BacklogSummary": _own(
        "asOf",
        "backlog",
        "backorders",
        "overdue",
        "overdueBackorders",
        "oldestBackorderPlacedAt",
    ),
    "BacklogPoint": _own("at", "backlog", "backorders", "overdue"),
    "BackorderOutcomes": _own(
        "from",
        "to",
        "started",
        "filled",
        "wait",
        "cancelledWhileWaiting",
        "lostRevenue",
        "ordersPlaced",
        "backorderRate",
        "overdueShare",
        "stillWaiting",
    ),
    "WaitQuantiles": _own("p50", "p90", "max", "relativeError"),
    "AgeBucket": _own("label", "minDays", "maxDays", "tally"),
    "CancelledTally": _own("reason", "tally"),
    "BackorderOutcomesPoint": _own("at", "outcomes"),
    # reached through Product.expectedFills (READ) only
    "ExpectedFillRun": _own(
        "expectedFillDate", "receipt", "firstPosition", "lines", "units", "firstLine", "lastLine"
    ),
    # reached through Store.backorderLeaders (READ) only
    "ProductOutcome": _own("product", "outcomes", "unitsToReorder"),
    "CreateStorePayload": _own("store", "apiKey", "token", "userErrors"),
    "CreateApiKeyPayload": _own("apiKey", "token", "userErrors"),
    "RevokeApiKeyPayload": _own("apiKey", "userErrors"),
    "UpsertProductPayload": _own("product", "userErrors"),
    "ReceiveStockPayload": _own("product", "filledLines", "receipt", "userErrors"),
    "ScheduleReceiptPayload": _own("receipt", "userErrors"),
    "UpdateReceiptPayload": _own("receipt", "userErrors"),
    "CancelReceiptPayload": _own("receipt", "userErrors"),
    "AdjustStockPayload": _own("product", "userErrors"),
    "PlaceOrderPayload": _own("order", "userErrors"),
    "ShipOrderPayload": _own("order", "userErrors"),
    "CancelOrderPayload": _own("order", "userErrors"),
    "WebhookSubscription": {
        **_own(
            "id",
            "url",
            "topics",
            "state",
            "createdAt",
            "lastSuccessAt",
            "lastFailureAt",
            "lastError",
            "attempts",
            "nextAttemptAt",
            "deliveredThrough",
            "skus",
        ),
        "store": READ,
        "deliveries": HOOKS,
    },
    "WebhookDelivery": _own(
        "eventId",
        "cursor",
        "topic",
        "status",
        "attempts",
        "lastStatusCode",
        "lastLatencyMs",
        "attemptedAt",
        "error",
        "nextAttemptAt",
    ),
    "WebhookDeliveryEdge": _own("cursor", "node"),
    "WebhookDeliveryConnection": _own("edges", "nodes", "pageInfo"),
    "CreateWebhookSubscriptionPayload": _own("webhookSubscription", "secret", "userErrors"),
    "UpdateWebhookSubscriptionPayload": _own("webhookSubscription", "userErrors"),
    "DeleteWebhookSubscriptionPayload": _own("deletedId", "userErrors"),
    "RotateWebhookSecretPayload": _own("webhookSubscription", "secret", "userErrors"),
    "RedeliverWebhookPayload": _own("webhookSubscription", "userErrors"),
}


@dataclass(frozen=True)
class Token:
    name: str
    token: str | None
    scopes: frozenset[str] = frozenset()
    admin: bool = False


SCOPE_SETS = [
    ("READ",),
    ("ORDERS",),
    ("INVENTORY",),
    ("ORDERS", "INVENTORY"),
    ("READ", "ORDERS"),
    ("READ", "INVENTORY"),
    ("READ", "ORDERS", "INVENTORY"),
    ("WEBHOOKS",),
    ("READ", "WEBHOOKS"),
]


def root_outcome(token: Token, needs: str) -> str | None:
    """The error code a root answers this token with, or None when it may use it."""
    if token.admin:
        return None if needs == "ADMIN" else "FORBIDDEN"
    if not token.scopes:
        return "UNAUTHENTICATED"
    return None if needs in token.scopes else "FORBIDDEN"


def field_outcome(token: Token, rule: str) -> str | None:
    if rule == OWN:
        return None
    if rule == HOOKS:
        return None if "WEBHOOKS" in token.scopes else "FORBIDDEN"
    return None if "READ" in token.scopes else "FORBIDDEN"


# -- the walk -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    parent: str
    name: str
    args: str
    type: GraphQLOutputType
    fragment: str | None = None  # `... on T` inside this field (node roots)


@dataclass
class Probe:
    steps: list[Step]
    root: str  # e.g. "Mutation.placeOrder" or "Query.node@Order"
    expected: tuple[int, str] | None = None  # (step index, code) or None: data
    alias_at: int | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.root + " > " + ".".join(f"{s.parent}.{s.name}" for s in self.steps[1:])


def _nullable(kind: GraphQLOutputType) -> bool:
    return not isinstance(kind, GraphQLNonNull)


def _nullable_items(kind: GraphQLOutputType) -> bool:
    inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
    return isinstance(inner, GraphQLList) and _nullable(inner.of_type)


def boundary(steps: list[Step], at: int) -> int | None:
    """Where an error raised at step `at` stops bubbling up: the step to alias."""
    for j in range(at, -1, -1):
        if _nullable(steps[j].type) or (j < at and _nullable_items(steps[j].type)):
            return j
    return None


def walk(
    schema: GraphQLSchema, world: World, root: Step, start: GraphQLObjectType, name: str
) -> Iterator[Probe]:
    """A probe for every field of every type reachable from `root`, by a shortest path."""
    seen = {start.name}
    queue: list[tuple[GraphQLObjectType, list[Step]]] = [(start, [root])]
    while queue:
        kind, path = queue.pop(0)
        for field_name, definition in kind.fields.items():
            step = Step(kind.name, field_name, world.args(kind.name, field_name), definition.type)
            yield Probe([*path, step], name)
            target = get_named_type(definition.type)
            assert not isinstance(target, GraphQLInterfaceType), f"{kind.name}.{field_name}"
            if isinstance(target, GraphQLObjectType) and target.name not in seen:
                seen.add(target.name)
                queue.append((target, [*path, step]))


class World:
    """The data every path needs: non-empty lists all the way down."""

    def __init__(self, store: StoreHandle, ids: dict[str, str], numbers: dict[str, Any]):
        self.store = store
        self.ids = ids
        self.numbers = numbers

    def args(self, parent: str, name: str) -> str:
        s = self.store
        now = dt.datetime.now(dt.UTC)
        period = (
            f"(from: {_q((now - dt.timedelta(days=3)).isoformat())}, "
            f"to: {_q((now + dt.timedelta(hours=1)).isoformat())})"
        )
        found = {
            ("Store", "product"): '(sku: "B")',
            ("Store", "products"): "(first: 5)",
            ("Store", "backorderedProducts"): "(first: 5)",
            ("Store", "order"): f"(number: {self.numbers['order']})",
            ("Store", "orders"): "(first: 5)",
            ("Store", "backlogTrend"): (
                f"(from: {_q((now - dt.timedelta(days=3)).isoformat())}, "
                f"to: {_q(now.isoformat())}, interval: DAY)"
            ),
            ("Store", "backorderOutcomes"): period,
            ("Product", "backorderOutcomes"): period,
            ("Store", "backorderOutcomesTrend"): period[:-1] + ", interval: DAY)",
            ("Store", "backorderLeaders"): period[:-1] + ", by: LOST_REVENUE)",
            ("Product", "backorderQueue"): "(first: 5)",
            ("Order", "events"): "(first: 5)",
            ("Store", "events"): "(first: 5)",
            ("Query", "stores"): "(first: 5)",
            ("Query", "store"): f"(handle: {_q(s.handle)})",
            ("Mutation", "upsertProduct"): (
                f'(input: {{storeId: {_q(s.id)}, sku: "B", title: "Product B"}})'
            ),
            ("Mutation", "receiveStock"): (
                f'(input: {{storeId: {_q(s.id)}, sku: "F", quantity: 1, '
                f'receiptId: {_q(self.ids["receive"])}, idempotencyKey: "walk-receive"}})'
            ),
            ("Mutation", "scheduleReceipt"): (
                f'(input: {{storeId: {_q(s.id)}, sku: "B", quantity: 3, '
                f'expectedAt: "2030-01-02", idempotencyKey: "walk-schedule"}})'
            ),
            ("Mutation", "updateReceipt"): (
                f'(input: {{id: {_q(self.ids["IncomingReceipt"])}, expectedAt: "2030-01-01"}})'
            ),
            ("Mutation", "cancelReceipt"): f"(id: {_q(self.ids['cancel-receipt'])})",
            ("Mutation", "adjustStock"): (
                f'(input: {{storeId: {_q(s.id)}, sku: "B", setOnHand: 0, reason: "count", '
                f'idempotencyKey: "walk-adjust"}})'
            ),
            ("Mutation", "placeOrder"): (
                f'(input: {{storeId: {_q(s.id)}, lines: [{{sku: "A", quantity: 1}}, '
                f'{{sku: "B", quantity: 1}}], idempotencyKey: "walk-place"}})'
            ),
            ("Mutation", "shipOrder"): (
                f'(input: {{orderId: {_q(self.ids["ship"])}, idempotencyKey: "walk-ship"}})'
            ),
            ("Mutation", "cancelOrder"): (
                f"(input: {{orderId: {_q(self.ids['cancel'])}, reason: OTHER, "
                f'idempotencyKey: "walk-cancel"}})'
            ),
            ("Mutation", "createApiKey"): (
                f'(input: {{name: "walk", storeIds: [{_q(s.id)}], scopes: [READ]}})'
            ),
            ("Mutation", "revokeApiKey"): f"(id: {_q(self.ids['ApiKey'])})",
            ("Mutation", "createWebhookSubscription"): (
                f'(input: {{storeId: {_q(s.id)}, url: "https://127.0.0.1:9/walk", '
                "topics: [ORDER_PLACED]})"
            ),
            ("Mutation", "updateWebhookSubscription"): (
                f"(input: {{id: {_q(self.ids.get('hook', ''))}, paused: false}})"
            ),
            ("Mutation", "deleteWebhookSubscription"): (
                f"(id: {_q(self.ids.get('hook-throwaway', ''))})"
            ),
            ("Mutation", "rotateWebhookSecret"): f"(id: {_q(self.ids.get('hook', ''))})",
            ("Mutation", "redeliverWebhook"): (
                f"(input: {{id: {_q(self.ids.get('hook', ''))}, "
                f"after: {_q(self.ids.get('hook-after', ''))}}})"
            ),
            ("Mutation", "redeliverWebhookEvent"): (
                f"(input: {{id: {_q(self.ids.get('hook-resend', ''))}, "
                f"eventId: {_q(self.ids.get('hook-event', ''))}}})"
            ),
            ("WebhookSubscription", "deliveries"): "(first: 5)",
        }.get((parent, name))
        if (parent, name) == ("Mutation", "createStore"):
            handle = "walk-" + uuid.uuid4().hex[:10]  # a new store each time
            return (
                f'(input: {{handle: "{handle}", name: "Walk", currencyCode: "USD", '
                'timezone: "UTC"})'
            )
        return found or ""


def _q(text: str) -> str:
    return json.dumps(text)


def _expect(probe: Probe, token: Token, needs: str) -> tuple[int, str] | None:
    code = root_outcome(token, needs)
    if code is not None:
        return (0, code)
    for index, step in enumerate(probe.steps[1:], start=1):
        rule = FIELDS[step.parent][step.name]
        code = field_outcome(token, rule)
        if code is not None:
            return (index, code)
    return None


def _render(tree: dict[str, Any]) -> str:
    parts = []
    for key, (step, aliased, children) in tree.items():
        head = f"{key}: {step.name}{step.args}" if aliased else f"{step.name}{step.args}"
        inner = _render(children) if children else ""
        if isinstance(get_named_type(step.type), GraphQLObjectType | GraphQLInterfaceType):
            inner = ("__typename " + inner).strip()
        if step.fragment:
            inner = f"__typename ... on {step.fragment} {{ {inner} }}"
        parts.append(head + (f" {{ {inner} }}" if inner else ""))
    return " ".join(parts)


def _document(kind: str, probes: list[Probe], numbering: Iterator[int]) -> str:
    tree: dict[str, Any] = {}
    for probe in probes:
        probe.keys = []
        level = tree
        for index, step in enumerate(probe.steps):
            aliased = index == probe.alias_at
            key = f"p{next(numbering)}_{step.name}" if aliased else step.name
            probe.keys.append(key)
            if key not in level:
                level[key] = (step, aliased, {})
            level = level[key][2]
    return f"{kind} {{ {_render(tree)} }}"


def _batches(probes: list[Probe], size: int = 20) -> Iterator[list[Probe]]:
    aliased = [p for p in probes if p.alias_at is not None]
    alone = [p for p in probes if p.alias_at is None]
    for start in range(0, len(aliased), size):
        yield aliased[start : start + size]
    for probe in alone:
        yield [probe]


def _reached(data: Any, keys: list[str]) -> bool:
    """Whether some instance of the path has the last key (lists: any element)."""
    if not keys:
        return True
    if isinstance(data, list):
        return any(_reached(item, keys) for item in data)
    if not isinstance(data, dict) or keys[0] not in data:
        return False
    if len(keys) == 1:
        return True
    if keys[0] == "userErrors" and data[keys[0]] == []:
        return True  # empty on success: its fields are reached only when a mutation fails
    return _reached(data[keys[0]], keys[1:])


def _fresh_log(probe: Probe) -> bool:
    """The subscription createWebhookSubscription just made has no delivery in its log
    yet: its deliveries' fields cannot be reached from that root (they are from the
    others: the store's subscriptions, the other webhook mutations)."""
    return probe.root == "Mutation.createWebhookSubscription" and any(
        key.endswith("deliveries") for key in probe.keys
    )


def _check(probe: Probe, body: dict[str, Any]) -> str | None:
    """What is wrong with the answer to this probe, or None."""
    own = probe.keys[: probe.alias_at + 1] if probe.alias_at is not None else []
    mine = []
    for error in body.get("errors") or []:
        path = [p for p in error.get("path") or [] if isinstance(p, str)]
        if path[: len(own)] == own:
            mine.append((path, (error.get("extensions") or {}).get("code"), error["message"]))
    if probe.expected is None:
        if mine:
            return f"expected data, got errors {mine}"
        if not _reached(body.get("data"), probe.keys) and not _fresh_log(probe):
            return "expected data, but the field was not reached (test data too thin?)"
        return None
    index, code = probe.expected
    wanted = probe.keys[: index + 1]
    if not any(path == wanted and got == code for path, got, _ in mine):
        got = repr(mine or body.get("data"))
        return f"expected {code} at {'.'.join(wanted)}, got {got[:300]}"
    return None


async def _world(api: Api) -> tuple[World, dict[str, Token], list[Key]]:
    store = await shop(api)  # ALLOW; product A
    await api.upsert(store, "B")
    await api.upsert(store, "F")
    await api.receive(store, "A", 100)
    shipped = (await api.place(store, [("A", 1), ("B", 1)]))["order"]
    cancelled = (await api.place(store, [("A", 1), ("B", 1)]))["order"]
    await api.place(store, [("F", 2)])  # waits for 2; receiveStock of 1 fills it partly
    for sku in ("B", "F"):  # what waiting cost: lost revenue on the products reached
        declined = (await api.place(store, [(sku, 1)]))["order"]
        await api.cancel(store, declined["id"], "CUSTOMER_DECLINED_BACKORDER")
    throwaway = await make_key(api, [store], ["READ"], "to revoke")
    tokens = {
        "anonymous": Token("anonymous", None),
        "unknown token": Token("unknown token", "og_" + uuid.uuid4().hex),
        "admin": Token("admin", ADMIN_TOKEN, admin=True),
    }
    keys = []
    for scopes in SCOPE_SETS:
        key = await make_key(api, [store], list(scopes), "+".join(scopes))
        keys.append(key)
        name = "+".join(scopes)
        tokens[name] = Token(name, key.token, frozenset(scopes))
    ids = {
        "Store": store.id,
        "Product": (await api.product(store, "B"))["id"],
        "Order": shipped["id"],
        "OrderLine": next(line["id"] for line in shipped["lines"] if line["sku"] == "B"),
        "ApiKey": throwaway.id,
        "ship": shipped["id"],
        "cancel": cancelled["id"],
        "IncomingReceipt": await _receipt(api, store, "B", 5),
        "cancel-receipt": await _receipt(api, store, "B", 1),
        "receive": await _receipt(api, store, "F", 100),
    }
    return World(store, ids, {"order": shipped["number"]}), tokens, keys


SCHEDULE = """mutation($input: ScheduleReceiptInput!) {
  scheduleReceipt(input: $input) { receipt { id } userErrors { code } } }"""


async def _receipt(api: Api, store: StoreHandle, sku: str, quantity: int) -> str:
    """A new open receipt of `sku` in the world's store; its id."""
    variables = {"storeId": store.id, "sku": sku, "quantity": quantity, "expectedAt": "2030-01-05"}
    data = await api.gql(SCHEDULE, {"input": variables}, token=store.token)
    found: str = data["scheduleReceipt"]["receipt"]["id"]
    return found


def _roots(schema: GraphQLSchema, world: World) -> list[tuple[str, Step, GraphQLObjectType, str]]:
    """(name, root step, start type, what it needs) for every root of Query and Mutation,
    with node and nodes once per kind of object."""
    roots = []
    for kind in (schema.query_type, schema.mutation_type):
        assert kind is not None
        for name, definition in kind.fields.items():
            target = get_named_type(definition.type)
            label = f"{kind.name}.{name}"
            if name in ("node", "nodes"):
                for concrete, needs in NODE_NEEDS.items():
                    gid = _q(world.ids[concrete])
                    args = f"(id: {gid})" if name == "node" else f"(ids: [{gid}])"
                    step = Step(kind.name, name, args, definition.type, fragment=concrete)
                    start = schema.get_type(concrete)
                    assert isinstance(start, GraphQLObjectType)
                    roots.append((f"{label}@{concrete}", step, start, needs))
                continue
            assert isinstance(target, GraphQLObjectType), label
            step = Step(kind.name, name, world.args(kind.name, name), definition.type)
            roots.append((label, step, target, ROOTS[label]))
    return roots


async def _introspect(api: Api) -> GraphQLSchema:
    body = await api.raw(get_introspection_query(), token=None)
    return build_client_schema(body["data"])


async def test_every_field_and_root_has_a_stated_expectation(api: Api) -> None:
    schema = await _introspect(api)
    missing, stale = [], []
    for kind in schema.type_map.values():
        if kind.name.startswith("__") or not isinstance(kind, GraphQLObjectType):
            continue
        if kind in (schema.query_type, schema.mutation_type, schema.subscription_type):
            missing += [f"{kind.name}.{f}" for f in kind.fields if f"{kind.name}.{f}" not in ROOTS]
            continue
        rules = FIELDS.get(kind.name, {})
        missing += [f"{kind.name}.{f}" for f in kind.fields if f not in rules]
        stale += [f"{kind.name}.{f}" for f in rules if f not in kind.fields]
    assert missing == [], f"fields without a stated expectation (add them to FIELDS): {missing}"
    assert stale == [], f"expectations for fields that are gone: {stale}"


@pytest.fixture
async def walk_api(database: Database, clock: Clock) -> AsyncIterator[Api]:
    """The app with cost and rate limits lifted: the walk batches many probes into one
    document and sends hundreds of them; this test checks scopes, not limits. (Webhook
    targets on this machine are allowed: the walk's subscriptions point at it.)"""
    async with app_client(
        database,
        clock,
        max_cost=10**9,
        rate_limit_capacity=10**9,
        webhook_allow_private=True,
    ) as http:
        yield Api(http, ADMIN_TOKEN, database)
    async with database.write() as conn:  # no other test's delivery worker sees them
        await conn.execute(delete(t.webhook_deliveries))
        await conn.execute(delete(t.webhook_subscriptions))


HOOK = """mutation($input: CreateWebhookSubscriptionInput!) {
  createWebhookSubscription(input: $input) { webhookSubscription { id } } }"""


DELIVERED = """query($id: ID!) { node(id: $id) { ... on WebhookSubscription {
  deliveries(first: 1) { nodes { eventId } } } } }"""


async def _hooks(api: Api, world: World, database: Database, clock: Clock) -> None:
    """Three webhook subscriptions on the world's store (one for deleteWebhookSubscription
    to delete, one for redeliverWebhookEvent to resend), with deliveries in their logs."""
    receiver = await Receiver().start()
    try:
        store, made = world.store, []
        for _ in range(3):
            data = await api.gql(
                HOOK,
                {
                    "input": {
                        "storeId": store.id,
                        "url": receiver.url,
                        "topics": ["ORDER_PLACED"],
                        "after": encode_cursor([1]),
                    }
                },
                token=store.token,
            )
            made.append(data["createWebhookSubscription"]["webhookSubscription"]["id"])
        worker = WebhookWorker(database, clock, DeliverySettings(allow_private=True))
        async with httpx.AsyncClient(trust_env=False) as client:
            await worker.round(client)
        assert receiver.received, "the walk's subscription got no delivery"
    finally:
        await receiver.stop()
    # The third one only for redeliverWebhookEvent (redeliverWebhook moves the first's
    # cursor back, after which its events are no longer delivered).
    delivered = await api.gql(DELIVERED, {"id": made[2]}, token=store.token)
    world.ids.update(
        {
            "hook-resend": made[2],
            "hook-event": delivered["node"]["deliveries"]["nodes"][0]["eventId"],
            "hook": made[0],
            "WebhookSubscription": made[0],
            "hook-throwaway": made[1],
            "hook-after": encode_cursor([1]),
        }
    )


@pytest.mark.exhaustive
async def test_every_token_sees_exactly_what_the_tables_say_on_every_path(
    walk_api: Api, clock: Clock
) -> None:
    walk_clock = clock
    api = walk_api
    schema = await _introspect(api)
    world, tokens, _ = await _world(api)
    assert api.db is not None
    await _hooks(api, world, api.db, walk_clock)
    failures: list[str] = []
    counts = {"probes": 0, "requests": 0}
    numbering = itertools.count()
    for root_name, root_step, start, needs in _roots(schema, world):
        kind = "mutation" if root_name.startswith("Mutation.") else "query"
        every = list(walk(schema, world, root_step, start, root_name))
        for token in tokens.values():
            if root_outcome(token, needs) is not None:
                probes = [Probe([root_step], root_name)]
            else:
                probes = [Probe(p.steps, root_name) for p in every]
            for probe in probes:
                probe.expected = _expect(probe, token, needs)
                at = probe.expected[0] if probe.expected else len(probe.steps) - 1
                probe.alias_at = boundary(probe.steps, at)
            for batch in _batches(probes):
                if batch[0].steps[0].parent == "Mutation" and batch[0].steps[0].name in (
                    "createStore",
                ):
                    # A new handle for each document: re-render its root's arguments.
                    fresh = Step(
                        "Mutation", "createStore", world.args("Mutation", "createStore"),
                        batch[0].steps[0].type,
                    )  # fmt: skip
                    for probe in batch:
                        probe.steps = [fresh, *probe.steps[1:]]
                document = _document(kind, batch, numbering)
                body = await api.raw(document, token=token.token)
                counts["requests"] += 1
                for probe in batch:
                    counts["probes"] += 1
                    problem = _check(probe, body)
                    if problem:
                        failures.append(f"[{token.name}] {probe.label}: {problem}")
    print(f"\nscope walk: {counts['probes']} probes in {counts['requests']} requests")
    assert failures == [], "\n".join(failures[:60]) + f"\n({len(failures)} in all)"


async def test_only_read_keys_may_open_a_websocket_for_subscriptions(sqlite_url: str) -> None:
    """The Subscription roots need a READ key: the connection itself is refused (4403)."""

    from tests.ws_support import http_api

    settings = Settings(database_url=sqlite_url, admin_token=ADMIN_TOKEN)
    async with serve_in_process(settings) as server, http_api(server.url) as api:
        _, tokens, _ = await _world(api)
        for token in tokens.values():
            async with ws_connect(server.url) as ws:
                if token.token is None:
                    await ws.send({"type": "connection_init", "payload": {}})
                    assert await ws.closed_code() == 4403
                    continue
                auth = {"authorization": f"Bearer {token.token}"}
                await ws.send({"type": "connection_init", "payload": auth})
                if "READ" in token.scopes:
                    assert (await ws.receive())["type"] == "connection_ack", token.name
                else:
                    assert await ws.closed_code() == 4403, token.name
