"""Short garbage-collection pauses in a server holding thousands of connections.

CPython's cyclic collector sometimes runs a full pass over every tracked object; how
long it takes grows with what lives. Each websocket subscriber keeps about 120 tracked
objects for as long as it is connected, so with 2,000 subscribers a full pass took about
0.4 s (measured, docs/fanout-benchmark.md), and everything on the process (deliveries,
mutations, queries) waited for it. CPython starts one whenever the objects that survived
the younger collections grow by a quarter of the long-lived ones: it happens under load.

The server (`ordergraph serve`) runs a `GcGovernor`: every `freeze_seconds` it collects
the two younger generations and freezes what survives (`gc.freeze`), so later full
passes look only at objects made since. A frozen object is not collected while frozen:
garbage that only the cycle collector can free (e.g. a closed connection's objects that
point at each other) waits for the governor's own full pass, which unfreezes, collects
everything and freezes again. It runs when the process's memory blocks have doubled since
the last one (so connection churn cannot grow memory without bound), and at least every
`full_seconds`: a pause as long as CPython's, but rare and on a schedule an operator
sets. Settings: ORDERGRAPH_GC_FREEZE_SECONDS (default 10; 0 turns the governor off and
leaves CPython's collector as it is), ORDERGRAPH_GC_FULL_SECONDS (default 3600).

Growth is measured with `sys.getallocatedblocks()` (the small-object allocator's blocks in
use, one look per 16 KiB pool: well under a millisecond at a million objects), never with
`gc.get_freeze_count()`, which walks the list of every frozen object: with 5,000
subscribers that walk held the interpreter for 190-240 ms, on every tick, and every
request in flight waited for it (docs/fanout-benchmark.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger("ordergraph.gc")

GROWTH = 2.0  # a full pass once the memory blocks in use have doubled since the last one
MIN_BASELINE = 400_000  # below this many blocks in use (about 100,000 objects) a full pass is cheap


class GcGovernor:
    def __init__(
        self,
        freeze_seconds: float,
        full_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        blocks: Callable[[], int] = sys.getallocatedblocks,
    ) -> None:
        self.freeze_seconds = freeze_seconds
        self.full_seconds = full_seconds
        self.clock = clock
        self.blocks = blocks  # what lives, measured without walking the frozen objects
        self.last_full = clock()
        self.baseline = blocks()
        self.full_passes = 0
        self.freezes = 0

    def tick(self) -> bool:
        """Collect the young generations and freeze the survivors; a full pass first when
        one is due. True when a full pass ran."""
        now = self.clock()
        due = (self.full_seconds > 0 and now - self.last_full >= self.full_seconds) or (
            self.blocks() > GROWTH * max(self.baseline, MIN_BASELINE)
        )
        if due:
            began = time.perf_counter()
            gc.unfreeze()
            collected = gc.collect()
            gc.freeze()
            self.baseline = self.blocks()
            self.last_full = now
            self.full_passes += 1
            log.info(
                "full garbage collection: %d objects freed in %.0f ms, %d memory blocks in use",
                collected,
                (time.perf_counter() - began) * 1000,
                self.baseline,
            )
        else:
            gc.collect(1)
            gc.freeze()
        self.freezes += 1
        return due

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.freeze_seconds)
            self.tick()
