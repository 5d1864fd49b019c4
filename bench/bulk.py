"""Benchmark bulk capture: POST /orders/bulk, 1,000 orders a request, the full pipeline.

    .venv/bin/python -m bench.bulk [--orders 20000] [--bulk-clients 4] [--single-orders 1000]

It creates a scratch PostgreSQL database with the Olist data (as bench.allocate does),
starts gunicorn and an RQ worker (`oms worker`) on Redis, as in production, and captures
Olist-shaped orders twice, each through capture, validation, sourcing with reservation
and carrier choice:

1. single: a short run of POST /orders from 16 clients (bench.allocate's spread run), the
   rate the bulk route is compared with;
2. bulk: POST /orders/bulk with 1,000 orders a request from a few clients.

Then it runs pgbench (TPC-B-like, same server) and prints orders/s, p50/p99 per request
and per order (a request's time over its orders), the ratio to pgbench and to the single
rate, SQL statements and server CPU per order, and the orders' statuses. It never passes
or fails on time.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from adapters.olist import OrderGenerator
from bench.allocate import olist_database, statuses_now
from bench.capture import (
    Run,
    drive,
    jobs_on_redis,
    reference,
    server_arguments,
    start_gunicorn,
    start_workers,
    stop,
    stop_workers,
)

PER_REQUEST = 1000  # orders per POST /orders/bulk, the route's limit
BULK_TIMEOUT = 900  # seconds a client waits for a bulk answer


def bulk_body(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of POST /orders/bulk: POST /orders bodies, answered in this order."""
    return {"rows": orders}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20_000, help="sent in bulk")
    parser.add_argument("--bulk-clients", type=int, default=4)
    parser.add_argument("--single-orders", type=int, default=1000)
    parser.add_argument("--rq-workers", type=int, default=1)
    args = server_arguments(parser, port=18086).parse_args()

    name, url, key, pack = olist_database("bulk")
    generator = OrderGenerator(pack, seed=2026)
    single = [json.dumps(generator.next_order()).encode()
              for _ in range(args.single_orders + 200)]
    orders = [generator.next_order() for _ in range(args.orders)]
    chunks = [orders[start:start + PER_REQUEST] for start in range(0, len(orders), PER_REQUEST)]
    bulk = [json.dumps(bulk_body(chunk)).encode() for chunk in chunks]

    with jobs_on_redis():
        server = start_gunicorn(url, args.port, args.workers, args.threads)
        workers = start_workers(args.rq_workers, url)
        try:
            drive(args.port, key, single[:200], args.clients, "warmup", False)
            drive(args.port, key, bulk[:1], 1, "warmup-bulk", True, path="/orders/bulk",
                  timeout=BULK_TIMEOUT)
            single_run = drive(args.port, key, single[200:], args.clients, "single", True)
            requests = drive(args.port, key, bulk[1:], args.bulk_clients, "bulk", True,
                             path="/orders/bulk", timeout=BULK_TIMEOUT)
            statuses = statuses_now(url)
        finally:
            stop_workers(workers)
            stop(server, args, name)
    sent = sum(len(chunk) for chunk in chunks[1:])
    per_order = Run("bulk", sent, requests.seconds,
                    [seconds / PER_REQUEST for seconds in requests.latencies],
                    requests.statuses, requests.usage)
    tps = reference(args, f"{args.bulk_clients} bulk clients, {PER_REQUEST:,} orders a "
                          f"request; {args.rq_workers} RQ worker(s) on Redis")
    print(f"POST /orders (single):  {single_run.figures(tps)}   statuses {single_run.statuses}")
    print(f"POST /orders/bulk:      {per_order.figures(tps)}   (p50/p99: a request's time "
          f"over its {PER_REQUEST:,} orders)")
    print(f"  per request: {requests.rate:.2f} requests/s   p50 "
          f"{requests.percentile(0.5):7.0f} ms   p99 {requests.percentile(0.99):7.0f} ms   "
          f"statuses {requests.statuses}")
    print(f"  bulk / single: {per_order.rate / single_run.rate:.1f} x the single-order rate")
    print(f"order statuses after both runs (first bulk request included): {statuses}")


if __name__ == "__main__":
    main()
