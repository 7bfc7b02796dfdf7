"""The `ordergraph` command.

Each command lives in its own module and adds its own arguments: `serve` (serve.py),
`migrate` and `export-schema` (db.py), the admin commands (admin.py) and `seed-demo`
(demo.py); common.py holds what they share.

The admin commands (create-store, create-key, revoke-key) act on the database
directly: whoever can reach the database needs no admin token. They do not
migrate: they refuse, in one line, a database whose schema is not current
(`ordergraph migrate` is a deliberate step). `migrate`, `seed-demo` and `serve`
apply the migrations first.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ordergraph.cli import admin, db, demo, serve
from ordergraph.cli.common import CliError, Parser
from ordergraph.domain.errors import DomainError
from ordergraph.settings import SettingsError
from ordergraph.version import version

__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ordergraph", description="GraphQL API for orders, stock, backlog and backorders."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version()}",
        help="print the installed version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (serve, db, admin, demo):
        command.register(sub.add_parser)
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
