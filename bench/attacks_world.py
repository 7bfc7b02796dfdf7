"""What the attack probes share: the stores they use, a result row, the running server and
its keys (made with the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

DEFAULT_PG = os.environ.get(
    "ORDERGRAPH_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ATTACKER_STORE = "demo-berlin"
VICTIM_STORE = "demo-new-york"
ALLOWED_ORIGIN = "http://127.0.0.1:9"


@dataclass
class Row:
    attack: str
    outcome: str
    ms: float


@dataclass
class World:
    url: str
    pid: int
    database_url: str
    admin: str
    reader: str  # READ on the attacker's store
    writer: str  # ORDERS only, attacker's store
    victim: str  # every scope, another store
    attacker_store_id: str
    victim_store_id: str
    victim_sku: str
    attacker_sku: str = ""  # the attacker's store's product with the most units available


def cli(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ordergraph", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def make_key(database_url: str, store: str, *scopes: str) -> str:
    return make_key_with_id(database_url, store, *scopes)[0]


def make_key_with_id(database_url: str, store: str, *scopes: str) -> tuple[str, str]:
    """A new key's token and its global id."""
    args = ["create-key", "--store", store, "--name", "attack-" + uuid.uuid4().hex[:6]]
    for scope in scopes:
        args += ["--scope", scope]
    out = cli(database_url, *args).splitlines()
    token = next(line.split()[-1] for line in out if line.startswith("token:"))
    key_id = next(line.split()[2] for line in out if line.startswith("api key:"))
    return token, key_id
