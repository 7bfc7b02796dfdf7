"""domain/ depends on the standard library and itself only (DESIGN §2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
ALLOWED_ROOTS = set(sys.stdlib_module_names)
OWN_PACKAGE = "ordergraph.domain"
DYNAMIC_IMPORTERS = {"__import__", "import_module"}


def imported_modules(source: str, filename: str = "<source>") -> list[str]:
    """Every absolute module a piece of code imports, statically or by a literal name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append(node.module)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in DYNAMIC_IMPORTERS:
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append(first.value)
                else:
                    found.append("<computed module name>")
    return found


def foreign_imports(source: str, filename: str = "<source>") -> list[str]:
    return [
        module
        for module in imported_modules(source, filename)
        if module.split(".")[0] not in ALLOWED_ROOTS
        and not (module == OWN_PACKAGE or module.startswith(OWN_PACKAGE + "."))
    ]


def test_domain_imports_only_the_standard_library_and_itself() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert {"model.py", "services.py", "ports.py"} <= {f.name for f in files}
    offenders = {
        str(path.relative_to(DOMAIN.parent)): bad
        for path in files
        if (bad := foreign_imports(path.read_text(encoding="utf-8"), str(path)))
    }
    assert offenders == {}


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
    assert foreign_imports(source) == [
        "strawberry",
        "starlette.requests",
        "sqlalchemy.ext.asyncio",
        "ordergraph.storage.uow",
        "resolvers",
        "<computed module name>",
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
    assert foreign_imports(source) == []
