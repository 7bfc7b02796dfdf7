"""Fixtures: the API on SQLite and on PostgreSQL (a fresh database per run and xdist worker).

The folders name the kind of test, applied as markers at collection: tests/unit (no
database server, no process, no network), tests/api (the app in process, through the ASGI
client or an in-process server), tests/e2e (starts processes: `ordergraph serve`, node,
chromium, npm, benches, docker-compose). Tests that reach PostgreSQL are marked `postgres`.
`scripts/test --fast` runs `(unit or api) and not postgres and not exhaustive`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench import harness, pg
from bench.harness import free_port as free_port  # the tests import it from here
from ordergraph.app import create_app
from ordergraph.clock import Clock
from ordergraph.settings import Settings
from ordergraph.storage.db import Database
from ordergraph.storage.distribution import TABLES
from ordergraph.storage.migrate import upgrade
from tests.client import Api

LiveServer = harness.Server  # what the live-server fixtures yield

ADMIN_TOKEN = "og_admin_test_" + uuid.uuid4().hex
PG_HOST = os.environ.get("ORDERGRAPH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ORDERGRAPH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ORDERGRAPH_TEST_PG_USER", "postgres")
ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Set by `scripts/test --fast`: a test that reaches PostgreSQL in such a run is misfiled.
NO_POSTGRES = os.environ.get("ORDERGRAPH_TEST_NO_POSTGRES", "").lower() in ("1", "true", "yes")
# The pytest-xdist worker this process is ("gw0", ...), or "main" without xdist.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


# A Citus cluster instead of one PostgreSQL server (docs/citus.md): PG_HOST and PG_PORT
# name its coordinator, ORDERGRAPH_CITUS_WORKERS its workers ("host:port,..."). Each test
# database is then made on every node with the citus extension, the nodes are registered
# in it, and `ordergraph migrate` distributes the tables.
CITUS_WORKERS = pg.citus_workers()


def without_placements(names: Iterable[str]) -> set[str]:
    """Table names without a Citus coordinator's placements of its tables
    (`api_keys_102009`: the reference tables' copies it holds), which the database's
    sessions see (storage/distribution.py `_catalogue_unfiltered`)."""
    found = set(names)
    if not CITUS_WORKERS:
        return found
    return {n for n in found if not (m := re.fullmatch(r"(\w+)_\d+", n)) or m[1] not in TABLES}


def _pg_admin_dsn(database: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _pg_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(_pg_admin_dsn(), timeout=3)
    except (OSError, asyncpg.PostgresError) as err:
        return str(err)
    await conn.close()
    return None


def run_outside_loop(coro: Any) -> Any:
    """Run a coroutine to completion on a private loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _create_pg_database(name: str) -> str:
    await pg.create_database(_pg_admin_dsn(), name, CITUS_WORKERS)
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    await _migrate(url)
    return url


async def _drop_pg_database(name: str) -> None:
    await pg.drop_database(_pg_admin_dsn(), name, CITUS_WORKERS)


async def _migrate(url: str) -> None:
    db = Database(url)
    await upgrade(db)
    await db.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (each xdist worker its own), dropped
    afterwards."""
    if NO_POSTGRES:
        pytest.fail(
            "this test reaches PostgreSQL in a run without it (scripts/test --fast): "
            "mark it `postgres` or use a fixture conftest recognises (POSTGRES_FIXTURES)"
        )
    problem = run_outside_loop(_pg_reachable())
    if problem is not None:
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} is not reachable: {problem}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the PostgreSQL half must run)")
        print("\n" + "!" * 70 + f"\n!! SKIPPING PostgreSQL tests: {message}\n" + "!" * 70)
        pytest.skip(message)
    name = f"ordergraph_test_{WORKER}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url: str = run_outside_loop(_create_pg_database(name))
    try:
        yield url
    finally:
        run_outside_loop(_drop_pg_database(name))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "ordergraph.db"
    url = f"sqlite+aiosqlite:///{path}"
    run_outside_loop(_migrate(url))
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def database(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    db = Database(url, pool_size=20)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api(database: Database, clock: Clock) -> AsyncIterator[Api]:
    """The app in process, over httpx, on the backend of this test's parameter."""
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN)
    app = create_app(settings, clock=clock, db=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield Api(http, ADMIN_TOKEN, database)


@asynccontextmanager
async def app_client(
    database: Database, clock: Clock | None = None, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process on `database`, with these settings changed, over httpx."""
    settings = Settings(database_url=database.url, admin_token=ADMIN_TOKEN, **changes)
    app = create_app(settings, clock=clock, db=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
        yield http


CHROMIUM = Path("/usr/bin/chromium")


def chromium_or_skip(what: str) -> None:
    """Fail under CI (which installs Debian's chromium), else skip loudly, when it is missing."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: {what} needs Debian's chromium"
    if IN_CI:
        pytest.fail(message + " (CI=true: .ci/run installs it; this test must run)")
    print("\n" + "!" * 70 + f"\n!! SKIPPING {what}: {message}\n" + "!" * 70)
    pytest.skip(message)


@pytest.fixture
async def pg_api(pg_url: str, clock: Clock) -> AsyncIterator[Api]:
    db = Database(pg_url, pool_size=20)
    settings = Settings(database_url=pg_url, admin_token=ADMIN_TOKEN)
    app = create_app(settings, clock=clock, db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield Api(http, ADMIN_TOKEN, db)
    await db.dispose()


UNTHROTTLED = {
    "ORDERGRAPH_RATE_LIMIT_CAPACITY": "1000000000",
    "ORDERGRAPH_RATE_LIMIT_RESTORE_PER_SECOND": "1000000000",
}


def start_server(
    database_url: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
) -> LiveServer:
    """`ordergraph serve` on `port` (default: a free one) with the test admin token, once
    it answers."""
    env = {
        "ORDERGRAPH_ADMIN_TOKEN": ADMIN_TOKEN,
        "ORDERGRAPH_DATABASE_URL": database_url,
        "ORDERGRAPH_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    return harness.start_serve(log, env, timeout=30, port=port)


@pytest.fixture(params=["sqlite", "postgres"])
def live_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A real `ordergraph serve` process with default settings, on each database."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    live = start_server(url, tmp_path / "server.log")
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def live_pg_server(pg_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """A real `ordergraph serve` process on the test PostgreSQL database.

    Its rate limit is lifted: the tests on it race hundreds of writes through one key to
    check the stock rules (tests/*/boundary/ check the limits on servers of their own)."""
    server = start_server(pg_url, tmp_path / "server.log", UNTHROTTLED)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def live_api(live_pg_server: LiveServer) -> AsyncIterator[Api]:
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    async with httpx.AsyncClient(base_url=live_pg_server.url, timeout=120, limits=limits) as http:
        yield Api(http, ADMIN_TOKEN, None)


async def _database_exists(name: str) -> bool:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        found = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await conn.close()
    return found is not None


def run_bench(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run `bench/<script>` against the test PostgreSQL server; it makes and drops its own
    database there."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--pg-dsn", _pg_admin_dsn()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bench_dropped_its_database(output: str, prefix: str) -> bool:
    """Whether the database a bench named in its output (…/<prefix>_…) is gone."""
    match = re.search(rf"/({prefix}_\w+)", output)
    assert match is not None, output
    return not run_outside_loop(_database_exists(match.group(1)))


# -- kinds of test, as markers ---------------------------------------------------------

KINDS = ("unit", "api", "e2e")
TESTS = Path(__file__).resolve().parent
# Fixtures that start an `ordergraph serve` process: a test using one is end-to-end.
PROCESS_FIXTURES = {"live_server", "live_pg_server", "live_api"}


# Fixtures that reach the PostgreSQL server (parameters named "postgres" count too).
@pytest.fixture(scope="module")
def own_sqlite_url(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    """A migrated SQLite database of the test module's own (a sweep over every store in a
    database must not meet other tests' stores)."""
    label = request.module.__name__.rpartition(".")[2]
    path: Path = tmp_path_factory.mktemp(label) / f"{label}.db"
    url = f"sqlite+aiosqlite:///{path}"
    run_outside_loop(_migrate(url))
    return url


@pytest.fixture(scope="module")
def own_pg_url(pg_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of the test module's own, dropped after."""
    name = f"ordergraph_own_{uuid.uuid4().hex[:10]}"
    url: str = run_outside_loop(_create_pg_database(name))
    try:
        yield url
    finally:
        run_outside_loop(_drop_pg_database(name))


POSTGRES_FIXTURES = {"pg_url", "pg_api", "live_pg_server", "live_api", "own_pg_url"}
DATABASE_FIXTURES = {"api", "database", "backend", "sqlite_url", "pg_url", "pg_api"}
# Names in a module's text that mean it starts processes (for files not yet filed).
PROCESS_WORDS = ("subprocess", "start_server", "run_bench", "chromium_or_skip", "Popen")


def _unfiled_kind(item: pytest.Item, texts: dict[Path, str]) -> str:
    """The kind of a test in a file directly under tests/: by what its module uses."""
    path = Path(item.path)
    if path not in texts:
        texts[path] = path.read_text(encoding="utf-8")
    text = texts[path]
    if any(word in text for word in PROCESS_WORDS):
        return "e2e"
    if DATABASE_FIXTURES & _fixtures(item) or "app_client" in text:
        return "api"
    return "unit"


def _fixtures(item: pytest.Item) -> set[str]:
    return set(getattr(item, "fixturenames", ()))


def _kind(item: pytest.Item, texts: dict[Path, str]) -> str:
    """An explicit kind marker wins (a test in tests/api that starts a process is marked
    e2e); else the folder under tests/ names it; a process fixture makes any test e2e."""
    for marker in item.iter_markers():
        if marker.name in KINDS:
            return marker.name
    parts = Path(item.path).resolve().relative_to(TESTS).parts
    kind = parts[0] if parts[0] in KINDS else _unfiled_kind(item, texts)
    if PROCESS_FIXTURES & _fixtures(item):
        return "e2e"
    return kind


def _reaches_postgres(item: pytest.Item) -> bool:
    if item.get_closest_marker("postgres") is not None:
        return True
    if POSTGRES_FIXTURES & _fixtures(item):
        return True
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return any(isinstance(value, str) and value == "postgres" for value in params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    texts: dict[Path, str] = {}
    for item in items:
        kind = _kind(item, texts)
        if item.get_closest_marker(kind) is None:
            item.add_marker(getattr(pytest.mark, kind))
        if _reaches_postgres(item) and item.get_closest_marker("postgres") is None:
            item.add_marker(pytest.mark.postgres)
