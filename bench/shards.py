"""What a decision shard costs: the share of the records each shard receives and its time, with 1, 2 and 4 shards.

```sh
python -m bench.shards            # the quick workload (20,148 records, 48 zones), the risk model on
python -m bench.shards --full     # the full gate's workload (about 1,030,000 records, 168 zones)
```

The router runs first (its µs per record is reported); then each shard's Site processes what the router gave it,
one shard after the other in rounds (best of 3 per shard), as if each had a core of its own. The decision capacity
of N shards is the records over the slowest shard's time: what a cluster of N workers could decide, if the router
and the Kafka reads keep up. Not in the gate (informative, for docs/live.md "Cluster").
"""

from __future__ import annotations

import argparse
import gc
import time

from bench.workloads import FULL, QUICK, site_records
from dataflows.risk_model_file import load_risk_model
from interlock.shard_plan import ShardPlan
from interlock.shard_routing import ShardRouter
from interlock.site import Site

CHUNK = 1024
ROUNDS = 3


def measure(records: list, shards: int, risk_model) -> dict:
    """Router µs per record, each shard's share of the records, the slowest shard's seconds and the capacity."""
    plan = ShardPlan(shards)
    chunks = [records[i:i + CHUNK] for i in range(0, len(records), CHUNK)]
    router = ShardRouter(plan)
    started = time.perf_counter()
    routed = [router.route([chunk]) for chunk in chunks]
    route_s = time.perf_counter() - started
    best = [float("inf")] * shards
    for _ in range(ROUNDS):
        for shard in range(shards):
            site = Site(risk_model=risk_model, shard=shard, plan=plan)
            gc.collect()
            started = time.perf_counter()
            for per_shard in routed:
                part = per_shard[shard]
                site.process_batch(part.records)
                site.advance(part.until)
            best[shard] = min(best[shard], time.perf_counter() - started)
    received = [sum(len(per_shard[shard].records) for per_shard in routed) for shard in range(shards)]
    slowest = max(best)
    return {
        "shards": shards,
        "router_us_per_record": route_s / len(records) * 1e6,
        "largest_share": max(received) / len(records),
        "slowest_shard_s": slowest,
        "capacity_records_per_s": len(records) / slowest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full gate's workload")
    args = parser.parse_args()
    records = list(site_records(*(FULL if args.full else QUICK)))
    model = load_risk_model()
    print(f"{len(records):,} records; the shipped risk model on")
    print("| shards | router µs/record | largest share | slowest shard | capacity (records/s) |")
    print("|---|---|---|---|---|")
    for shards in (1, 2, 4):
        m = measure(records, shards, model)
        print(f"| {shards} | {m['router_us_per_record']:.2f} | {m['largest_share']:.0%} | {m['slowest_shard_s']:.3f} s | "
              f"{m['capacity_records_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
