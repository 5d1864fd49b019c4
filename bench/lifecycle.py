"""Benchmark a peak day: generated Olist-shaped orders through their whole lifecycle.

    .venv/bin/python -m bench.lifecycle [--orders 200000] [--every 10000] [--rq-workers 2]

It creates a scratch PostgreSQL database with the Olist data (as bench.allocate does),
starts gunicorn, RQ workers and the scheduler on Redis, as in production, and drives the
orders through capture, release, packed, shipped, delivered, invoiced and completed in
batches, as bench.roundtrip's batched line does (`bench.roundtrip.Batches`): channels
post 1,000 orders a request, warehouses confirm their released work and carriers their
deliveries (with the bulk event routes when the server has them), jobs do the rest.

Every `--every` completed orders it prints the time so far, the orders completed and
captured, the rate, and the resident memory of every server and worker process, so that
whether memory stays flat is visible. At the end: total minutes, completed orders/s,
capture-to-completion p50/p99, SQL statements and server CPU per completed order, and
the ratio to pgbench run on the same server. It never passes or fails on time.
"""

from __future__ import annotations

import argparse
from collections import Counter

from adapters.olist import OrderGenerator
from bench.allocate import olist_database
from bench.bulk import PER_REQUEST
from bench.capture import (
    jobs_on_redis,
    reference,
    resident_mb,
    server_arguments,
    service_processes,
    start_gunicorn,
    start_workers,
    stop,
    stop_workers,
)
from bench.roundtrip import Batches, Keys, location_codes


class Progress:
    """Prints a line each time another `every` orders have completed."""

    def __init__(self, batches: Batches, every: int) -> None:
        self.batches, self.every = batches, every
        self.next = every
        self.last = (0.0, 0)  # seconds, completed at the last line

    def __call__(self, seconds: float, statuses: Counter[str]) -> None:
        completed = statuses["completed"]
        if completed < self.next:
            return
        self.next = (completed // self.every + 1) * self.every
        since, before = self.last
        self.last = (seconds, completed)
        memory = "  ".join(f"{name} {pid} {resident_mb(pid):.0f}"
                           for pid, name in sorted(service_processes().items()))
        print(f"{seconds / 60:6.1f} min  {completed:>8,} completed  "
              f"{sum(statuses.values()):>8,} captured  {completed / seconds:6.1f} orders/s "
              f"({(completed - before) / (seconds - since):6.1f} lately)  RSS MB: {memory}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--every", type=int, default=10_000, help="orders between lines")
    parser.add_argument("--rq-workers", type=int, default=2)
    parser.add_argument("--capture-clients", type=int, default=2)
    parser.add_argument("--warehouse-clients", type=int, default=2)
    args = server_arguments(parser, port=18087).parse_args()

    name, url, key, pack = olist_database("lifecycle")
    keys = Keys(url, key)
    generator = OrderGenerator(pack, seed=12)
    with jobs_on_redis():
        server = start_gunicorn(url, args.port, args.workers, args.threads)
        workers = start_workers(args.rq_workers, url)
        try:
            batches = Batches(args.port, keys, url, location_codes(url),
                              iter(generator.next_order, None), args.orders,
                              args.capture_clients, args.warehouse_clients)
            print(f"{args.orders:,} orders, {PER_REQUEST:,} a request; "
                  f"{'bulk' if batches.bulk_events else 'single'} event routes; "
                  f"a line every {args.every:,} completed", flush=True)
            finished = batches.run(2.0, Progress(batches, args.every))
        finally:
            stop_workers(workers)
            stop(server, args, name)
    tps = reference(args, f"{args.rq_workers} RQ workers and the scheduler on Redis; "
                          f"{args.capture_clients} capture and {args.warehouse_clients} "
                          "warehouse clients")
    print(f"lifecycle: {finished.statuses['completed']:,} of {args.orders:,} orders "
          f"completed in {finished.seconds / 60:.1f} min")
    print(f"{finished.figures(tps)}\n  orders captured: {dict(batches.captured)}   "
          f"events: {dict(batches.events)}")


if __name__ == "__main__":
    main()
