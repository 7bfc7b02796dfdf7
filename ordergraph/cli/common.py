"""What every command shares: one-line failures, settings from the arguments, the database."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from ordergraph.settings import Settings
from ordergraph.storage.db import Database

T = TypeVar("T")

# `add_parser` of the `ordergraph` subcommands: each command module adds its own with it.
AddCommand = Callable[..., argparse.ArgumentParser]


class CliError(Exception):
    """A failure to report in one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="database URL (ORDERGRAPH_DATABASE_URL)")


def at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
        return number

    return parse


def settings_of(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_overrides(
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def shown_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _refuse_unmigrated(db: Database) -> None:
    from ordergraph.storage.migrate import pending

    missing = await pending(db)
    if missing:
        raise CliError(
            f"the database is not migrated ({len(missing)} revision(s) pending): "
            "run `ordergraph migrate` first"
        )


async def with_db(
    settings: Settings, action: Callable[[Database], Awaitable[T]], *, migrated: bool = True
) -> T:
    """Run `action` on the database, turning an unreachable one into a one-line CliError."""
    path = settings.sqlite_path
    if migrated and path is not None and not path.exists():
        raise CliError(f"no database at {path}: run `ordergraph migrate` first")
    db = Database(settings.database_url)
    try:
        if migrated:
            await _refuse_unmigrated(db)
        return await action(db)
    except (DBAPIError, OSError) as err:
        lines = str(getattr(err, "orig", None) or err).strip().splitlines() or [repr(err)]
        reason = lines[0]
        if len(reason) > 1 and reason[0] == reason[-1] and reason[0] in "'\"":
            reason = reason[1:-1]
        raise CliError(f"cannot use the database {shown_url(db.url)}: {reason}") from None
    finally:
        await db.dispose()


async def migrate(settings: Settings) -> None:
    from ordergraph.storage.migrate import upgrade

    await with_db(settings, upgrade, migrated=False)


def now() -> dt.datetime:
    from ordergraph.clock import Clock

    return Clock()()


def store_gid(store_id: int) -> str:
    from ordergraph.resolvers import ids

    return ids.encode("Store", store_id)


def key_gid(key_id: int) -> str:
    from ordergraph.resolvers import ids

    return ids.encode("ApiKey", key_id)
