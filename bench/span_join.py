"""Spans in the lineage graph: every span a node, or per-(trace, service, operation) aggregates?

The same synthetic OTLP spans (traces of ``--spans-per-trace`` spans over a few services, each service's
resource naming its Pod, Container, Deployment and commit as the ``k8sattributes`` processor and our
admission webhook would, ``--error-share`` of the spans with status ERROR) go through each arm: join, then
upsert into a fresh SQLite store in batches of ``--batch-size``, closed at the end (its last WAL checkpoint
counts). Shown per arm: join and store seconds, spans per second, facts written, and the database size;
arms run interleaved ``--repeat`` times (3) and the median run of each is shown.

* ``span nodes``      - ``liubai.lineage.join_span``, what liubai does: one node per span;
* ``span nodes, no resource`` - the same spans without resource attributes: what the Resource node's
  one edge per span costs;
* ``links per span, no Resource`` - the resource design liubai does not use: every span keeps its
  attributes and its own edges to its Pod, Container, Workload and Commit;
* ``aggregates``      - the alternative: ERROR spans and root / SERVER spans as nodes, every other span
  folded into one node per (trace, service, operation) with its count and time range (counts add up only
  within one batch: the store's merge rule cannot sum across batches without losing idempotency);
* ``log lines`` (baseline) - as many log lines with the same resources (``LogRecord`` through the same
  join and store): what the store already holds one node per record for.

Example: .venv/bin/python bench/span_join.py --spans 100000
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from liubai.lineage.join import join_records
from liubai.lineage.join_audit import add_trace
from liubai.lineage.join_resource import add_resource, resource_links
from liubai.lineage.join_span import join_span
from liubai.lineage.model import EdgeKind, GraphBatch, NodeKind, commit_node_id, span_node_id
from liubai.lineage.records import LogRecord, SpanRecord
from liubai.lineage.store.sqlite import SqliteStore

SERVICES = ("cart", "checkout", "payment", "catalog", "gateway")
OPERATIONS = ("GET /items", "SELECT items", "redis GET", "POST /pay", "publish order")


def _resource(service: str, i: int) -> dict[str, str]:
    """What an instrumented Pod's resource carries: who it is, where it runs, which commit it runs."""
    return {
        "service.name": service,
        "service.version": "1.4.2",
        "deployment.environment.name": "production",
        "k8s.namespace.name": "shop",
        "k8s.deployment.name": service,
        "k8s.pod.name": f"{service}-5d7f9-{i:05x}",
        "k8s.pod.uid": f"00000000-0000-4000-8000-{i:012x}",
        "container.id": f"{i:064x}",
        "vcs.ref.head.revision": f"{i % 8 + 1:040x}",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.29.0",
    }


def make_spans(n: int, per_trace: int, error_share: float) -> list[SpanRecord]:
    """``n`` spans in traces of ``per_trace``: a SERVER root per trace, then CLIENT / INTERNAL children of
    the root or of the previous span, on one of a few Pods per service."""
    resources = [_resource(SERVICES[i % len(SERVICES)], i) for i in range(len(SERVICES) * 4)]
    every = round(1 / error_share) if error_share > 0 else 0
    out: list[SpanRecord] = []
    for i in range(n):
        t, k = divmod(i, per_trace)
        trace = f"{t + 1:032x}"
        res = resources[(t + k) % len(resources)]
        start = f"2026-12-01T00:{t // 60 % 60:02d}:{t % 60:02d}.{k:06d}Z"
        out.append(
            SpanRecord(
                "bench",
                trace,
                f"{i + 1:016x}",
                parent_span_id=None if k == 0 else f"{i - (1 if k % 3 == 2 else k) + 1:016x}",
                name="GET /items" if k == 0 else OPERATIONS[k % len(OPERATIONS)],
                kind="SERVER" if k == 0 else ("CLIENT" if k % 2 else "INTERNAL"),
                service=res["service.name"],
                start=start,
                end=start,
                status="ERROR" if every and i % every == every - 1 else "UNSET",
                resource=res,
            )
        )
    return out


def as_logs(spans: Iterable[SpanRecord]) -> Iterator[LogRecord]:
    for s in spans:
        yield LogRecord(
            "bench",
            s.span_id,
            time=s.start,
            level="ERROR" if s.status == "ERROR" else "INFO",
            service=s.service,
            message=f"{s.name} done",
            trace_id=s.trace_id,
            span_id=s.span_id,
            resource=s.resource,
        )


def join_aggregates(spans: Iterable[SpanRecord], batch: GraphBatch) -> GraphBatch:
    """The alternative design: ERROR and root / SERVER spans as nodes (``join_span``), the rest folded into
    one node per (trace, service, operation) with a count and a time range, linked to its trace and its
    resource."""
    counts: dict[str, int] = {}
    for s in spans:
        if s.status == "ERROR" or not s.parent_span_id or s.kind == "SERVER":
            join_span(batch, s)
            continue
        aid = span_node_id(s.trace_id, f"{s.service}/{s.name}")
        count = counts.get(aid, 0) + 1
        counts[aid] = count
        props: dict[str, Any] = {
            "aggregate": True,
            "trace_id": s.trace_id,
            "service": s.service,
            "name": s.name,
            "count": count,
            "first_seen": s.start,
            "last_seen": s.end or s.start,
        }
        if count == 1:
            resource, own = add_resource(batch, s.resource, s.source, aid, s.start)
            batch.add_edge(resource, EdgeKind.EMITTED, aid)
            batch.put_node(aid, NodeKind.SPAN, props | own)
            batch.add_edge(aid, EdgeKind.IN_TRACE, add_trace(batch, s.trace_id, s.start))
        else:
            batch.add_node(aid, props)
    return batch


def join_links_per_record(spans: Iterable[SpanRecord], batch: GraphBatch) -> GraphBatch:
    """The other resource design: no Resource node; each span keeps its attributes and links to the Pod,
    Container, Workload and Commit itself (what one Resource node per attribute set saves)."""
    for s in spans:
        join_span(batch, replace(s, resource={}))
        sid = span_node_id(s.trace_id, s.span_id)
        batch.add_node(sid, {"resource": dict(s.resource)})
        plan = resource_links(s.resource)
        for emitter in plan.emitters:
            batch.add_edge(emitter, EdgeKind.RAN, sid)
        for workload in plan.workloads:
            batch.add_edge(sid, EdgeKind.INSTANCE_OF, workload)
        if plan.commit:
            batch.add_node(commit_node_id(plan.commit), {"sha": plan.commit}, placeholder=True)
            batch.add_edge(sid, EdgeKind.FOR_COMMIT, commit_node_id(plan.commit))
    return batch


Join = Callable[[list[Any]], GraphBatch]


def run_arm(records: list[Any], join: Join, db: Path, batch_size: int) -> dict[str, float]:
    """Join all batches (timed), then write them into a fresh store (timed, close included)."""
    gc.collect()
    t = time.perf_counter()
    batches = [join(records[i : i + batch_size]) for i in range(0, len(records), batch_size)]
    joined = time.perf_counter() - t
    facts = sum(b.fact_count for b in batches)
    store = SqliteStore(db)
    t = time.perf_counter()
    for b in batches:
        store.upsert(b)
    store.close()
    stored = time.perf_counter() - t
    size = sum(os.path.getsize(p) for p in db.parent.glob(db.name + "*"))
    return {"join_s": joined, "store_s": stored, "facts": facts, "bytes": size}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run whose join + store time is the median."""
    ordered = sorted(runs, key=lambda r: r["join_s"] + r["store_s"])
    return ordered[len(ordered) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--spans-per-trace", type=int, default=10)
    ap.add_argument("--error-share", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per arm, interleaved; the median is shown")
    args = ap.parse_args()
    spans = make_spans(args.spans, args.spans_per_trace, args.error_share)
    bare = [replace(s, resource={}) for s in spans]
    logs = list(as_logs(spans))
    gc.freeze()  # the bench's own records stay out of the timed collections
    arms: dict[str, tuple[list[Any], Join]] = {
        "span nodes": (spans, join_records),
        "span nodes, no resource": (bare, join_records),
        "links per span, no Resource": (spans, lambda rs: join_links_per_record(rs, GraphBatch())),
        "aggregates": (spans, lambda rs: join_aggregates(rs, GraphBatch())),
        "log lines (baseline)": (logs, join_records),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        for rep in range(args.repeat):  # interleaved, so a busy spell on a shared machine hits every arm
            for i, (name, (records, join)) in enumerate(arms.items()):
                runs[name].append(run_arm(records, join, Path(tmp) / f"arm{i}-{rep}.db", args.batch_size))
                (Path(tmp) / f"arm{i}-{rep}.db").unlink()
    results = {name: _median(r) for name, r in runs.items()}
    n = len(spans)
    base = results["log lines (baseline)"]
    base_total = base["join_s"] + base["store_s"]
    print(
        f"{n:,} spans in traces of {args.spans_per_trace}, {args.error_share:.0%} ERROR, "
        f"batches of {args.batch_size:,}; SQLite store, close counted"
    )
    print(
        f"{'arm':30} {'join s':>7} {'store s':>8} {'spans/s':>9} {'vs logs':>8} {'facts':>9} {'DB MiB':>7} "
        f"{'B/span':>7}"
    )
    for name, r in results.items():
        total = r["join_s"] + r["store_s"]
        print(
            f"{name:30} {r['join_s']:7.2f} {r['store_s']:8.2f} {n / total:9,.0f} {base_total / total:7.2f}x "
            f"{r['facts']:9,.0f} {r['bytes'] / 2**20:7.1f} {r['bytes'] / n:7.0f}"
        )
    print(
        orjson.dumps(
            {
                "bench": "span_join",
                "spans": n,
                **{
                    name.split(" (")[0].replace(", ", "_").replace(" ", "_"): {
                        "per_s": round(n / (r["join_s"] + r["store_s"])),
                        "facts": int(r["facts"]),
                        "bytes": int(r["bytes"]),
                    }
                    for name, r in results.items()
                },
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
