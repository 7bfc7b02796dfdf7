"""Which package may import which (DESIGN §2): dependencies point inward.

    schema ⇄ resolvers ──> domain <── storage
               resolvers ──> storage's read side (db, queries, history)
    live ──> schema, resolvers, domain, storage
    app (ordergraph/*) ──> everything;  bench ──> the app's entry points, domain, storage

domain is plain Python (the standard library and itself). storage persists it
(SQLAlchemy, Alembic, the drivers). schema and resolvers make the GraphQL API out of
domain types and services; schema does not reach into storage, and resolvers only read
through it (DataLoaders, pages, figures): every write goes through the unit-of-work
factory on the context. live delivery tails the log
and writes frames for the subscriptions, so it may use every inner package. The app
wires everything. The benches drive ordergraph from outside, through its public entry
points, and seed or replay stores through domain and storage. Every import is namespaced
(`ordergraph.storage`, never `storage`).

The check reads every .py file with `ast`: `import`, `from ... import` (relative ones
resolved against the file's package) and `importlib.import_module` / `__import__` with a
literal name; a computed name is reported as such.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DYNAMIC_IMPORTERS = {"__import__", "import_module"}
COMPUTED = "<computed module name>"
STDLIB = frozenset(sys.stdlib_module_names)

# Top-level folders that install as subpackages of `ordergraph` (links in ordergraph/).
SUBPACKAGES = ("domain", "storage", "schema", "resolvers", "live")
# Folders whose files belong to a layer; the others only must not use un-namespaced names.
LAYER_OF_FOLDER = {
    **{name: name for name in SUBPACKAGES},
    "ordergraph": "app",
    "bench": "bench",
}
UNRULED_FOLDERS = ("tests", "examples", "scripts")

# What each layer may import besides the standard library: module prefixes, first ours
# (`ordergraph.x` covers ordergraph.x and everything under it), then third-party libraries.
APP_ENTRY_POINTS = {
    "ordergraph.app",  # create_app, metrics_app
    "ordergraph.cli",
    "ordergraph.settings",
    "ordergraph.storage.db",  # Database: the app and the CLI take one
    "ordergraph.storage.migrate",  # upgrade: what `ordergraph migrate` runs
}
READ_SIDE = {
    "ordergraph.storage.db",  # Database, RequestDatabase: connections to read with
    "ordergraph.storage.queries",
    "ordergraph.storage.history",  # the figures' running totals
}
ALLOWED: dict[str, set[str]] = {
    "domain": {"ordergraph.domain"},
    "storage": {
        "ordergraph.storage",
        "ordergraph.domain",
        *("sqlalchemy", "alembic", "asyncpg", "aiosqlite"),
        "orjson",  # the writes' document to og_apply (storage/pg_unit.py)
    },
    "resolvers": {
        "ordergraph.resolvers",
        "ordergraph.schema",
        "ordergraph.domain",
        # The read side (queries are not commands): DataLoaders, pages, figures and token
        # lookups read through storage's read modules. Writes go through the unit-of-work
        # factory on the context (domain.ports), never storage's write side (uow, units,
        # admin, idempotency, tables), so mutations run on the in-memory fake too.
        *READ_SIDE,
        *("strawberry", "graphql"),
    },
    "schema": {
        "ordergraph.schema",
        "ordergraph.resolvers",
        "ordergraph.domain",
        *("strawberry", "graphql"),
    },
    "live": {
        "ordergraph.live",
        "ordergraph.schema",
        "ordergraph.resolvers",
        "ordergraph.domain",
        "ordergraph.storage",
        *("strawberry", "graphql", "starlette", "sqlalchemy", "asyncpg"),
        "websockets",  # live/frames.py: the state of the server's websocket connection
    },
    "app": {
        "ordergraph",
        *("strawberry", "graphql", "starlette", "anyio", "sqlalchemy", "alembic", "uvicorn"),
        "prometheus_client",
        "httpx",  # webhook delivery (ordergraph/webhooks.py)
        "orjson",  # the JSON of HTTP answers (ordergraph/http.py)
    },
    "bench": {
        *APP_ENTRY_POINTS,
        # The figures bench seeds its stores with the domain services in a unit of work
        # and replays them as the oracle for the API's figures; it writes global ids the
        # way clients do. It never reaches into the GraphQL layer or live delivery.
        "ordergraph.domain",
        "ordergraph.storage",
        "ordergraph.resolvers.ids",
        "bench",  # the benches' own helpers (run from bench/, also as bare names)
        *("place_orders",),
        *("httpx", "websockets", "asyncpg", "starlette", "uvicorn", "uvloop"),
        # bench/floor_app.py, the stack's floor: a minimal Strawberry app of its own (it
        # never imports ordergraph's schema).
        "strawberry",
    },
}

# Imports against the table that are tolerated for now: (file, module), each with a
# comment naming the work that removes it. None today. The test also fails when an entry
# no longer occurs, so the set cannot rot.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


# -- the checker --------------------------------------------------------------------------
def module_name(path: Path) -> str:
    """The module a file is imported as (`domain/model.py` -> `ordergraph.domain.model`)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts and parts[0] in SUBPACKAGES:
        parts.insert(0, "ordergraph")
    return ".".join(parts)


def is_our_module(module: str) -> bool:
    """Whether `module` (`ordergraph...`) is a file or package folder of this repository."""
    parts = module.split(".")
    if parts[0] != "ordergraph":
        return False
    where = ROOT.joinpath(*parts)  # through the links: ordergraph/storage -> ../storage
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imported_modules(source: str, filename: str = "<source>", module: str = "") -> list[str]:
    """Every absolute module a piece of code imports, statically or by a literal name.

    `module` is the importing module's own name, to resolve relative imports;
    `from package import name` counts as `package.name` when that is one of our modules
    (`from ordergraph.storage import queries` imports ordergraph.storage.queries).
    """
    is_package = filename.endswith("__init__.py")
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                absolute = ".".join(base + ([node.module] if node.module else []))
            else:
                absolute = node.module or ""
            for alias in node.names:
                submodule = f"{absolute}.{alias.name}"
                found.append(submodule if is_our_module(submodule) else absolute)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in DYNAMIC_IMPORTERS:
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append(first.value)
                else:
                    found.append(COMPUTED)
    return found


def allowed(layer: str, module: str) -> bool:
    if module.split(".")[0] in STDLIB:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED[layer])


def unnamespaced(module: str) -> bool:
    """`import storage`, `from domain.model import ...`: ours, but not under ordergraph."""
    return module.split(".")[0] in SUBPACKAGES


def python_files(folder: str) -> Iterator[Path]:
    """The folder's .py files, not following links (ordergraph/domain -> ../domain)."""
    for dirpath, dirnames, filenames in os.walk(ROOT / folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def offenders(layer_of_folder: dict[str, str], unruled: tuple[str, ...]) -> set[tuple[str, str]]:
    """(file, imported module) for every import against the table or un-namespaced."""
    found: set[tuple[str, str]] = set()
    for folder in [*layer_of_folder, *unruled]:
        layer = layer_of_folder.get(folder)
        for path in python_files(folder):
            source = path.read_text(encoding="utf-8")
            name = str(path.relative_to(ROOT))
            for module in imported_modules(source, name, module_name(path)):
                if unnamespaced(module) or (layer is not None and not allowed(layer, module)):
                    found.add((name, module))
    return found


def listing(pairs: set[tuple[str, str]]) -> str:
    return "\n".join(f"  {file}: {module}" for file, module in sorted(pairs))


# -- the rule -----------------------------------------------------------------------------
def test_every_package_imports_only_what_the_layer_table_allows() -> None:
    found = offenders(LAYER_OF_FOLDER, UNRULED_FOLDERS)
    new = found - KNOWN_EXCEPTIONS
    gone = KNOWN_EXCEPTIONS - found
    assert not new, "imports against the layer table (tests/test_layers.py):\n" + listing(new)
    assert not gone, "known exceptions that no longer occur; remove them:\n" + listing(gone)


def test_every_folder_of_code_has_a_layer() -> None:
    folders = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and not p.name.startswith(".") and any(python_files(p.name))
    }
    assert folders <= set(LAYER_OF_FOLDER) | set(UNRULED_FOLDERS), folders
    assert set(LAYER_OF_FOLDER.values()) == set(ALLOWED)
    for name in SUBPACKAGES:
        link = ROOT / "ordergraph" / name
        assert link.is_symlink()
        assert link.resolve() == ROOT / name


def test_domain_files_are_checked() -> None:
    files = {p.relative_to(ROOT / "domain").as_posix() for p in python_files("domain")}
    assert {"model.py", "services/__init__.py", "services/orders.py", "ports.py"} <= files


# -- the checker, checked -----------------------------------------------------------------
def domain_offences(source: str) -> list[str]:
    return [
        m
        for m in imported_modules(source, "domain/x.py", "ordergraph.domain.x")
        if not allowed("domain", m)
    ]


def test_the_import_check_catches_framework_and_database_imports() -> None:
    source = """
import strawberry
from starlette.requests import Request
import sqlalchemy.ext.asyncio as sa
import importlib
importlib.import_module("ordergraph.storage.uow")
__import__("resolvers")
def later(name):
    return importlib.import_module(name)
"""
    assert domain_offences(source) == [
        "strawberry",
        "starlette.requests",
        "sqlalchemy.ext.asyncio",
        "ordergraph.storage.uow",
        "resolvers",
        COMPUTED,
    ]


def test_the_import_check_accepts_the_standard_library_and_relative_imports() -> None:
    source = """
from __future__ import annotations
import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo
from ordergraph.domain.model import Order
from . import events
from .errors import DomainError
"""
    assert domain_offences(source) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("ordergraph.schema.types", "from ..storage import queries", "ordergraph.storage.queries"),
        ("ordergraph.schema.types", "from ..storage.db import Database", "ordergraph.storage.db"),
        ("ordergraph.schema.types", "from .. import storage", "ordergraph.storage"),
        ("ordergraph.schema", "from .types import OrderType", "ordergraph.schema.types"),
        ("ordergraph.app", "from . import demo", "ordergraph.demo"),
        ("ordergraph.app", "from ordergraph import storage", "ordergraph.storage"),
    ],
)
def test_relative_and_package_imports_resolve_to_the_module(
    module: str, source: str, expected: str
) -> None:
    filename = "schema/__init__.py" if module == "ordergraph.schema" else "x.py"
    assert imported_modules(source, filename, module) == [expected]


def test_the_table_refuses_what_the_design_forbids() -> None:
    assert not allowed("schema", "ordergraph.storage.queries")
    assert not allowed("schema", "sqlalchemy")
    assert not allowed("schema", "starlette.websockets")
    assert not allowed("resolvers", "ordergraph.storage.uow")
    assert not allowed("resolvers", "ordergraph.storage.units")
    assert not allowed("resolvers", "ordergraph.storage.admin")
    assert not allowed("resolvers", "sqlalchemy")
    assert allowed("resolvers", "ordergraph.storage.queries")
    assert not allowed("schema", "ordergraph.storage.queries")
    assert not allowed("storage", "ordergraph.schema.types")
    assert not allowed("storage", "ordergraph.live.hub")
    assert not allowed("domain", "ordergraph.storage")
    assert not allowed("bench", "ordergraph.schema.types")
    assert not allowed("bench", "ordergraph.live.hub")
    assert allowed("schema", "ordergraph.domain.model")
    assert allowed("live", "ordergraph.storage.db")
    assert allowed("app", "ordergraph.live.websockets")
    assert allowed("bench", "ordergraph.app")


def test_un_namespaced_names_are_refused_everywhere() -> None:
    for module in ("storage", "domain.model", "schema.build", "resolvers", "live.hub"):
        assert unnamespaced(module)
    assert not unnamespaced("ordergraph.storage")
    assert module_name(ROOT / "domain" / "model.py") == "ordergraph.domain.model"
    assert module_name(ROOT / "live" / "__init__.py") == "ordergraph.live"
    assert module_name(ROOT / "ordergraph" / "app.py") == "ordergraph.app"
