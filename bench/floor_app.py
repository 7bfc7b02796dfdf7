"""The stack's floor: bench/baseline_app.py's database work served as GraphQL by the
least a Strawberry app can be.

A minimal Strawberry schema on Starlette + uvicorn, with Strawberry's parser and
validation caches on, executed straight from a Starlette route (`schema.execute`, as
ordergraph's own HTTP layer does; `--view` serves it through Strawberry's ASGI view
instead, which costs more per request): no authentication, tenancy, cost limit, rate
limit, input checks, metrics, logging or live delivery. Its resolvers run the very
statements of bench/baseline_app.py (asyncpg, the same round trips) and answer the same
GraphQL documents as ordergraph with the same JSON:

- `{ store(handle: "...") { handle } }` and the page of orders and the backlog of
  bench/reads.py;
- `placeOrder(input: {storeId, lines: [{sku, quantity}]}) { order { id number }
  userErrors { code message } }` of bench/place_orders.py, with the store's numeric id as
  `storeId` and one line (the baseline's transaction).

What ordergraph costs beyond this app is the product (its checks, its rules, its
bookkeeping) plus whatever it could still shed; what this app costs beyond the baseline
is GraphQL through Strawberry, which no Strawberry app avoids.

Run: python bench/floor_app.py --dsn postgresql://postgres@127.0.0.1:5432/db --port 8002
"""

from __future__ import annotations

import operator
import sys
from pathlib import Path
from typing import Any

import asyncpg
import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baseline_app import (
    STORE_BY_HANDLE,
    Refused,
    backlog_of,
    global_id,
    orders_of,
    place_order,
    pooled_app,
    serve,
    server_arguments,
)

# The resolvers hand on the baseline's dicts, whose keys are the JSON's names: fields are
# read by key and keep their names as written.
Row = dict[str, Any]
# As the baseline reads: one snapshot for the statements of a read.
READ_ONLY: dict[str, Any] = {"isolation": "repeatable_read", "readonly": True}


def _pool(info: Info) -> asyncpg.Pool:
    pool: asyncpg.Pool = info.context["pool"]
    return pool


@strawberry.type
class Money:
    amount: str
    currencyCode: str


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    title: str


@strawberry.type
class OrderLine:
    id: strawberry.ID
    sku: str
    quantity: int
    allocated: int
    backordered: int
    unitPrice: Money
    product: Product


@strawberry.type
class Order:
    id: strawberry.ID
    number: int
    placedAt: str
    status: str
    stockStatus: str
    lines: list[OrderLine]


@strawberry.type
class OrderConnection:
    nodes: list[Order]


@strawberry.type
class OrderTally:
    orders: int
    units: int
    value: Money


@strawberry.type
class Backlog:
    backlog: OrderTally
    backorders: OrderTally
    overdue: OrderTally


@strawberry.type
class Store:
    handle: str

    @strawberry.field
    async def orders(self, info: Info, first: int) -> OrderConnection:
        store: Row = self  # type: ignore[assignment]
        async with _pool(info).acquire() as conn, conn.transaction(**READ_ONLY):
            nodes = await orders_of(conn, store["id"], store["currency_code"])
        return {"nodes": nodes[:first]}  # type: ignore[return-value]

    @strawberry.field
    async def backlog(self, info: Info) -> Backlog:
        store: Row = self  # type: ignore[assignment]
        async with _pool(info).acquire() as conn, conn.transaction(**READ_ONLY):
            return await backlog_of(conn, store["id"], store["currency_code"])  # type: ignore[return-value]


@strawberry.input
class LineInput:
    sku: str
    quantity: int


@strawberry.input
class PlaceOrderInput:
    storeId: strawberry.ID
    lines: list[LineInput]


@strawberry.type
class UserError:
    code: str
    message: str


@strawberry.type
class PlacedOrder:
    id: strawberry.ID
    number: int


@strawberry.type
class PlaceOrderPayload:
    order: PlacedOrder | None
    userErrors: list[UserError]


@strawberry.type
class Query:
    @strawberry.field
    async def store(self, info: Info, handle: str) -> Store | None:
        async with _pool(info).acquire() as conn:
            row = await conn.fetchrow(STORE_BY_HANDLE, handle)
        return None if row is None else dict(row)  # type: ignore[return-value]


@strawberry.type
class Mutation:
    @strawberry.field
    async def placeOrder(self, info: Info, input: PlaceOrderInput) -> PlaceOrderPayload:
        if len(input.lines) != 1:
            refused = {"code": "ONE_LINE", "message": "this app places one-line orders"}
            return {"order": None, "userErrors": [refused]}  # type: ignore[return-value]
        line = input.lines[0]
        store_id = int(input.storeId)
        try:
            placed = await place_order(_pool(info), store_id, line.sku, line.quantity)
        except Refused as err:
            refused = {"code": "REFUSED", "message": str(err)}
            return {"order": None, "userErrors": [refused]}  # type: ignore[return-value]
        order = {"id": global_id("Order", store_id, placed["orderId"]), "number": placed["number"]}
        return {"order": order, "userErrors": []}  # type: ignore[return-value]


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    extensions=[ParserCache, ValidationCache],
    config=StrawberryConfig(auto_camel_case=False, default_resolver=operator.getitem),
)


class FloorGraphQL(GraphQL[dict[str, Any], None]):
    """Strawberry's own ASGI view (--view): what its documentation shows."""

    def __init__(self, pools: list[asyncpg.Pool]) -> None:
        super().__init__(schema, graphql_ide=None)
        self.pools = pools

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {"pool": self.pools[0]}


def create_app(dsn: str, pool_size: int, view: bool = False) -> Starlette:
    pools: list[asyncpg.Pool] = []

    async def graphql(request: Request) -> Response:
        """The schema executed straight from the route: less than the view does (no
        content negotiation, no GET, no multipart, no IDE), as ordergraph does itself."""
        body = await request.json()
        result = await schema.execute(
            body["query"],
            variable_values=body.get("variables"),
            context_value={"pool": pools[0]},
            operation_name=body.get("operationName"),
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        return JSONResponse(answer)

    endpoint: Any = FloorGraphQL(pools) if view else graphql
    methods = ["GET", "POST"] if view else ["POST"]
    return pooled_app(dsn, pool_size, [Route("/graphql", endpoint, methods=methods)], pools)


def main() -> None:
    parser = server_arguments("The stack's floor (minimal Strawberry app)", 8002)
    parser.add_argument(
        "--view",
        action="store_true",
        help="serve through Strawberry's ASGI view instead of executing from a route",
    )
    args = parser.parse_args()
    serve(create_app(args.dsn, args.pool_size, args.view), args)


if __name__ == "__main__":
    main()
