"""`ordergraph migrate` and `ordergraph export-schema`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ordergraph.cli.common import AddCommand, add_database_url, migrate, settings_of, shown_url


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    asyncio.run(migrate(settings))
    print(f"database is up to date: {shown_url(settings.database_url)}")
    return 0


def cmd_export_schema(_: argparse.Namespace) -> int:
    from ordergraph.schema.build import build_schema

    sys.stdout.write(build_schema().as_str().rstrip("\n") + "\n")
    return 0


def register(add_command: AddCommand) -> None:
    command = add_command("migrate", help="apply database migrations")
    add_database_url(command)
    command.set_defaults(func=cmd_migrate)

    command = add_command("export-schema", help="print the GraphQL schema (SDL)")
    command.set_defaults(func=cmd_export_schema)
