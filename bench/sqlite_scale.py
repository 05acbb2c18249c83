"""The embedded store at scale: ingest rate, size on disk and lineage latency on a generated graph.

The graph comes from ``bench/generate.py`` (deterministic, through the real join) and is written with
``SqliteStore.upsert`` in 20k-fact batches (WAL, synchronous=NORMAL: crash-safe). Baseline in the same
run: the rate of generating and joining the same records without storing them, so the table shows what
the store itself costs. Lineage latency is measured downstream from random commits and runs.

Example: .venv/bin/python bench/sqlite_scale.py --facts 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from generate import batched, generate

from liubai.lineage.model import Direction, NodeKind
from liubai.lineage.store.sqlite import SqliteStore


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    t = time.perf_counter()
    produced = sum(b.fact_count for b in batched(generate(args.facts)))
    baseline = produced / (time.perf_counter() - t)

    with tempfile.TemporaryDirectory(prefix="liubai-scale-") as d:
        db = Path(d) / "scale.db"
        store = SqliteStore(db)
        seconds = 0.0  # time inside upsert only; generating and joining is the baseline above
        t = time.perf_counter()
        for b in batched(generate(args.facts)):
            u = time.perf_counter()
            store.upsert(b)
            seconds += time.perf_counter() - u
        end_to_end = time.perf_counter() - t
        counts = store.counts()
        stored = sum(counts[k.value] for k in NodeKind) + counts["edges"]
        store.close()
        size = sum(p.stat().st_size for p in Path(d).iterdir())

        store = SqliteStore(db)
        rng = random.Random(3)
        commits = [n.id for n in store.find_by_prefix(NodeKind.COMMIT, "", 1_000_000)]
        runs = [n.id for n in store.find_by_prefix(NodeKind.PIPELINE_RUN, "", 1_000_000)]
        lat: dict[str, list[float]] = {}
        sizes: dict[str, list[int]] = {}
        for depth in (2, 5):
            for name, pool in (("commit", commits), ("run", runs)):
                key = f"{name}@{depth}"
                lat[key], sizes[key] = [], []
                for _ in range(args.queries):
                    start = rng.choice(pool)
                    q = time.perf_counter()
                    g = store.lineage(start, Direction.DOWNSTREAM, depth)
                    lat[key].append((time.perf_counter() - q) * 1000)
                    sizes[key].append(len(g.nodes))
        store.close()

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rate = stored / seconds
    print(
        f"SQLite ingest: {stored:,} unique facts, {seconds:.1f}s in upsert = {rate:,.0f} facts/s; end to end with "
        f"generate+join {stored / end_to_end:,.0f} facts/s (generate+join alone: {baseline:,.0f} facts/s); "
        f"on disk {size / 2**20:,.0f} MiB"
    )
    print(f"{'lineage downstream':<20} {'p50':>8} {'p95':>8} {'median nodes':>13}")
    for key in lat:
        print(
            f"{key:<20} {statistics.median(lat[key]):>6.1f}ms {_pct(lat[key], 0.95):>6.1f}ms "
            f"{statistics.median(sizes[key]):>13.0f}"
        )
    print(f"peak RSS {rss:.0f} MiB")
    print(
        json.dumps(
            {
                "bench": "sqlite_scale",
                "facts": stored,
                "ingest_facts_per_s": rate,
                "end_to_end_facts_per_s": stored / end_to_end,
                "generate_join_facts_per_s": baseline,
                "db_mib": size / 2**20,
                "peak_rss_mib": rss,
                "lineage": {
                    k: {
                        "p50_ms": statistics.median(v),
                        "p95_ms": _pct(v, 0.95),
                        "nodes": statistics.median(sizes[k]),
                    }
                    for k, v in lat.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
