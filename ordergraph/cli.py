"""The `ordergraph` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence

from ordergraph.settings import Settings, SettingsError, ensure_admin_token
from storage.db import Database


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


async def _migrate(settings: Settings) -> None:
    from storage.migrate import upgrade

    db = Database(settings.database_url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    asyncio.run(_migrate(settings))
    print(f"database is up to date: {Database(settings.database_url).engine.url!r}")
    return 0


def cmd_export_schema(_: argparse.Namespace) -> int:
    from schema.build import build_schema

    sys.stdout.write(build_schema().as_str().rstrip("\n") + "\n")
    return 0


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
    print(f"GraphQL and GraphiQL: http://{settings.host}:{settings.port}/graphql", flush=True)
    app = create_app(settings)
    # Everything made so far (schema, app, settings) lives as long as the process: keep
    # it out of the cyclic collector's full passes, which otherwise stall busy fan-out.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # logging is set up by configure_logging (ordergraph.logs)
        access_log=False,  # an access line would carry GET query strings (variables)
        timeout_graceful_shutdown=10,
        # Per-connection compression costs CPU on every message sent to every subscriber.
        ws_per_message_deflate=settings.ws_compression,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordergraph", description="GraphQL API for orders, stock, backlog and backorders."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve the API")
    serve.add_argument("--host", help="address to bind (ORDERGRAPH_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (ORDERGRAPH_PORT, default 8000)")
    serve.add_argument("--database-url", help="database URL (ORDERGRAPH_DATABASE_URL)")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--database-url", help="database URL (ORDERGRAPH_DATABASE_URL)")
    migrate.set_defaults(func=cmd_migrate)

    export = sub.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    export.set_defaults(func=cmd_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except SettingsError as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return 2
    except (OSError, ConnectionError) as err:
        print(f"ordergraph: {err}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
