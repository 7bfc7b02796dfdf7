"""pgbench as a contender of bench/place_orders.py: the same transaction as one placeOrder,
as one PL/pgSQL function (bench/pgbench/place_order.sql), called by the real `pgbench`
from the same number of clients. This is what the database itself can do on this
machine, with no HTTP, no Python and no driver in the way.

Client c orders in store `store_ids[c % len(store_ids)]` (pgbench's :client_id, chosen
with a CASE expression in the generated script). Latencies come from pgbench's
per-transaction log (-l), the rate from its "tps" line, and pgbench's own CPU from this
process's children's resource usage.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg

from bench.place_orders_load import Result
from bench.proc import database_cpu_seconds

HERE = Path(__file__).resolve().parent
FUNCTION_SQL = HERE / "pgbench" / "place_order.sql"
NAME = "pgbench"
_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def pgbench_binary() -> str | None:
    """The pgbench on PATH; None if there is none."""
    return shutil.which("pgbench")


async def install(dsn: str) -> None:
    """Create the bench's function in the bench's database."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(FUNCTION_SQL.read_text())
    finally:
        await conn.close()


def script(store_ids: list[int], sku: str) -> str:
    """The pgbench script: one call per transaction, in the client's store."""
    if len(store_ids) == 1:
        return f"SELECT bench_place_order({store_ids[0]}, '{sku}', 1);\n"
    n = len(store_ids)
    cases = " ".join(f"WHEN :client_id % {n} = {i} THEN {sid}" for i, sid in enumerate(store_ids))
    return f"\\set store CASE {cases} END\nSELECT bench_place_order(:store, '{sku}', 1);\n"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(binary: str, dsn: str, script_file: Path, clients: int, seconds: int, log: str) -> str:
    command = [
        binary,
        *("-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients))),
        *("-T", str(seconds), "-f", str(script_file)),
        *(["-l", "--log-prefix", log] if log else []),
        dsn,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"pgbench exited {done.returncode}:\n{output[-3000:]}")
    return output


def _latencies(log_dir: Path) -> list[float]:
    """Each transaction's latency in seconds, from pgbench's per-transaction logs."""
    found = []
    for path in log_dir.glob("tx*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                found.append(int(fields[2]) / 1_000_000)
    return found


def drive_pgbench(
    binary: str,
    dsn: str,
    store_ids: list[int],
    sku: str,
    clients: int,
    seconds: float,
    warmup: float,
) -> Result:
    """A warm-up run, then the measured run; whole seconds (pgbench's -T takes no fractions)."""
    result = Result(NAME)
    with tempfile.TemporaryDirectory(prefix="ordergraph-pgbench-") as work:
        script_file = Path(work) / "place.sql"
        script_file.write_text(script(store_ids, sku))
        if warmup > 0:
            _run(binary, dsn, script_file, clients, max(1, round(warmup)), "")
        log_dir = Path(work) / "log"
        log_dir.mkdir()
        measured = max(1, round(seconds))
        before = _children_cpu()
        db_before = database_cpu_seconds()
        try:
            output = _run(binary, dsn, script_file, clients, measured, str(log_dir / "tx"))
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            result.errors, result.first_error, result.seconds = 1, str(err), measured
            return result
        result.client_cpu_seconds = _children_cpu() - before
        db_after = database_cpu_seconds()
        if db_before is not None and db_after is not None:
            result.db_cpu_seconds = db_after - db_before
        result.latencies = _latencies(log_dir)
    failed = _FAILED.search(output)
    result.errors = int(failed.group(1)) if failed else 0
    if result.errors:
        result.first_error = output[-1000:]
    tps = _TPS.search(output)
    rate = float(tps.group(1)) if tps else 0.0
    result.seconds = result.orders / rate if rate else float(measured)
    return result
