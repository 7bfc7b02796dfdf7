"""`ordergraph serve`: migrate, then serve the API (and /metrics on its own port if set)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import Iterator
from typing import Any

from ordergraph.cli.common import AddCommand, add_database_url, at_least, migrate, settings_of
from ordergraph.settings import Settings, ensure_admin_token


def _announce_admin_token(settings: Settings) -> Settings:
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
    return settings


def _announce_demo_keys(settings: Settings, args: argparse.Namespace) -> None:
    from ordergraph.cli.demo import prepare_demo

    keys = asyncio.run(prepare_demo(settings, args.demo_seed, args.demo_orders))
    print("\nDemo stores, each with a new API key (every scope, that store only):\n")
    for store, token in keys:
        print(f"  {store.handle:<14} {store.currency_code}  {store.timezone:<17} {token}")
    print(
        "\nIn GraphiQL, set the headers to"
        ' {"Authorization": "Bearer <token>"} with one of these tokens.\n',
        flush=True,
    )


def _uvicorn_config(app: Any, settings: Settings) -> Any:
    import uvicorn

    return uvicorn.Config(
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ordergraph.app import create_app
    from ordergraph.logs import configure_logging

    settings = settings_of(args)
    configure_logging(settings)
    asyncio.run(migrate(settings))
    settings = _announce_admin_token(settings)
    base = f"http://{settings.host}:{settings.port}"
    if args.demo:
        _announce_demo_keys(settings, args)
    print(f"GraphQL and GraphiQL: {base}/graphql", flush=True)
    print(f"Dashboard: {base}/dashboard", flush=True)
    app = create_app(settings, govern_gc=True)  # ordergraph.gc_governor
    # Everything made so far (schema, app, settings) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which otherwise stall busy fan-out.
    gc.collect()
    gc.freeze()
    # uvicorn raises the signal it stopped on again once it has shut down gracefully; a
    # requested stop is a clean one, so exit 0 rather than die by the signal.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = _uvicorn_config(app, settings)
    server = uvicorn.Server(config)
    if not settings.metrics_port:
        server.run()
        return 0
    _serve_with_metrics(app, settings, config, server)
    return 0


def _serve_with_metrics(app: Any, settings: Settings, config: Any, server: Any) -> None:
    import uvicorn

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


async def _serve_beside(main: Any, side: Any) -> None:
    """The API on its port and /metrics on ORDERGRAPH_METRICS_PORT, until the API stops."""
    metrics = asyncio.create_task(side.serve())
    try:
        await main.serve()
    finally:
        side.should_exit = True
        await metrics


def register(add_command: AddCommand) -> None:
    from ordergraph import demo

    command = add_command("serve", help="migrate the database, then serve the API")
    command.add_argument("--host", help="address to bind (ORDERGRAPH_HOST, default 127.0.0.1)")
    command.add_argument("--port", type=int, help="port (ORDERGRAPH_PORT, default 8000)")
    add_database_url(command)
    command.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo stores into an empty database (or reuse them), "
        "then print an API key for each",
    )
    command.add_argument(
        "--demo-seed", type=int, default=demo.DEFAULT_SEED, help="seed for --demo (default 1)"
    )
    command.add_argument(
        "--demo-orders",
        type=at_least(1),
        default=demo.DEFAULT_ORDERS,
        help=f"orders for --demo, all stores together (default {demo.DEFAULT_ORDERS})",
    )
    command.set_defaults(func=cmd_serve)
