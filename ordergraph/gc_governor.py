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
everything and freezes again. It runs when the frozen objects have doubled since the
last one (so connection churn cannot grow memory without bound), and at least every
`full_seconds`: a pause as long as CPython's, but rare and on a schedule an operator
sets. Settings: ORDERGRAPH_GC_FREEZE_SECONDS (default 10; 0 turns the governor off and
leaves CPython's collector as it is), ORDERGRAPH_GC_FULL_SECONDS (default 3600).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("ordergraph.gc")

GROWTH = 2.0  # a full pass once the frozen objects have doubled since the last one
MIN_BASELINE = 100_000  # below this many frozen objects a full pass is cheap anyway


class GcGovernor:
    def __init__(
        self,
        freeze_seconds: float,
        full_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.freeze_seconds = freeze_seconds
        self.full_seconds = full_seconds
        self.clock = clock
        self.last_full = clock()
        self.baseline = gc.get_freeze_count()
        self.full_passes = 0
        self.freezes = 0

    def tick(self) -> bool:
        """Collect the young generations and freeze the survivors; a full pass first when
        one is due. True when a full pass ran."""
        now = self.clock()
        frozen = gc.get_freeze_count()
        due = (self.full_seconds > 0 and now - self.last_full >= self.full_seconds) or (
            frozen > GROWTH * max(self.baseline, MIN_BASELINE)
        )
        if due:
            began = time.perf_counter()
            gc.unfreeze()
            collected = gc.collect()
            gc.freeze()
            self.baseline = gc.get_freeze_count()
            self.last_full = now
            self.full_passes += 1
            log.info(
                "full garbage collection: %d objects freed in %.0f ms, %d kept (frozen)",
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
