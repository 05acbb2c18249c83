"""How fast could SQLite hold log lines? Today's graph tables vs a dedicated log-event table, same rows.

Today (schema 3) a log line is a ``nodes`` row whose trace and audit links are indexed columns on the row,
plus a full-text row. This measures in one run what a dedicated table would still buy:

* ``graph tables`` - today's schema (``log_ingest.engine_floor``);
* ``log table``    - one row per line with a unique 64-bit key (hash of the node id) instead of the text
  id index, its trace and audit record as indexed columns, props as JSON, its own full-text table; the
  other nodes (traces, audit records, commits) and their edges stay in the graph tables;
* ``log table, text indexed after`` - the same without the full-text row per insert; the index is built
  in one pass at the end, and that pass is counted;
* ``log table, no full-text search`` - the same with no full-text index for log lines at all (no search
  over messages): the least any layout that keeps lines individually addressable can write.

Every variant inserts pre-built rows with ``executemany``, one transaction per batch, and closes the
database (the last WAL checkpoint counts): no Python per row is timed, so these are floors.

Example: .venv/bin/python bench/log_layout.py --records 100000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from log_ingest import bare_parse, engine_floor, joined_batches

from liubai.lineage.model import GraphBatch, NodeKind
from liubai.lineage.store.sqlite import prepare_rows, row_texts
from tests.logs.dataset import make_dataset, write_jsonl

_SCHEMA = """
CREATE TABLE nodes (rid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, props TEXT NOT NULL,
                    placeholder INTEGER NOT NULL DEFAULT 0);
CREATE TABLE edges (src TEXT NOT NULL, kind TEXT NOT NULL, dst TEXT NOT NULL, props TEXT NOT NULL,
                    PRIMARY KEY (src, kind, dst)) WITHOUT ROWID;
CREATE INDEX edges_dst ON edges(dst, kind, src);
CREATE TABLE log_events (rid INTEGER PRIMARY KEY, key INTEGER NOT NULL UNIQUE, id TEXT NOT NULL,
                         trace TEXT, audit TEXT, props TEXT NOT NULL);
CREATE INDEX log_events_trace ON log_events(trace) WHERE trace IS NOT NULL;
CREATE INDEX log_events_audit ON log_events(audit) WHERE audit IS NOT NULL;
CREATE VIRTUAL TABLE node_search USING fts5(text, content = '', tokenize = "unicode61 remove_diacritics 2");
CREATE VIRTUAL TABLE log_search USING fts5(text, content = '', tokenize = "unicode61 remove_diacritics 2");
"""

Rows = list[tuple[Any, ...]]
Work = list[tuple[Rows, Rows, Rows, Rows, Rows]]


def _key(node_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(node_id.encode(), digest_size=8).digest(), "big", signed=True)


def _rows(batches: list[GraphBatch]) -> Work:
    """Per batch: log rows and their full-text rows, other nodes and theirs, other edges (each node once),
    from the rows ``SqliteStore`` itself would write (``prepare_rows``), so both layouts store the same
    rows in the same order. Log rows take ascending row ids of their own, as an append-mostly table would."""
    out: Work = []
    seen: set[str] = set()
    rid = log_rid = 1
    for b in batches:
        r = prepare_rows(b)
        row_text = row_texts(r)
        logs: Rows = []
        log_texts: Rows = []
        nodes: Rows = []
        texts: Rows = []
        others: Rows = [(*key, "{}") for key in r.bare] + r.with_props
        for i, node_id in enumerate(r.ids):
            links = (("IN_TRACE", r.traces[i]), ("CARRIES", r.audits[i]))
            if node_id in seen:  # written by an earlier batch: its links are edges
                others += [(node_id, kind, dst, "{}") for kind, dst in links if dst]
                continue
            seen.add(node_id)
            if r.kinds[i] == NodeKind.LOG_EVENT.value:
                logs.append((log_rid, _key(node_id), node_id, r.traces[i], r.audits[i], r.props[i]))
                log_texts.append((log_rid, row_text[i]))
                log_rid += 1
            else:  # the graph tables here have no link columns
                nodes.append((rid, node_id, r.kinds[i], r.props[i], int(r.placeholders[i])))
                texts.append((rid, row_text[i]))
                others += [(node_id, kind, dst, "{}") for kind, dst in links if dst]
                rid += 1
        out.append((logs, log_texts, nodes, texts, others))
    return out


def log_table(db: Path, work: Work, *, text: Literal["inline", "after", "none"]) -> float:
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "wal_autocheckpoint=16384"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(_SCHEMA)
    deferred: Rows = []
    t = time.perf_counter()
    for logs, log_texts, nodes, texts, edges in work:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR IGNORE INTO log_events(rid, key, id, trace, audit, props) VALUES (?,?,?,?,?,?)", logs
        )
        conn.executemany("INSERT INTO nodes(rid, id, kind, props, placeholder) VALUES (?,?,?,?,?)", nodes)
        conn.executemany("INSERT INTO node_search(rowid, text) VALUES (?, ?)", texts)
        conn.executemany("INSERT OR IGNORE INTO edges(src, kind, dst, props) VALUES (?,?,?,?)", edges)
        if text == "after":
            deferred.extend(log_texts)
        elif text == "inline":
            conn.executemany("INSERT INTO log_search(rowid, text) VALUES (?, ?)", log_texts)
        conn.execute("COMMIT")
    if deferred:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO log_search(rowid, text) VALUES (?, ?)", deferred)
        conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    ds = make_dataset(args.records, [f"{i:040x}" for i in range(1, 9)])
    gc.freeze()  # as in log_ingest: the bench's own dataset stays out of the timed collections
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        path = write_jsonl(ds.lines, Path(tmp) / "bench.jsonl")
        n, bare = bare_parse(path)
        _, today = engine_floor(path, Path(tmp) / "today.db", args.batch_size)
        work = _rows(joined_batches(path, args.batch_size)[1])
        inline = log_table(Path(tmp) / "inline.db", work, text="inline")
        after = log_table(Path(tmp) / "after.db", work, text="after")
        bare_table = log_table(Path(tmp) / "none.db", work, text="none")
    print(f"{n:,} log lines; SQLite floors (rows pre-built, executemany, close counted)")
    print(f"{'layout':34} {'seconds':>8} {'records/s':>10} {'vs today':>9} {'vs bare parse':>14}")
    for name, secs in (
        ("graph tables (today)", today),
        ("log table", inline),
        ("log table, text indexed after", after),
        ("log table, no full-text search", bare_table),
        ("bare parse (json.loads)", bare),
    ):
        print(f"{name:34} {secs:8.2f} {n / secs:10,.0f} {today / secs:8.2f}x {bare / secs:13.0%}")
    print(
        orjson.dumps(
            {
                "bench": "log_layout",
                "records": n,
                "today_per_s": round(n / today),
                "log_table_per_s": round(n / inline),
                "log_table_text_after_per_s": round(n / after),
                "log_table_no_search_per_s": round(n / bare_table),
                "bare_per_s": round(n / bare),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
