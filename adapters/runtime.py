"""How a long-running service process (gunicorn's workers, `oms worker`, `oms scheduler`,
`oms serve`) keeps its memory: tuned once its code and services are loaded."""

from __future__ import annotations

import gc

# Allocations between two young-generation collections (Python's default is 700). A batch
# of orders makes hundreds of thousands of short-lived objects (ORM rows, traces) that
# reference counting frees; at the default, the cycle collector ran every few hundred of
# them and took half the CPU of a 1,000-order batch (bench/README.md).
YOUNG_COLLECTION_EVERY = 10_000


def settle_service_process() -> None:
    """Move what the process has loaded so far (modules, the app, its services) out of the
    collector's sight, since it lives as long as the process does, and collect the young
    generation less often. Only for service processes: a test run builds many apps, and
    what it froze would never be collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 50)
