"""Deterministic generator of realistic lineage graphs, written through the real ingest path.

Shape per "unit" of work: a commit (every 8th a merge) declaring workloads with audit ids; every
commit triggers a pipeline run whose process tree opens many files (one process with a heavy fan-out,
shared system files read by all); every audit id's trace gets a burst of log lines. The records go
through ``liubai.lineage.join`` exactly as collectors' records do.

Example: .venv/bin/python bench/generate.py --facts 100000 --store sqlite:////tmp/g.db
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator

from liubai.lineage.join import join_records
from liubai.lineage.model import GraphBatch
from liubai.lineage.records import (
    CommitRecord,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    ProcessRecord,
    Record,
    RunRecord,
)
from liubai.lineage.store import open_store

REPO = "https://git.example/platform/gitops.git"
SYSTEM_FILES = [f"/usr/lib/x86_64-linux-gnu/lib{n}.so.6" for n in ("c", "m", "ssl", "crypto", "z", "ffi")]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t))


def unit_records(rng: random.Random, i: int, prev: list[str], fanout: int) -> tuple[list[Record], str]:
    """One commit's worth of evidence: ~``fanout`` + 80 facts."""
    t0 = 1_767_225_600 + i * 600
    sha = _hex(rng, 40)
    parents = tuple(prev[-1:] + (prev[-5:-4] if i % 8 == 7 and len(prev) > 5 else []))
    recs: list[Record] = [
        CommitRecord(
            REPO,
            sha,
            parents,
            f"dev{i % 17}",
            f"dev{i % 17}@example.com",
            _iso(t0),
            "bot",
            "bot@example.com",
            _iso(t0),
            f"change {i}: tune service-{i % 40}",
            pr=i if i % 8 == 7 else None,
        )
    ]
    trace = _hex(rng, 32)
    audit = f"git-sha256:{sha}|trace:{trace}"
    for w in range(1 + i % 3):
        name = f"service-{(i + w) % 40}"
        recs.append(
            ManifestObjectRecord(
                REPO, sha, f"apps/{name}.yaml", "apps/v1", "Deployment", "prod", name, (audit,)
            )
        )
    host = f"build-{i % 4}"
    root_pid = 10_000 + i * 50
    start = i * 1_000_000_000
    recs.append(
        RunRecord(
            host,
            root_pid,
            start,
            ("make", "release"),
            _iso(t0 + 60),
            _iso(t0 + 300),
            start + 240,
            0,
            commit=sha,
            audit_id=audit,
        )
    )
    procs = [(root_pid, start)]
    recs.append(
        ProcessRecord(
            host,
            root_pid,
            start,
            root_pid,
            start,
            comm="make",
            argv=("make", "release"),
            uid=1000,
            started_at=_iso(t0 + 60),
        )
    )
    for k in range(1, 8):
        ppid, pstart = procs[rng.randrange(len(procs))]
        pid, pst = root_pid + k, start + k
        procs.append((pid, pst))
        comm = ("cc", "ld", "python3", "sh", "tar", "sha256sum", "cp")[k - 1]
        recs.append(
            ProcessRecord(
                host,
                pid,
                pst,
                root_pid,
                start,
                ppid=ppid,
                parent_start_ns=pstart,
                uid=1000,
                parent_uid=1000,
                comm=comm,
                binary=f"/usr/bin/{comm}",
                argv=(comm, f"src/{i}/{k}.c"),
                started_at=_iso(t0 + 60 + k),
            )
        )
        recs.append(FileAccessRecord(host, pid, pst, f"/usr/bin/{comm}", "exec", sha256=_hex(rng, 64)))
        for f in SYSTEM_FILES[:3]:
            recs.append(FileAccessRecord(host, pid, pst, f, "read", count=1 + k % 3))
        recs.append(FileAccessRecord(host, pid, pst, f"/work/{i}/out/{k}.o", "write"))
    heavy_pid, heavy_start = procs[2]
    for f in range(fanout):
        recs.append(FileAccessRecord(host, heavy_pid, heavy_start, f"/work/{i}/src/mod{f}.py", "read"))
    for n in range(12):
        recs.append(
            LogRecord(
                "gen",
                f"{i}-{n}",
                _iso(t0 + 400 + n),
                ("INFO", "WARN", "ERROR")[n % 3],
                f"service-{i % 40}",
                f"request {n} handled in {rng.randrange(900)}ms",
                trace_id=trace,
                audit_id=audit if n == 0 else None,
            )
        )
    return recs, sha


def generate(facts: int, seed: int = 7, fanout: int = 60) -> Iterator[GraphBatch]:
    """Yield join batches (one per unit) until about ``facts`` facts were produced."""
    rng = random.Random(seed)
    made, i, prev = 0, 0, []
    while made < facts:
        recs, sha = unit_records(rng, i, prev, fanout)
        prev.append(sha)
        batch = join_records(recs)
        made += batch.fact_count
        i += 1
        yield batch


def batched(batches: Iterator[GraphBatch], facts_per_batch: int = 20_000) -> Iterator[GraphBatch]:
    acc = GraphBatch()
    for b in batches:
        acc.extend(b)
        if acc.fact_count >= facts_per_batch:
            yield acc
            acc = GraphBatch()
    if acc:
        yield acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--facts", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--store", required=True)
    args = ap.parse_args()
    store = open_store(args.store)
    t = time.perf_counter()
    total = 0
    for b in batched(generate(args.facts, args.seed)):
        store.upsert(b)
        total += b.fact_count
    dt = time.perf_counter() - t
    print(f"{total} facts in {dt:.2f}s = {total / dt:,.0f} facts/s; counts {store.counts()}")
    store.close()


if __name__ == "__main__":
    main()
