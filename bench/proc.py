"""What the benches read about processes and the machine: CPU time and memory from /proc,
and the open-file limit."""

from __future__ import annotations

import os
import resource
from pathlib import Path


def _cpu_ticks(pid: int, reaped: bool = False) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:  # and cutime, cstime: the children it has waited for
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def cpu_seconds(pids: list[int]) -> float | None:
    """CPU time (user + system) the processes have used so far; None where /proc is missing."""
    try:
        total = sum(_cpu_ticks(pid) for pid in pids)
    except (OSError, ValueError, IndexError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> float | None:
    """CPU time (user + system) all of this machine's PostgreSQL processes have used so
    far (backends, WAL writer, checkpointer...): what the database spends, beside the
    server's own. Backends that ended count too: the postmaster has waited for them, so
    their time is in its children's. None where /proc is missing."""
    total = 0
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
                total += _cpu_ticks(int(entry.name), reaped=True)
            except (OSError, ValueError, IndexError):  # ended meanwhile
                continue
    except OSError:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time one process has used so far (it must exist)."""
    return _cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / ticks, sum(values) / ticks


def vm_kib(pid: int, field_name: str) -> int:
    """A VmRSS / VmHWM figure of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for process {pid}")


def raise_fd_limit(needed: int) -> int:
    """Raise this process's open-file limit as far as allowed; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft
