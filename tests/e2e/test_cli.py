"""The `ordergraph` command: serve, migrate, export-schema, and the admin commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench import harness
from ordergraph.app import create_app
from ordergraph.resolvers import ids
from ordergraph.settings import Settings
from tests.conftest import (
    ADMIN_TOKEN,
    _drop_pg_database,
    _pg_admin_dsn,
    free_port,
    run_outside_loop,
)

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGRAPH_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_export_schema_prints_the_sdl(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ordergraph", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert "type Query {" in out.stdout
    assert out.stdout == (ROOT / "schema.graphql").read_text()


def test_migrate_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "ORDERGRAPH_PORT": "eighty"}
    out = subprocess.run(
        [sys.executable, "-m", "ordergraph", "serve"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "ordergraph: ORDERGRAPH_PORT must be a whole number, got 'eighty'"


def test_serve_runs_with_no_setup_and_prints_an_admin_token_once(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"

    def serve(log: Path) -> harness.Server:
        command = harness.serve_command(port)
        return harness.start(
            command, port=port, log=log, env=_env(tmp_path), cwd=tmp_path, timeout=30
        )

    server = serve(log)
    try:
        printed = log.read_text()
        token = re.search(r"^\s+(og_admin_\S+)$", printed, re.M)
        assert token, printed
        assert (tmp_path / "ordergraph.db").exists()
        assert (tmp_path / "ordergraph.db.admin-token").read_text().strip() == token.group(1)
        created = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={
                "query": """mutation { createStore(input: {handle: "cli-shop", name: "Shop",
                  currencyCode: "USD", timezone: "Europe/Berlin"}) { store { handle } token } }"""
            },
            headers={"Authorization": f"Bearer {token.group(1)}"},
        ).json()
        assert created["data"]["createStore"]["store"]["handle"] == "cli-shop"
    finally:
        server.stop()

    second_log = tmp_path / "serve-again.log"
    server = serve(second_log)  # a second start keeps the token and does not print it again
    try:
        assert "og_admin_" not in second_log.read_text()
    finally:
        server.stop()


# -- create-store, create-key, revoke-key -------------------------------------------

HELP_COMMANDS = (
    "serve",
    "migrate",
    "export-schema",
    "create-store",
    "create-key",
    "revoke-key",
    "seed-demo",
)


def og(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "ordergraph", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def one_line_failure(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single stderr line of a failed run (and nothing on stdout)."""
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("ordergraph"), lines[0]
    assert out.stdout == ""
    return lines[0]


def printed(out: subprocess.CompletedProcess[str], label: str) -> str:
    assert out.returncode == 0, out.stderr
    found = re.search(rf"^{label}:\s+(\S+)", out.stdout, re.M)
    assert found, out.stdout
    return found.group(1)


@pytest.fixture(params=["sqlite", "postgres"])
def cli_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database for the command: a new SQLite file, or this run's PostgreSQL one."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrated = og("migrate", "--database-url", url, env=_env(tmp_path), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    return url


STORE_QUERY = "query($h: String!) { store(handle: $h) { handle currencyCode timezone } }"
PLACE = """mutation($id: ID!) { upsertProduct(input: {storeId: $id, sku: "cli-1", title: "T",
  price: "1.00"}) { product { sku } userErrors { code } } }"""


async def _ask(url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    app = create_app(Settings(database_url=url, admin_token=ADMIN_TOKEN))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
            body: dict[str, Any] = response.json()
            return body
    finally:
        await app.state.db.dispose()


async def test_create_store_and_keys_print_tokens_that_work_until_revoked(
    cli_db: str, tmp_path: Path
) -> None:
    env, url = _env(tmp_path), cli_db
    handle = "cli-" + uuid.uuid4().hex[:10]
    made = og(
        "create-store", "--handle", handle, "--name", "CLI Shop", "--currency", "EUR",
        "--timezone", "Europe/Berlin", "--default-backorder-policy", "allow",
        "--database-url", url, env=env, cwd=tmp_path,
    )  # fmt: skip
    store_gid = made.stdout.split()[2]
    store_token = printed(made, "token")
    store_key = printed(made, "api key")
    assert store_token.startswith("og_")
    assert "shown only now" in made.stderr

    seen = await _ask(url, store_token, STORE_QUERY, {"h": handle})
    assert seen["data"]["store"] == {
        "handle": handle,
        "currencyCode": "EUR",
        "timezone": "Europe/Berlin",
    }
    # every scope: the store's token may also change inventory
    wrote = await _ask(url, store_token, PLACE, {"id": store_gid})
    assert wrote["data"]["upsertProduct"] == {"product": {"sku": "cli-1"}, "userErrors": []}

    read_key = og(
        "create-key", "--store", handle, "--scope", "READ", "--name", "reporting",
        "--database-url", url, env=env, cwd=tmp_path,
    )  # fmt: skip
    read_token = printed(read_key, "token")
    read_gid = printed(read_key, "api key")
    assert (await _ask(url, read_token, STORE_QUERY, {"h": handle}))["data"]["store"]
    refused = await _ask(url, read_token, PLACE, {"id": store_gid})
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    # revoke by the id the API shows, and the store's own key by its plain number
    revoked = og("revoke-key", read_gid, "--database-url", url, env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked api key {read_gid} (reporting)")
    number = ids.decode(store_key, "ApiKey")
    assert number is not None
    revoked = og("revoke-key", str(number[1][0]), "--database-url", url, env=env, cwd=tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    for token in (read_token, store_token):
        failed = await _ask(url, token, STORE_QUERY, {"h": handle})
        assert failed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", failed

    again = og("revoke-key", read_gid, "--database-url", url, env=env, cwd=tmp_path)
    assert again.returncode == 0
    assert "was already revoked" in again.stdout


def test_admin_commands_fail_in_one_line(cli_db: str, tmp_path: Path) -> None:
    env, url = _env(tmp_path), cli_db
    handle = "cli-" + uuid.uuid4().hex[:10]

    def store(*args: str) -> subprocess.CompletedProcess[str]:
        base = {"--handle": handle, "--name": "Shop", "--currency": "USD", "--timezone": "UTC"}
        for flag, value in zip(args[::2], args[1::2], strict=True):
            base[flag] = value
        flat = [part for pair in base.items() for part in pair]
        return og("create-store", *flat, "--database-url", url, env=env, cwd=tmp_path)

    assert "'Mars/Olympus' is not an IANA time zone name" in one_line_failure(
        store("--timezone", "Mars/Olympus")
    )
    assert "'XYZ' is not an ISO 4217 currency code" in one_line_failure(store("--currency", "XYZ"))
    assert "handle must be 2 to 40 characters" in one_line_failure(store("--handle", "Bad Handle"))
    assert "name must not be blank" in one_line_failure(store("--name", "  "))
    assert store().returncode == 0
    assert f"handle {handle!r} is taken" in one_line_failure(store())

    def key(*args: str) -> subprocess.CompletedProcess[str]:
        return og("create-key", *args, "--database-url", url, env=env, cwd=tmp_path)

    assert "no store with handle 'no-such-shop'" in one_line_failure(
        key("--store", handle, "--store", "no-such-shop", "--scope", "READ", "--name", "k")
    )
    assert "invalid choice: 'WRITE'" in one_line_failure(
        key("--store", handle, "--scope", "write", "--name", "k"), code=2
    )
    assert "the following arguments are required: --name" in one_line_failure(
        key("--store", handle, "--scope", "READ"), code=2
    )

    def revoke(key_id: str) -> subprocess.CompletedProcess[str]:
        return og("revoke-key", key_id, "--database-url", url, env=env, cwd=tmp_path)

    assert "no api key 987654321" in one_line_failure(revoke("987654321"))
    assert "is not an api key id" in one_line_failure(revoke("not-an-id"))
    store_gid = ids.encode("Store", 1)  # a well-formed id of another kind
    assert "is not an api key id" in one_line_failure(revoke(store_gid))


def test_admin_commands_refuse_an_unreachable_or_unmigrated_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    port = free_port()  # nothing listens there
    down = f"postgresql://postgres@127.0.0.1:{port}/nothing"
    line = one_line_failure(
        og("create-store", "--handle", "x-y", "--name", "X", "--currency", "USD",
           "--timezone", "UTC", "--database-url", down, env=env, cwd=tmp_path)
    )  # fmt: skip
    assert line.startswith(
        f"ordergraph: cannot use the database postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing"
    )
    line = one_line_failure(og("revoke-key", "1", "--database-url", down, env=env, cwd=tmp_path))
    assert "cannot use the database" in line

    missing = tmp_path / "missing.db"
    line = one_line_failure(
        og("create-key", "--store", "a", "--scope", "READ", "--name", "k",
           "--database-url", f"sqlite:///{missing}", env=env, cwd=tmp_path)
    )  # fmt: skip
    assert line == f"ordergraph: no database at {missing}: run `ordergraph migrate` first"
    assert not missing.exists()


def test_admin_commands_refuse_an_unmigrated_postgres_database(pg_url: str, tmp_path: Path) -> None:
    name = f"ordergraph_cli_empty_{uuid.uuid4().hex[:8]}"
    run_outside_loop(_create_empty_pg(name))
    try:
        url = pg_url.rsplit("/", 1)[0] + "/" + name
        line = one_line_failure(
            og("create-store", "--handle", "x-y", "--name", "X", "--currency", "USD",
               "--timezone", "UTC", "--database-url", url, env=_env(tmp_path), cwd=tmp_path)
        )  # fmt: skip
        assert "the database is not migrated" in line
        assert "run `ordergraph migrate` first" in line
    finally:
        run_outside_loop(_drop_pg_database(name))


async def _create_empty_pg(name: str) -> None:
    admin = await asyncpg.connect(_pg_admin_dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    out = og(command, "--help", env=_env(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: ordergraph {command}")
    top = og("--help", env=_env(tmp_path), cwd=tmp_path)
    assert command in top.stdout
