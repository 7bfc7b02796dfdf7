"""Breaking changes to the GraphQL schema must be named in CHANGELOG.md under a new version.

The schema as last released is kept in `docs/schema-<version>.graphql` (the highest version
there is the last release). The served schema is compared with it by graphql-core
(`find_schema_changes`, of which `find_breaking_changes` is the breaking part). Each
breaking change (a type, field, argument, input field or enum value removed, a field or
argument retyped, an argument or input field made required or added as required, an
interface dropped, ...) is allowed only if CHANGELOG.md has a section for a version above
the snapshot's whose text names the change by its schema coordinate: `Order.total`,
`Store.orders(first:)`, `OrderStatus.OPEN`, `PlaceOrderInput.lines`, or the type's name.
"Unreleased" does not count: a breaking change decides the next version.

Dangerous changes (an enum value or an optional argument added, a default changed) are
reported, not refused: clients with exhaustive switches should hear of them.

`python -m tests.schema_changes` prints both lists against the served schema;
tests/unit/test_schema_versions.py fails on an unnamed breaking change.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from graphql import GraphQLSchema, build_schema
from graphql.utilities.find_schema_changes import (
    BreakingChange,
    BreakingChangeType,
    DangerousChange,
    find_schema_changes,
)

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
SNAPSHOTS = ROOT / "docs"
SNAPSHOT_NAME = re.compile(r"schema-(\d+)\.(\d+)\.(\d+)\.graphql")

Version = tuple[int, int, int]

# "## [0.3.0] - 2027-01-10", "## [0.3.0]" (not dated: not released yet), "## [Unreleased]".
_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?P<rest>.*)$", re.MULTILINE)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_DATE = re.compile(r"\s*-\s*\d{4}-\d{2}-\d{2}\s*")
_NAME = r"[_A-Za-z][_0-9A-Za-z]*"
# A member coordinate in graphql-core's descriptions: Type.field, Type.field(arg:), @dir(arg:).
_MEMBER = re.compile(rf"@{_NAME}(?:\({_NAME}:\))?|{_NAME}\.{_NAME}(?:\({_NAME}:\))?")
# The type named by a change that has no member coordinate.
_TYPE_LEVEL = {
    BreakingChangeType.TYPE_REMOVED: re.compile(rf"(?:Standard scalar )?({_NAME}) was removed"),
    BreakingChangeType.TYPE_CHANGED_KIND: re.compile(rf"^({_NAME}) changed from"),
    BreakingChangeType.TYPE_REMOVED_FROM_UNION: re.compile(rf"from union type ({_NAME})"),
    BreakingChangeType.IMPLEMENTED_INTERFACE_REMOVED: re.compile(
        rf"^({_NAME}) no longer implements"
    ),
}


def version_text(version: Version) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class Section:
    """One `## [...]` section of the changelog."""

    version: Version | None  # None for "Unreleased" (or anything that is not X.Y.Z)
    dated: bool
    text: str


def changelog_sections(changelog: str) -> list[Section]:
    headings = list(_HEADING.finditer(changelog))
    sections = []
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(changelog)
        found = _VERSION.fullmatch(heading["name"].strip())
        version = (int(found[1]), int(found[2]), int(found[3])) if found else None
        dated = bool(_DATE.fullmatch(heading["rest"]))
        sections.append(Section(version, dated, changelog[heading.end() : end]))
    return sections


def last_release(folder: Path = SNAPSHOTS) -> tuple[Version, Path]:
    """The highest version among the schema snapshots, and its file."""
    found: dict[Version, Path] = {}
    for path in folder.glob("schema-*.graphql"):
        match = SNAPSHOT_NAME.fullmatch(path.name)
        if match:
            found[(int(match[1]), int(match[2]), int(match[3]))] = path
    if not found:
        raise FileNotFoundError(f"no schema-<version>.graphql in {folder}")
    newest = max(found)
    return newest, found[newest]


def coordinate(change: BreakingChange) -> str:
    """What the changelog must name for `change`: the schema coordinate of what changed."""
    type_level = _TYPE_LEVEL.get(change.type)
    if type_level is not None:
        found = type_level.search(change.description)
        if found:
            return found[1]
    member = _MEMBER.search(change.description)
    if member:
        return member[0]
    raise ValueError(f"no schema coordinate in {change.description!r}")


def names(text: str, coordinate: str) -> bool:
    """Whether `text` names `coordinate` as a whole (`Order.total`, not `Order.totals`)."""
    pattern = rf"(?<![\w.@]){re.escape(coordinate)}(?![\w(])(?!\.\w)"
    return re.search(pattern, text) is not None


def unnamed_breaking_changes(
    old: GraphQLSchema, new: GraphQLSchema, changelog: str, released: Version
) -> list[str]:
    """The breaking changes from `old` (released as `released`) to `new` that no section
    of `changelog` for a version above `released` names; one line each."""
    newer = [s.text for s in changelog_sections(changelog) if s.version and s.version > released]
    missing = []
    for change in find_schema_changes(old, new):
        if not isinstance(change, BreakingChange):
            continue
        named = coordinate(change)
        if not any(names(text, named) for text in newer):
            missing.append(f"{change.description} (name `{named}`)")
    return missing


def dangerous_changes(old: GraphQLSchema, new: GraphQLSchema) -> list[str]:
    return [c.description for c in find_schema_changes(old, new) if isinstance(c, DangerousChange)]


def served_schema() -> GraphQLSchema:
    from ordergraph.schema.build import build_schema as build_served_schema

    served: GraphQLSchema = build_served_schema()._schema
    return served


def released_schema() -> tuple[Version, GraphQLSchema]:
    released, path = last_release()
    return released, build_schema(path.read_text())


def main() -> int:
    released, old = released_schema()
    new = served_schema()
    unnamed = unnamed_breaking_changes(old, new, CHANGELOG.read_text(), released)
    print(f"Compared with the schema of {version_text(released)}:")
    print(f"breaking changes not named in CHANGELOG.md: {len(unnamed)}")
    for line in unnamed:
        print(f"  {line}")
    dangerous = dangerous_changes(old, new)
    print(f"dangerous changes (allowed; worth a line in CHANGELOG.md): {len(dangerous)}")
    for line in dangerous:
        print(f"  {line}")
    return 1 if unnamed else 0


if __name__ == "__main__":
    sys.exit(main())
