"""The `ordergraph` command.

The admin commands (create-store, create-key, revoke-key) act on the database
directly: whoever can reach the database needs no admin token. They do not
migrate: they refuse, in one line, a database whose schema is not current
(`ordergraph migrate` is a deliberate step). `migrate`, `seed-demo` and `serve`
apply the migrations first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NoReturn, TextIO, TypeVar

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ordergraph.domain.errors import DomainError
from ordergraph.domain.model import BackorderPolicy, Store
from ordergraph.settings import Settings, SettingsError, ensure_admin_token
from ordergraph.storage.db import Database

T = TypeVar("T")


class CliError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def _shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _with_db(
    settings: Settings, action: Callable[[Database], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Run `action` on the database, turning an unreachable one into a one-line CliError."""
    path = settings.sqlite_path
    if migrated and path is not None and not path.exists():
        raise CliError(f"no database at {path}: run `ordergraph migrate` first")
    db = Database(settings.database_url)
    try:
        if migrated:
            from ordergraph.storage.migrate import pending

            missing = await pending(db)
            if missing:
                raise CliError(
                    f"the database is not migrated ({len(missing)} revision(s) pending): "
                    "run `ordergraph migrate` first"
                )
        return await action(db)
    except (DBAPIError, OSError) as err:
        lines = str(getattr(err, "orig", None) or err).strip().splitlines() or [repr(err)]
        reason = lines[0]
        if len(reason) > 1 and reason[0] == reason[-1] and reason[0] in "'\"":
            reason = reason[1:-1]
        raise CliError(f"cannot use the database {_shown_url(db.url)}: {reason}") from None
    finally:
        await db.dispose()


async def _migrate(settings: Settings) -> None:
    from ordergraph.storage.migrate import upgrade

    await _with_db(settings, upgrade, migrated=False)


def _now() -> dt.datetime:
    from ordergraph.clock import Clock

    return Clock()()


# -- migrate, export-schema ---------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    print(f"database is up to date: {_shown_url(settings.database_url)}")
    return 0


def cmd_export_schema(_: argparse.Namespace) -> int:
    from ordergraph.schema.build import build_schema

    sys.stdout.write(build_schema().as_str().rstrip("\n") + "\n")
    return 0


# -- stores and keys --------------------------------------------------------------


def _store_gid(store_id: int) -> str:
    from ordergraph.resolvers import ids

    return ids.encode("Store", store_id)


def _key_gid(key_id: int) -> str:
    from ordergraph.resolvers import ids

    return ids.encode("ApiKey", key_id)


def cmd_create_store(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin

    async def create(db: Database) -> tuple[Store, Any]:
        return await admin.create_store(
            db,
            handle=args.handle,
            name=args.name,
            currency_code=args.currency,
            timezone=args.timezone,
            default_policy=BackorderPolicy(args.default_backorder_policy),
            now=_now(),
            key_name=f"{args.handle} (created with the store)",
        )

    store, created = asyncio.run(_with_db(_settings(args), create))
    key, token = created
    print(f"store:   {store.handle} {_store_gid(store.id)}")
    print(f"api key: {_key_gid(key.id)} (scopes {', '.join(sorted(key.scopes))})")
    print(f"token:   {token}")
    print("The token is shown only now: keep it somewhere safe.", file=sys.stderr)
    return 0


async def _stores_by_handle(db: Database, handles: list[str]) -> dict[str, int]:
    from ordergraph.storage import tables as t

    async with db.read() as conn:
        rows = await conn.execute(
            select(t.stores.c.handle, t.stores.c.id).where(t.stores.c.handle.in_(handles))
        )
        found = {handle: store_id for handle, store_id in rows}
    missing = [h for h in handles if h not in found]
    if missing:
        raise CliError(f"no store with handle {missing[0]!r}")
    return found


def cmd_create_key(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin

    async def create(db: Database) -> Any:
        stores = await _stores_by_handle(db, args.store)
        return await admin.create_api_key(
            db,
            name=args.name,
            store_ids=stores.values(),
            scopes=[s.upper() for s in args.scope],
            now=_now(),
        )

    key, token = asyncio.run(_with_db(_settings(args), create))
    print(f"api key: {_key_gid(key.id)} (scopes {', '.join(sorted(key.scopes))})")
    print(f"token:   {token}")
    print("The token is shown only now: keep it somewhere safe.", file=sys.stderr)
    return 0


def _key_number(value: str) -> int:
    from ordergraph.resolvers import ids

    if value.isdigit():
        return int(value)
    found = ids.decode(value.strip(), "ApiKey")
    if found is None:
        raise CliError(f"{value!r} is not an api key id (give the id the API shows, or a number)")
    return found[1][0]


def cmd_revoke_key(args: argparse.Namespace) -> int:
    from ordergraph.storage import admin
    from ordergraph.storage.queries import api_keys_by_id

    key_id = _key_number(args.key_id)

    async def revoke(db: Database) -> tuple[bool, Any]:
        async with db.read() as conn:
            before = (await api_keys_by_id(conn, [key_id])).get(key_id)
        if before is None:
            raise CliError(f"no api key {args.key_id}")
        if before.revoked_at is not None:
            return False, before
        return True, await admin.revoke_api_key(db, key_id, _now())

    changed, key = asyncio.run(_with_db(_settings(args), revoke))
    when = key.revoked_at.isoformat(timespec="seconds")
    if changed:
        print(f"revoked api key {_key_gid(key.id)} ({key.name}) at {when}")
    else:
        print(f"api key {_key_gid(key.id)} ({key.name}) was already revoked at {when}")
    return 0


# -- demo ---------------------------------------------------------------------------


class ProgressBar:
    """A one-line bar on a terminal; a line per tenth when the stream is not one."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._drawn = 0.0
        self._tenth = -1

    def __call__(self, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if self.tty:
            now = time.monotonic()
            if done < total and now - self._drawn < 0.1:
                return
            self._drawn = now
            filled = int(share * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(
                f"\r{self.label} [{bar}] {share:4.0%} {done}/{total} {now - self.started:5.1f}s"
            )
        else:
            tenth = int(share * 10)
            if tenth == self._tenth:
                return
            self._tenth = tenth
            self.stream.write(f"{self.label}: {share:.0%} ({done}/{total})\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _instant(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"give a time and UTC offset, e.g. 2026-07-15T12:00:00Z: {value!r}"
        )
    return parsed


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


async def _seed(db: Database, seed: int, orders: int, now: dt.datetime | None) -> float:
    from ordergraph import demo

    bar = ProgressBar("seeding the demo")
    started = time.monotonic()
    try:
        result = await demo.seed_demo(db, seed=seed, orders=orders, now=now, progress=bar)
    except demo.DemoError as err:
        raise CliError(str(err)) from None
    finally:
        bar.close()
    took = time.monotonic() - started
    print(f"Seeded {len(result)} demo stores in {took:.1f}s (seed {seed}):", flush=True)
    for item in result:
        s = item.store
        print(
            f"  {s.handle:<14} {s.currency_code}  {s.timezone:<17}"
            f" {item.products} products, {item.orders} orders",
            flush=True,
        )
    return took


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from ordergraph.storage.migrate import upgrade

    async def run(db: Database) -> None:
        await upgrade(db)
        await _seed(db, args.seed, args.orders, args.now)

    asyncio.run(_with_db(_settings(args), run, migrated=False))
    print(
        "Run `ordergraph serve --demo` to get an API key for each store,"
        " or `ordergraph create-key --store demo-new-york --scope READ --name me`."
    )
    return 0


async def _prepare_demo(settings: Settings, seed: int, orders: int) -> list[tuple[Store, str]]:
    """Seed an empty database (or reuse the demo stores), then a fresh key per demo store."""
    from ordergraph import demo
    from ordergraph.storage import admin

    async def run(db: Database) -> list[tuple[Store, str]]:
        stores = await demo.demo_stores(db)
        if not stores:
            if await demo.has_stores(db):
                raise CliError(
                    "--demo needs an empty database (or one made by seed-demo);"
                    " this one has other stores"
                )
            await _seed(db, seed, orders, None)
            stores = await demo.demo_stores(db)
        elif len(stores) < len(demo.DEMO_HANDLES):
            raise CliError("this database has only some of the demo stores: use an empty database")
        keys = []
        for handle in demo.DEMO_HANDLES:
            store = stores[handle]
            _, token = await admin.create_api_key(
                db,
                name=f"demo key for {handle} (serve --demo)",
                store_ids=[store.id],
                scopes=admin.SCOPES,
                now=_now(),
            )
            keys.append((store, token))
        return keys

    return await _with_db(settings, run)


# -- serve --------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ordergraph.app import create_app
    from ordergraph.logs import configure_logging

    settings = _settings(args)
    configure_logging(settings)
    asyncio.run(_migrate(settings))
    settings, new_token = ensure_admin_token(settings)
    if new_token:
        print(
            "\nNo ORDERGRAPH_ADMIN_TOKEN was set, so one was made for this database.\n"
            f"Admin token (shown once; kept in {settings.sqlite_path}.admin-token):\n\n"
            f"    {new_token}\n",
            flush=True,
        )
    elif settings.admin_token is None:
        print("ORDERGRAPH_ADMIN_TOKEN is not set: createStore and createApiKey are disabled.")
    base = f"http://{settings.host}:{settings.port}"
    if args.demo:
        keys = asyncio.run(_prepare_demo(settings, args.demo_seed, args.demo_orders))
        print("\nDemo stores, each with a new API key (every scope, that store only):\n")
        for store, token in keys:
            print(f"  {store.handle:<14} {store.currency_code}  {store.timezone:<17} {token}")
        print(
            "\nIn GraphiQL, set the headers to"
            ' {"Authorization": "Bearer <token>"} with one of these tokens.\n',
            flush=True,
        )
    print(f"GraphQL and GraphiQL: {base}/graphql", flush=True)
    print(f"Dashboard: {base}/dashboard", flush=True)
    app = create_app(settings)
    # Everything made so far (schema, app, settings) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which otherwise stall busy fan-out.
    gc.collect()
    gc.freeze()
    # uvicorn raises the signal it stopped on again once it has shut down gracefully; a
    # requested stop is a clean one, so exit 0 rather than die by the signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # logging is set up by configure_logging (ordergraph.logs)
        access_log=False,  # an access line would carry GET query strings (variables)
        timeout_graceful_shutdown=10,
        # Per-connection compression costs CPU on every message sent to every subscriber.
        ws_per_message_deflate=settings.ws_compression,
        ws_max_size=settings.max_ws_message_bytes,  # larger messages: close 1009
    )
    server = uvicorn.Server(config)
    if not settings.metrics_port:
        server.run()
        return 0
    from ordergraph.app import metrics_app

    print(f"Metrics: http://{settings.host}:{settings.metrics_port}/metrics", flush=True)

    class SideServer(uvicorn.Server):
        """Serves /metrics; leaves the signals to the API's server and stops with it."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    side = SideServer(
        uvicorn.Config(
            metrics_app(app),
            host=settings.host,
            port=settings.metrics_port,
            log_level=settings.log_level.lower(),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve_beside(server, side))
    return 0


async def _serve_beside(main: Any, side: Any) -> None:
    """The API on its port and /metrics on ORDERGRAPH_METRICS_PORT, until the API stops."""
    metrics = asyncio.create_task(side.serve())
    try:
        await main.serve()
    finally:
        side.should_exit = True
        await metrics


# -- the parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from ordergraph import demo
    from ordergraph.storage.admin import SCOPES

    parser = _Parser(
        prog="ordergraph", description="GraphQL API for orders, stock, backlog and backorders."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def database_url(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database-url", help="database URL (ORDERGRAPH_DATABASE_URL)")

    serve = sub.add_parser("serve", help="migrate the database, then serve the API")
    serve.add_argument("--host", help="address to bind (ORDERGRAPH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ORDERGRAPH_PORT, default 8000)")
    database_url(serve)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo stores into an empty database (or reuse them), "
        "then print an API key for each",
    )
    serve.add_argument(
        "--demo-seed", type=int, default=demo.DEFAULT_SEED, help="seed for --demo (default 1)"
    )
    serve.add_argument(
        "--demo-orders",
        type=_at_least(1),
        default=demo.DEFAULT_ORDERS,
        help=f"orders for --demo, all stores together (default {demo.DEFAULT_ORDERS})",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    database_url(migrate)
    migrate.set_defaults(func=cmd_migrate)

    export = sub.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(func=cmd_export_schema)

    store = sub.add_parser(
        "create-store",
        help="create a store and print a token with every scope for it (shown once)",
        description="Create a store and an API key with every scope for it. "
        "The token is printed once.",
    )
    store.add_argument("--handle", required=True, help="2 to 40 of a-z, 0-9 and '-'")
    store.add_argument("--name", required=True, help="the store's display name")
    store.add_argument("--currency", required=True, help="ISO 4217 code, e.g. EUR")
    store.add_argument("--timezone", required=True, help="IANA name, e.g. Europe/Berlin")
    store.add_argument(
        "--default-backorder-policy",
        type=str.upper,
        choices=[p.value for p in BackorderPolicy],
        default=BackorderPolicy.DENY.value,
        help="policy of new products (default DENY)",
    )
    database_url(store)
    store.set_defaults(func=cmd_create_store)

    key = sub.add_parser(
        "create-key",
        help="create an API key and print its token (shown once)",
        description="Create an API key for one or more stores. The token is printed once.",
    )
    key.add_argument("--store", action="append", required=True, metavar="HANDLE", help="repeatable")
    key.add_argument(
        "--scope",
        action="append",
        required=True,
        type=str.upper,
        choices=list(SCOPES),
        help="repeatable",
    )
    key.add_argument("--name", required=True, help="what the key is for")
    database_url(key)
    key.set_defaults(func=cmd_create_key)

    revoke = sub.add_parser(
        "revoke-key",
        help="revoke an API key",
        description="Revoke an API key: its token stops working at once.",
    )
    revoke.add_argument(
        "key_id", metavar="KEY_ID", help="the key's id as the API shows it, or its number"
    )
    database_url(revoke)
    revoke.set_defaults(func=cmd_revoke_key)

    seed = sub.add_parser(
        "seed-demo",
        help="fill an empty database with three demo stores and 90 days of orders",
        description="Create three demo stores (USD/New York, EUR/Berlin, JPY/Tokyo) and "
        "ninety days of trade made by the real services. Deterministic: the same seed "
        "gives the same data, with times relative to the start instant (--now - 90 days).",
    )
    database_url(seed)
    seed.add_argument("--seed", type=int, default=demo.DEFAULT_SEED, help="default 1")
    seed.add_argument(
        "--orders",
        type=_at_least(1),
        default=demo.DEFAULT_ORDERS,
        help=f"orders in all stores together (default {demo.DEFAULT_ORDERS})",
    )
    seed.add_argument(
        "--now",
        type=_instant,
        help="the end of the ninety days, an ISO 8601 instant (default: the current time)",
    )
    seed.set_defaults(func=cmd_seed_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return 2
    except CliError as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return err.code
    except DomainError as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ordergraph: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
