"""GraphQL lineage latency vs the store call it wraps, on one generated graph, in the same run.

The baseline is ``store.lineage`` itself; the figure of merit is the ratio (GraphQL over HTTP) /
(store call) for the same answer, which shows what the API layer (resolver, graphql-core execution,
JSON encoding, HTTP) costs on top of the store. The resolver builds the answer from one ``Subgraph``,
so the ratio must not grow with the number of nodes (no per-node store lookups).

Example: .venv/bin/python bench/api_lineage.py --nodes 2000 --nodes 10000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from api.app import create_app
from lineage.model import Direction, EdgeKind, GraphBatch
from lineage.store import LineageStore, open_store

QUERY = """query($id: ID!, $limit: Int!) { lineage(from: $id, depth: 3, limit: $limit) {
  nodes { id kind placeholder label time properties } edges { source target kind properties } depths truncated } }"""


def build(store: LineageStore, n: int) -> str:
    """One commit declaring n/2 workloads, each annotated by an audit record: about n nodes, 1.5 n edges."""
    batch = GraphBatch()
    commit = "commit:" + "ab" * 20
    batch.add_node(
        commit, {"sha": "ab" * 20, "subject": "bump all", "committed_at": "2026-01-01T00:00:00.000000Z"}
    )
    for i in range(n // 2):
        workload = f"workload:Deployment/bench/svc-{i}"
        audit = f"audit:git-sha256:{'ab' * 20}|trace:{i:032x}"
        batch.add_node(workload, {"kind": "Deployment", "namespace": "bench", "name": f"svc-{i}"})
        batch.add_node(audit, {"canonical": audit[6:], "commit": "ab" * 20, "trace": f"{i:032x}"})
        batch.add_edge(commit, EdgeKind.DECLARES, workload, {"path": f"apps/svc-{i}.yaml"})
        batch.add_edge(audit, EdgeKind.FOR_COMMIT, commit)
        batch.add_edge(audit, EdgeKind.ANNOTATES, workload)
    store.upsert(batch)
    return commit


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(n: int, repeat: int) -> tuple[int, float, float]:
    """(nodes in the answer, median store seconds, median GraphQL-over-HTTP seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db")
        try:
            start = build(store, n)
            size = len(store.lineage(start, Direction.DOWNSTREAM, 3, limit=n + 10).nodes)
            variables = {"id": start, "limit": n + 10}
            with TestClient(create_app(store=store)) as client:

                def over_http() -> None:
                    r = client.post("/graphql", json={"query": QUERY, "variables": variables})
                    assert r.status_code == 200 and "errors" not in r.json()

                over_http()  # warm up
                base = timed(lambda: store.lineage(start, Direction.DOWNSTREAM, 3, limit=n + 10), repeat)
                api = timed(over_http, repeat)
        finally:
            store.close()
    return size, base, api


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, action="append", help="graph size (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'nodes':>7} {'store ms':>9} {'graphql ms':>11} {'ratio':>6} {'us/node (api)':>14}")
    for n in args.nodes or [2000, 10000]:
        size, base, api = measure(n, args.repeat)
        print(
            f"{size:>7} {base * 1e3:>9.1f} {api * 1e3:>11.1f} {api / base:>6.1f} {(api - base) / size * 1e6:>14.1f}"
        )


if __name__ == "__main__":
    main()
