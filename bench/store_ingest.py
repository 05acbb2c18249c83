"""Store ingest and lineage-query benchmark: Neo4j (batched vs per-row) and SQLite, one generated graph.

The graph is what liubai sees in production, built through the real join: commits (with parents and
changed manifests), workloads with audit ids, pipeline runs, process trees, file reads/writes/execs
(with shared libraries and binaries as hubs) and log lines in each run's trace.

Figures printed:
* facts/s (unique nodes + edges stored, per second of writing) for ``Neo4jStore.upsert`` (UNWIND batches
  in one managed transaction per batch), for a per-row writer (one auto-commit ``session.run`` per node
  and per edge, measured on a sample because it is slow), and for ``SqliteStore.upsert``;
* the ratio batched / per-row, measured in the same run against the same server;
* lineage latency p50/p95 (downstream from random commits) at depth 2 and 5 on both stores.

Neo4j is warmed up first (``--warmup`` batches and a tenth of the per-row sample, then wiped): a JVM
that has just started writes at about half its steady-state rate.

Example: .venv/bin/python bench/store_ingest.py --facts 500000
(starts its own Neo4j through scripts/neo4j-test-server with a 2 GiB heap and page cache, or uses
--neo4j-url bolt://neo4j:pw@host:7687)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liubai.lineage.join import join_records
from liubai.lineage.model import Direction, GraphBatch, commit_node_id
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    Record,
    RunRecord,
)
from liubai.lineage.store import LineageStore, open_store
from liubai.lineage.store.neo4j import Neo4jStore
from liubai.lineage.store.neo4j.props import time_keys, to_neo4j
from liubai.lineage.store.neo4j.queries import to_datetimes

REPO = "https://git.example/platform/gitops.git"
SHARED = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/etc/ld.so.cache", "/etc/passwd", "/etc/hosts"]
BINARIES = ["/usr/bin/sh", "/usr/bin/make", "/usr/bin/cc", "/usr/bin/kubectl", "/usr/bin/git"]


def sha(i: int) -> str:
    return hashlib.sha1(f"commit-{i}".encode()).hexdigest()


def trace(i: int) -> str:
    return hashlib.sha256(f"trace-{i}".encode()).hexdigest()[:32]


def records_for_commit(i: int, procs: int, logs: int) -> list[Record]:
    """One commit's lineage: commit, manifest, run, a process tree with file accesses, and its logs."""
    c, t = sha(i), trace(i)
    audit = f"git-sha1:{c}|trace:{t}"
    when = f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00.000000Z"
    host = f"runner-{i % 8}"
    start = 1_000_000 + i * 10_000
    out: list[Record] = [
        CommitRecord(
            REPO,
            c,
            (sha(i - 1),) if i else (),
            "Ada",
            "ada@example.com",
            when,
            "Ada",
            "ada@example.com",
            when,
            f"deploy service-{i % 50} build {i}",
            changed_paths=(f"apps/service-{i % 50}.yaml",),
        ),
        ManifestObjectRecord(
            REPO,
            c,
            f"apps/service-{i % 50}.yaml",
            "apps/v1",
            "Deployment",
            "prod",
            f"service-{i % 50}",
            (audit,),
        ),
        RunRecord(
            host,
            1000 + i,
            start,
            ("make", "deploy"),
            when,
            when,
            start + 9_000,
            0,
            commit=c,
            audit_id=audit,
            trace_id=t,
        ),
    ]
    for p in range(procs):
        pid = 1000 + i if p == 0 else 100_000 + i * procs + p
        ppid = None if p == 0 else (1000 + i if p <= 2 else 100_000 + i * procs + p // 2)
        binary = BINARIES[p % len(BINARIES)]
        out.append(
            ProcessRecord(
                host,
                pid,
                start + p,
                1000 + i,
                start,
                ppid=ppid,
                parent_start_ns=None if ppid is None else start + (0 if p <= 2 else p // 2),
                uid=1000,
                comm=Path(binary).name,
                binary=binary,
                argv=(binary, "-c", f"step {p} of build {i}"),
                started_at=when,
            )
        )
        out.append(FileAccessRecord(host, pid, start + p, binary, "exec"))
        for f in SHARED[: 2 + p % 3]:
            out.append(FileAccessRecord(host, pid, start + p, f, "read", count=1 + p % 4))
        out.append(FileAccessRecord(host, pid, start + p, f"/work/build-{i}/src/step{p}.c", "read"))
        out.append(FileAccessRecord(host, pid, start + p, f"/work/build-{i}/out/step{p}.o", "write"))
    for k in range(logs):
        out.append(
            LogRecord(
                "sls:prod/app",
                f"{i}-{k}",
                when,
                "INFO" if k % 5 else "ERROR",
                f"service-{i % 50}",
                f"request {k} handled for build {i}",
                trace_id=t,
                audit_id=audit if k == 0 else None,
            )
        )
    return out


def generate(target_facts: int, batch_facts: int, procs: int = 6, logs: int = 6) -> list[GraphBatch]:
    """Batches of about ``batch_facts`` facts each until ``target_facts`` facts (as joined) exist."""
    batches: list[GraphBatch] = []
    current = GraphBatch()
    total, i = 0, 0
    while total < target_facts:
        before = current.fact_count
        join_records(records_for_commit(i, procs, logs), current)
        total += current.fact_count - before
        i += 1
        if current.fact_count >= batch_facts:
            batches.append(current)
            current = GraphBatch()
    if current:
        batches.append(current)
    return batches


def stored_facts(store: LineageStore) -> int:
    counts = store.counts()
    return (
        sum(v for k, v in counts.items() if k not in ("edges", "rejected", "placeholders")) + counts["edges"]
    )


def ingest(store: LineageStore, batches: list[GraphBatch]) -> float:
    start = time.perf_counter()
    for b in batches:
        store.upsert(b)
    return time.perf_counter() - start


def per_row_write(url: str, batches: list[GraphBatch], limit: int) -> tuple[int, float]:
    """The naive writer: one auto-commit ``session.run`` per node and per edge (same layout)."""
    import neo4j

    from tests.neo4j_server import driver_args

    uri, auth = driver_args(url)
    done = 0
    with (
        neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver,
        driver.session(database="neo4j") as s,
    ):
        start = time.perf_counter()
        for b in batches:
            for n in b.nodes:
                if done >= limit:
                    break
                props = to_neo4j(n.props)
                s.run(
                    f"MERGE (n:Node {{id: $id}}) ON CREATE SET n:{n.kind.value} "  # kind: closed enum
                    f"SET n += $props, n.search = $search {to_datetimes('n', '$times', '$props')}",
                    id=n.id,
                    props=props,
                    times=time_keys(props),
                    search=n.id,
                ).consume()
                done += 1
            for e in b.edges:
                if done >= limit:
                    break
                props = to_neo4j(e.props)
                s.run(
                    "MERGE (a:Node {id: $src}) MERGE (b:Node {id: $dst}) "
                    f"MERGE (a)-[r:{e.kind.value}]->(b) SET r += $props "  # kind: closed enum
                    f"{to_datetimes('r', '$times', '$props')}",
                    src=e.src,
                    dst=e.dst,
                    props=props,
                    times=time_keys(props),
                ).consume()
                done += 1
            if done >= limit:
                break
        return done, time.perf_counter() - start


def latencies(store: LineageStore, starts: list[str], depth: int) -> tuple[float, float, float]:
    times = []
    sizes = []
    for node_id in starts:
        t0 = time.perf_counter()
        g = store.lineage(node_id, Direction.DOWNSTREAM, depth=depth)
        times.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(g.nodes))
    q = statistics.quantiles(times, n=100)
    return q[49], q[94], statistics.mean(sizes)


def neo4j_server(args: argparse.Namespace, stack: ExitStack) -> str:
    """The test server's defaults suit small test graphs; here the whole store must fit the page cache
    and the heap starts at its full size, as on a production server, or the figures measure eviction
    and heap growth instead of writing."""
    if args.neo4j_url:
        return str(args.neo4j_url)
    from tests import neo4j_server as server

    os.environ["LIUBAI_NEO4J_HEAP"] = os.environ["LIUBAI_NEO4J_HEAP_INITIAL"] = args.neo4j_heap
    os.environ["LIUBAI_NEO4J_PAGECACHE_MB"] = str(args.neo4j_pagecache_mb)
    return stack.enter_context(server.running())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=500_000, help="facts to generate (default 500000)")
    ap.add_argument("--batch", type=int, default=20_000, help="facts per upsert batch (default 20000)")
    ap.add_argument("--per-row-sample", type=int, default=10_000, help="facts the per-row writer writes")
    ap.add_argument(
        "--warmup", type=int, default=10, help="batches written (then wiped) before timing (default 10)"
    )
    ap.add_argument("--queries", type=int, default=200, help="lineage queries per depth and store")
    ap.add_argument("--neo4j-url", help="use this Neo4j instead of starting one (it gets wiped!)")
    ap.add_argument(
        "--neo4j-heap",
        default=os.environ.get("LIUBAI_NEO4J_HEAP", "2g"),
        help="JVM heap (initial and maximum) of the started Neo4j (default $LIUBAI_NEO4J_HEAP or 2g)",
    )
    ap.add_argument(
        "--neo4j-pagecache-mb",
        type=int,
        default=int(os.environ.get("LIUBAI_NEO4J_PAGECACHE_MB", "2048")),
        help="page cache of the started Neo4j in MiB (default $LIUBAI_NEO4J_PAGECACHE_MB or 2048)",
    )
    args = ap.parse_args()

    from tests.neo4j_server import wipe

    t0 = time.perf_counter()
    batches = generate(args.facts, args.batch)
    print(
        f"generated {sum(b.fact_count for b in batches):,} joined facts in {len(batches)} batches "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    rng = random.Random(7)
    n_commits = sum(1 for b in batches for n in b.nodes if n.kind.value == "Commit" and not n.placeholder)
    starts = [commit_node_id(sha(rng.randrange(n_commits))) for _ in range(args.queries)]

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        url = neo4j_server(args, stack)
        wipe(url)
        warm = Neo4jStore.from_url(url)  # schema (constraints, indexes) in place before timing
        # Both writers run once over the first batches before anything is timed, so the figures are
        # those of a server whose JIT has compiled their write paths, as on a long-running server.
        if args.warmup:
            ingest(warm, batches[: args.warmup])
            per_row_write(url, batches, args.per_row_sample // 10)
            wipe(url)
        warm.close()
        rows, secs = per_row_write(url, batches, args.per_row_sample)
        per_row_rate = rows / secs
        print(f"neo4j per-row session.run: {rows:,} facts in {secs:.1f}s = {per_row_rate:,.0f} facts/s")
        wipe(url)

        neo = Neo4jStore.from_url(url)
        secs = ingest(neo, batches)
        facts = stored_facts(neo)
        neo_rate = facts / secs
        print(
            f"neo4j batched upsert: {facts:,} facts in {secs:.1f}s = {neo_rate:,.0f} facts/s "
            f"({neo_rate / per_row_rate:.1f}x per-row)"
        )

        lite = open_store(f"sqlite:///{tmp}/bench.db")
        secs = ingest(lite, batches)
        lite_facts = stored_facts(lite)
        print(f"sqlite upsert: {lite_facts:,} facts in {secs:.1f}s = {lite_facts / secs:,.0f} facts/s")
        assert lite_facts == facts, f"stores disagree: sqlite {lite_facts} vs neo4j {facts}"

        for depth in (2, 5):
            for name, store in (("neo4j", neo), ("sqlite", lite)):
                latencies(store, starts[:10], depth)  # warm caches and query plans
                p50, p95, size = latencies(store, starts, depth)
                print(
                    f"lineage depth {depth} {name}: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                    f"(mean {size:.0f} nodes, {len(starts)} queries)"
                )
        neo.close()
        lite.close()


if __name__ == "__main__":
    main()
