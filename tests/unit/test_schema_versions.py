"""CI fails on a breaking change to the schema unless CHANGELOG.md names it under a new
version (tests/schema_changes.py); the changelog, pyproject's version and the released
schema's snapshot agree. The checker itself is tried on a synthetic pair of schemas."""

from __future__ import annotations

import tomllib

import pytest
from graphql import build_schema

from tests.schema_changes import (
    CHANGELOG,
    ROOT,
    changelog_sections,
    dangerous_changes,
    last_release,
    released_schema,
    served_schema,
    unnamed_breaking_changes,
    version_text,
)

# -- the served schema against the last release ---------------------------------------


def test_every_breaking_change_since_the_last_release_is_named_in_the_changelog() -> None:
    released, old = released_schema()
    served = served_schema()
    unnamed = unnamed_breaking_changes(old, served, CHANGELOG.read_text(), released)
    for line in dangerous_changes(old, served):  # allowed; shown with pytest -rP
        print(f"dangerous change since {version_text(released)}: {line}")
    assert not unnamed, (
        f"breaking changes to the schema since {version_text(released)}: name each under "
        f"a version above {version_text(released)} in CHANGELOG.md (CONTRIBUTING.md, "
        "'Releasing'), or undo it:\n" + "\n".join(unnamed)
    )


def _project_version() -> tuple[int, int, int]:
    text = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    major, minor, patch = (int(part) for part in text.split("."))
    return major, minor, patch


def test_the_changelog_has_a_section_for_the_project_version() -> None:
    versions = [s.version for s in changelog_sections(CHANGELOG.read_text())]
    assert _project_version() in versions, "pyproject.toml's version has no CHANGELOG.md section"


def test_the_snapshot_is_of_a_dated_release_not_after_the_project_version() -> None:
    released, _ = last_release()
    assert released <= _project_version()
    dated = [s.version for s in changelog_sections(CHANGELOG.read_text()) if s.dated]
    assert released in dated, f"CHANGELOG.md has no dated section for {version_text(released)}"


def test_the_changelog_starts_with_unreleased_then_versions_newest_first() -> None:
    sections = changelog_sections(CHANGELOG.read_text())
    assert sections[0].version is None
    versions = [s.version for s in sections[1:] if s.version is not None]
    assert len(versions) == len(sections) - 1
    assert versions == sorted(versions, reverse=True)


# -- the checker, on a synthetic pair ------------------------------------------------------

OLD = build_schema(
    """
    type Query {
      order(number: Int): Order
      orders(first: Int): [Order!]!
    }
    type Order { number: Int! total: String! status: Status! }
    enum Status { OPEN SHIPPED }
    """
)
RELEASED = (0, 2, 0)


def _new(order_fields: str = "number: Int! total: String! status: Status!", **parts: str) -> str:
    query = parts.get("query", "order(number: Int): Order orders(first: Int): [Order!]!")
    status = parts.get("status", "OPEN SHIPPED")
    return f"type Query {{ {query} }} type Order {{ {order_fields} }} enum Status {{ {status} }}"


def _check(new_sdl: str, changelog: str = "") -> list[str]:
    return unnamed_breaking_changes(OLD, build_schema(new_sdl), changelog, RELEASED)


REMOVED_TOTAL = _new("number: Int! status: Status!")


def test_a_removed_field_fails_naming_its_coordinate() -> None:
    (line,) = _check(REMOVED_TOTAL)
    assert "Order.total" in line


def test_a_removed_field_named_under_a_new_version_passes() -> None:
    changelog = """# Changelog
## [Unreleased]
## [0.3.0] - 2027-01-10
### Removed
- `Order.total`: use the lines' prices.
## [0.2.0] - 2026-11-29
"""
    assert _check(REMOVED_TOTAL, changelog) == []


def test_a_new_version_not_yet_dated_counts() -> None:
    assert _check(REMOVED_TOTAL, "## [Unreleased]\n## [1.0.0]\n- Order.total removed.\n") == []


@pytest.mark.parametrize(
    "changelog",
    [
        "## [Unreleased]\n- `Order.total` removed\n## [0.2.0] - 2026-11-29\n",  # not a version
        "## [0.2.0] - 2026-11-29\n- `Order.total` removed\n",  # the released version itself
        "## [0.1.9]\n- `Order.total` removed\n",  # an older one
        "## [0.3.0]\n- `Order.totals` removed\n",  # another name
        "## [0.3.0]\n- `Order.total.amount` removed\n",
    ],
)
def test_a_removed_field_named_anywhere_else_still_fails(changelog: str) -> None:
    assert len(_check(REMOVED_TOTAL, changelog)) == 1


def test_an_added_optional_field_or_argument_passes() -> None:
    new = _new(
        "number: Int! total: String! status: Status! note: String",
        query="order(number: Int, external: String): Order orders(first: Int): [Order!]!",
    )
    assert _check(new) == []
    assert dangerous_changes(OLD, build_schema(new)) == [
        "An optional argument Query.order(external:) was added."
    ]


@pytest.mark.parametrize(
    ("new", "named"),
    [
        (_new("number: Int! total: Int! status: Status!"), "Order.total"),  # retyped
        (_new("number: Int total: String! status: Status!"), "Order.number"),  # nullable now
        (
            _new(query="order(number: Int!): Order orders(first: Int): [Order!]!"),
            "Query.order(number:)",  # an argument made required
        ),
        (
            _new(query="order(number: Int, after: String!): Order orders(first: Int): [Order!]!"),
            "Query.order(after:)",  # a required argument added
        ),
        (_new(query="order: Order orders(first: Int): [Order!]!"), "Query.order(number:)"),
        (_new(status="OPEN"), "Status.SHIPPED"),  # an enum value removed
        (_new(query="orders(first: Int): [Order!]!"), "Query.order"),
    ],
)
def test_each_kind_of_breaking_change_is_named_by_its_coordinate(new: str, named: str) -> None:
    (line,) = _check(new)
    assert f"(name `{named}`)" in line
    assert _check(new, f"## [0.3.0]\n### Changed\n- {named}: see the migration notes.\n") == []


def test_a_removed_type_is_named_by_its_name() -> None:
    new = "type Query { order(number: Int): String orders(first: Int): [String!]! }"
    unnamed = _check(new)
    assert any("(name `Order`)" in line for line in unnamed)
    assert any("(name `Status`)" in line for line in unnamed)
    changelog = (
        "## [0.3.0]\n- `Order` and `Status` removed; `Query.order` and `Query.orders` retyped.\n"
    )
    assert _check(new, changelog) == []
