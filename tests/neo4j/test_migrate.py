"""``liubai migrate`` and ``liubai stats`` against a real Neo4j: a 100,000-fact graph copied both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.join import join_records
from liubai.lineage.model import GraphBatch, NodeKind, RejectedRecord
from liubai.lineage.records import CommitRecord, FileAccessRecord, LogRecord, ProcessRecord, Record, RunRecord
from liubai.lineage.store import LineageStore, open_store

pytestmark = [pytest.mark.neo4j, pytest.mark.slow, pytest.mark.timeout(1200)]

MIN_FACTS = 100_000


def _records(i: int) -> list[Record]:
    sha = f"{i:040x}"
    trace = f"{i:032x}"
    host = f"h{i % 4}"
    recs: list[Record] = [
        CommitRecord(
            "repo:x",
            sha,
            (f"{i - 1:040x}",) if i else (),
            "A",
            "a@x",
            "2026-01-01T00:00:00Z",
            "A",
            "a@x",
            "2026-01-01T00:00:00Z",
            f"change {i} 'quoted' \"and\" {{braces}}",
        ),
        RunRecord(host, i, i, ("make",), "2026-01-01T00:00:00Z", commit=sha, trace_id=trace),
    ]
    for p in range(4):
        recs.append(ProcessRecord(host, i * 10 + p, i, i, i, comm="cc", argv=("cc", f"f{p}.c")))
        recs.append(FileAccessRecord(host, i * 10 + p, i, f"/src/{i}/f{p}.c", "read", count=p + 1))
        recs.append(FileAccessRecord(host, i * 10 + p, i, "/usr/lib/libc.so.6", "read"))
    for k in range(3):
        recs.append(
            LogRecord("app", f"{i}-{k}", "2026-01-01T00:00:00Z", "INFO", "svc", f"line {k}", trace_id=trace)
        )
    return recs


def _fill(store: LineageStore) -> int:
    i = 0
    while True:
        batch = GraphBatch()
        for _ in range(500):
            join_records(_records(i), batch)
            i += 1
        batch.rejected += [RejectedRecord("logs:app", f"app.jsonl:{i}", "not JSON", "{")]
        store.upsert(batch)
        counts = store.counts()
        facts = (
            sum(v for k, v in counts.items() if k not in ("edges", "rejected", "placeholders"))
            + counts["edges"]
        )
        if facts >= MIN_FACTS:
            store.upsert(
                GraphBatch(
                    checkpoints={("git:repo:x", "ref:main"): f"{i:040x}", ("logs:app", "app.jsonl"): "123"}
                )
            )
            return facts


def _snapshot(
    store: LineageStore,
) -> tuple[dict[str, Any], dict[tuple[str, str, str], Any], list[Any], dict[Any, str]]:
    nodes = {n.id: (n.kind, n.props, n.placeholder) for b in store.iter_nodes() for n in b}
    edges = {e.key: e.props for b in store.iter_edges() for e in b}
    rejected, cursor = [], None
    while True:
        page = store.rejected(first=1000, after=cursor)
        rejected += [(r.source, r.location, r.reason, r.raw) for r in page.records]
        cursor = page.end_cursor
        if cursor is None:
            break
    return nodes, edges, sorted(rejected), store.checkpoints()


def test_migrate_sqlite_to_neo4j_and_back(tmp_path: Path, neo4j_clean_url: str) -> None:
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    back_url = f"sqlite:///{tmp_path / 'back.db'}"
    src = open_store(src_url)
    facts = _fill(src)
    assert facts >= MIN_FACTS
    want = _snapshot(src)
    src.close()
    runner = CliRunner()

    out = runner.invoke(app, ["migrate", "--from", src_url, "--to", neo4j_clean_url, "--batch-size", "4000"])
    assert out.exit_code == 0, out.output
    assert f"copied {len(want[0])} nodes, {len(want[1])} edges" in out.stdout

    neo = open_store(neo4j_clean_url)
    try:
        got = _snapshot(neo)
        assert got[0] == want[0]
        assert got[1] == want[1]
        assert got[2] == want[2] and got[3] == want[3]
    finally:
        neo.close()

    out = runner.invoke(app, ["migrate", "--from", neo4j_clean_url, "--to", back_url])
    assert out.exit_code == 0, out.output
    back = open_store(back_url)
    try:
        assert _snapshot(back) == want
    finally:
        back.close()

    stats = runner.invoke(app, ["--store", neo4j_clean_url, "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    counts = json.loads(stats.stdout)
    assert counts["edges"] == len(want[1]) and counts["rejected"] == len(want[2])
    assert sum(counts[k.value] for k in NodeKind) == len(want[0])


def test_migrate_to_unreachable_store_is_one_line(tmp_path: Path) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    source.upsert(GraphBatch(rejected=[RejectedRecord("logs:x", "x.jsonl:1", "not JSON", "{")]))
    source.close()
    out = CliRunner().invoke(
        app, ["migrate", "--from", f"sqlite:///{tmp_path / 'a.db'}", "--to", "bolt://neo4j:pw@127.0.0.1:9"]
    )
    assert out.exit_code == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unreachable" in lines[0] and "pw@" not in lines[0]
