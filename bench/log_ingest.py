"""Log ingest throughput: JSONL file and local SLS server into the embedded store, vs bare ``json.loads``.

All rates come from the same run on the same records, so the ratios hold on any machine:

* ``bare parse``   - ``json.loads`` of every line of the JSONL file (the ceiling);
* ``file -> map``  - read + parse + field mapping, no join, no store (``-> join``: plus the join);
* ``sqlite engine floor`` - SQLite alone inserting the same facts' rows, built beforehand (the ceiling
  for any store on this schema);
* ``sqlite upsert only`` - the store alone, writing the batches the file path makes;
* ``file -> store``- ``liubai ingest logs`` path: read, map, join, SQLite upsert;
* ``sls -> store`` - ``liubai ingest sls`` path: real SDK PullLogs (lz4 + protobuf) from the local server,
  which runs in a process of its own as a remote SLS would.

For each store run the time spent inside ``store.upsert`` is shown, to tell whether the store is the
bottleneck. Store runs end by closing the store, whose last WAL checkpoint counts, as the CLI waits for it. Each path runs ``--repeat`` times (3) on a fresh database and its median run is shown: single
runs on a small VM vary too much to compare. Targets: >= 50,000 records/s into SQLite and >= 30% of the bare
parse rate. The last lines say how close any ingest could come: the engine floor alone, and the ceiling
when the measured reading work and the floor share the machine's cores with no overhead at all.

With ``--scale N`` the file path also runs at N records, with batches that follow the store and with
fixed ones (``BatchPace``), twice each in alternating order, side by side.

Example: .venv/bin/python bench/log_ingest.py --records 100000 --scale 1000000
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the local SLS server lives in tests/

from pydantic import SecretStr

from liubai.collector.ingest import join_batches
from liubai.collector.logfields import FieldMap, log_mapper
from liubai.collector.logfile import ingest_files, read_jsonl
from liubai.collector.sls import SlsCollector, SlsCredentials, make_client
from liubai.lineage.model import GraphBatch
from liubai.lineage.records import LogRecord
from liubai.lineage.store import LineageStore, UpsertResult, open_store
from liubai.lineage.store.sqlite import SqliteStore, prepare_rows, row_texts
from tests.logs.dataset import make_dataset, put_into_sls, write_jsonl
from tests.sls_server import SlsServer

TARGET_RATE = 50_000
TARGET_RATIO = 0.30


class TimedStore:
    """Delegates to a store and adds up the seconds spent in ``upsert`` (or ``upsert_rows``, when the rows
    were prepared in a reader process)."""

    def __init__(self, inner: LineageStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.seconds = 0.0

    def upsert(self, batch: GraphBatch) -> UpsertResult:
        t = time.perf_counter()
        try:
            return self.inner.upsert(batch)
        finally:
            self.seconds += time.perf_counter() - t

    def upsert_rows(self, rows: Any, batch: GraphBatch) -> UpsertResult:
        t = time.perf_counter()
        try:
            return self.inner.upsert_rows(rows, batch)  # type: ignore[attr-defined]
        finally:
            self.seconds += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def bare_parse(path: Path) -> tuple[int, float]:
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for line in f:
            json.loads(line)
            n += 1
    return n, time.perf_counter() - t


def parse_and_map(path: Path) -> tuple[int, float]:
    mapper = log_mapper(FieldMap())  # once per file, as the readers fetch it
    t = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for i, line in enumerate(f, 1):
            mapper.map(json.loads(line), "bench", f"bench:{i}")
            n += 1
    return n, time.perf_counter() - t


def parse_map_join(path: Path, batch_size: int) -> tuple[int, float]:
    """Everything but the store: the file path's records turned into graph batches and dropped."""
    t = time.perf_counter()
    joined = join_batches(read_jsonl(str(path), source="bench"), batch_size)
    n = sum(part.records[LogRecord.__name__] for part in joined)
    return n, time.perf_counter() - t


def joined_batches(path: Path, batch_size: int) -> tuple[int, list[GraphBatch]]:
    """The batches the file path makes (``join_batches``, as ``ingest_files`` uses it), joined up front."""
    parts = list(join_batches(read_jsonl(str(path), source="bench"), batch_size))
    return sum(p.records[LogRecord.__name__] for p in parts), [p.batch for p in parts]


def store_only(path: Path, url: str, batch_size: int) -> tuple[int, float]:
    """SQLite upsert alone: the same batches the file path makes, joined up front, then timed."""
    n, batches = joined_batches(path, batch_size)
    store = open_store(url)
    t = time.perf_counter()
    for b in batches:
        store.upsert(b)
    store.close()  # its final WAL checkpoint is part of the ingest, as in the engine floor
    secs = time.perf_counter() - t
    return n, secs


def engine_floor(path: Path, db: Path, batch_size: int) -> tuple[int, float]:
    """What SQLite alone needs to hold these facts in liubai's schema: every row (node with its trace and
    audit links, full-text entry, other edge) built beforehand, each stored node once, inserted with
    ``executemany`` in one transaction per batch; no lookups, no merging, no Python per row. No store on
    this schema can write faster."""
    n, batches = joined_batches(path, batch_size)
    store = SqliteStore(db)
    conn = store._conn()
    work: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
    rid, seen = 1, set()
    for b in batches:
        r = prepare_rows(b)  # the store's own rows, so the floor is the store's layout exactly
        row_text = row_texts(r)
        nodes, texts = [], []
        edges: list[tuple[Any, ...]] = [(*key, "{}") for key in r.bare] + r.with_props
        for i, node_id in enumerate(r.ids):
            if node_id in seen:  # written by an earlier batch: its links go to edges, as the store does it
                links = (("IN_TRACE", r.traces[i]), ("CARRIES", r.audits[i]))
                edges += [(node_id, kind, dst, "{}") for kind, dst in links if dst]
                continue
            seen.add(node_id)
            nodes.append((rid, node_id, r.kinds[i], r.props[i], r.placeholders[i], r.traces[i], r.audits[i]))
            texts.append((rid, row_text[i]))
            rid += 1
        work.append((nodes, texts, edges))
    t = time.perf_counter()
    for nodes, texts, edges in work:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO nodes(rid, id, kind, props, placeholder, trace, audit) VALUES (?, ?, ?, ?, ?, ?, ?)",
            nodes,
        )
        conn.executemany("INSERT INTO node_search(rowid, text) VALUES (?, ?)", texts)
        conn.executemany("INSERT OR IGNORE INTO edges(src, kind, dst, props) VALUES (?, ?, ?, ?)", edges)
        conn.execute("COMMIT")
    store.close()  # the final WAL checkpoint belongs to the cost
    return n, time.perf_counter() - t


def file_to_sqlite(path: Path, db: str, batch_size: int, *, paced: bool = True) -> tuple[int, float, float]:
    """``liubai ingest logs``'s path: (records, seconds, seconds in upsert)."""
    store = TimedStore(open_store(f"sqlite:///{db}"))
    t = time.perf_counter()
    stats = ingest_files(store, [str(path)], "jsonl", source="bench", batch_size=batch_size, paced=paced)
    store.close()  # its final WAL checkpoint is part of the ingest, as in the engine floor
    return stats.records, time.perf_counter() - t, store.seconds


def _serve(records: int, commits: list[str], endpoint: Connection) -> None:
    """The local SLS server with the bench's lines, until the bench ends this process."""
    with SlsServer("bench", "bench-id", "bench-secret") as server:
        server.create_logstore("app", shards=2)
        put_into_sls(server, "app", make_dataset(records, commits).lines, group_size=50)
        endpoint.send(server.endpoint)
        with suppress(EOFError):
            endpoint.recv()  # returns when the bench closes its end or ends


@contextmanager
def served_in_a_process(records: int, commits: list[str]) -> Iterator[str]:
    """The endpoint of a local SLS server in a process of its own, as a remote SLS is: its HTTP, lz4 and
    protobuf work does not share the collector's GIL."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(records, commits, there), daemon=True)
    server.start()
    there.close()
    try:
        yield here.recv()
    finally:
        here.close()
        server.join(10)
        if server.is_alive():
            server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--pull-count", type=int, default=100, help="log groups per PullLogs (50 lines per group)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=10_000, help="records per store transaction (files)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; the median run is reported")
    parser.add_argument(
        "--scale",
        type=int,
        default=0,
        help="also run the file path at this many records, twice per mode (0: skip)",
    )
    args = parser.parse_args()

    commits = [f"{i:040x}" for i in range(1, 9)]
    ds = make_dataset(args.records, commits)
    gc.freeze()  # the bench's own 100k-line dataset is not the collector's: keep it out of its collections
    rows: list[tuple[str, int, float, float | None]] = []
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        path = write_jsonl(ds.lines, Path(tmp) / "bench.jsonl")
        size_mb = path.stat().st_size / 1e6
        runs = itertools.count()  # a fresh database per run

        def db() -> str:
            return f"{tmp}/run{next(runs)}.db"

        def sls_to_sqlite(endpoint: str) -> tuple[int, float, float]:
            client = make_client(
                endpoint,
                SlsCredentials(access_key_id="bench-id", access_key_secret=SecretStr("bench-secret")),
            )
            store = TimedStore(open_store(f"sqlite:///{db()}"))
            t = time.perf_counter()
            col = SlsCollector(client, "bench", "app", store, pull_count=args.pull_count)
            consumed = col.consume(offload=True)  # as `liubai ingest sls` runs it
            store.close()  # its final WAL checkpoint is part of the ingest, as in the engine floor
            secs = time.perf_counter() - t
            return consumed.records, secs, store.seconds

        def median(run: Callable[[], tuple[int, float, float | None]]) -> tuple[int, float, float | None]:
            """The run with the median time of ``--repeat``: a single run varies too much to compare."""
            results = sorted((run() for _ in range(args.repeat)), key=lambda r: r[1])
            return results[len(results) // 2]

        def add(name: str, run: Callable[[], tuple[int, float, float | None]]) -> None:
            rows.append((name, *median(run)))

        def timed(
            run: Callable[[], tuple[int, float]], *, all_upsert: bool = False
        ) -> Callable[[], tuple[int, float, float | None]]:
            """A (records, seconds) run as a row; ``all_upsert``: the store alone, all of it upsert time."""

            def row() -> tuple[int, float, float | None]:
                n, secs = run()
                return n, secs, secs if all_upsert else None

            return row

        add("bare parse (json.loads)", timed(lambda: bare_parse(path)))
        add("file -> map (no store)", timed(lambda: parse_and_map(path)))
        add("file -> map -> join (no store)", timed(lambda: parse_map_join(path, args.batch_size)))
        add(
            "sqlite engine floor (rows pre-built)",
            timed(lambda: engine_floor(path, Path(db()), args.batch_size)),
        )
        add(
            "sqlite upsert only",
            timed(lambda: store_only(path, f"sqlite:///{db()}", args.batch_size), all_upsert=True),
        )
        add("file -> sqlite", lambda: file_to_sqlite(path, db(), args.batch_size))
        with served_in_a_process(args.records, commits) as endpoint:
            add("sls -> sqlite (real SDK)", lambda: sls_to_sqlite(endpoint))

    bare_rate = rows[0][1] / rows[0][2]
    print(f"{args.records:,} records, JSONL file {size_mb:.1f} MB, {ds.expected_rejects:,} rejects")
    print(f"{'path':37} {'records':>9} {'seconds':>8} {'records/s':>10} {'vs bare':>8} {'in upsert':>10}")
    for name, n, secs, upsert in rows:
        rate = n / secs
        up = f"{upsert / secs:6.0%}" if upsert is not None else ""
        print(f"{name:37} {n:9,} {secs:8.2f} {rate:10,.0f} {rate / bare_rate:8.1%} {up:>10}")
    verdicts = []
    floor_rate = rows[3][1] / rows[3][2]
    print(
        f"best possible on this schema: the engine floor, {floor_rate:,.0f} records/s = "
        f"{floor_rate / bare_rate:.0%} of bare parse, before any parsing, mapping or joining"
    )
    cores = len(os.sched_getaffinity(0))
    ceiling = ingest_ceiling(rows[2][2] / rows[2][1], 1 / floor_rate, cores=cores)
    print(
        f"ceiling on {cores} cores: parse+map+join and the engine floor spread perfectly over them, one SQLite "
        f"writer: {ceiling:,.0f} records/s = {ceiling / bare_rate:.0%} of bare parse"
    )
    for name, n, secs, _ in rows[5:]:
        rate = n / secs
        fast, close = rate >= TARGET_RATE, rate / bare_rate >= TARGET_RATIO
        verdicts.append(fast and close)
        print(
            f"{name}: >= {TARGET_RATE:,}/s {'met' if fast else 'MISSED'} ({rate:,.0f}/s); "
            f">= {TARGET_RATIO:.0%} of bare parse {'met' if close else 'MISSED'} ({rate / bare_rate:.0%})"
        )
    if args.scale:
        at_scale(args.scale, commits, args.batch_size)
    sys.exit(0 if all(verdicts) else 1)


def ingest_ceiling(read_secs: float, write_secs: float, *, cores: int) -> float:
    """Records/s no ingest can beat: the reading work (parse, map, join) and SQLite's own work per record,
    both measured in this run, shared out over ``cores`` with no overhead at all; SQLite writes from one
    thread, so its part alone also bounds the rate."""
    return min(cores / (read_secs + write_secs), 1 / write_secs)


def at_scale(records: int, commits: list[str], batch_size: int) -> None:
    """The file path at ``records`` lines, with batches that follow the store (as shipped) and
    with batches of a fixed size: past a few hundred thousand lines SQLite's writes set the pace."""
    ds = make_dataset(records, commits)
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as tmp:
        path = write_jsonl(ds.lines, Path(tmp) / "scale.jsonl")
        del ds
        runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for i, paced in enumerate((False, True, True, False)):  # ABBA: the machine's drift hits both alike
            n, secs, upsert = file_to_sqlite(path, f"{tmp}/scale-{i}.db", batch_size, paced=paced)
            runs[paced].append((n / secs, upsert / secs))
    rates = {paced: tuple(sum(r[k] for r in rs) / len(rs) for k in (0, 1)) for paced, rs in runs.items()}
    print(f"at scale, {records:,} records, mean of two runs each (fixed, following, following, fixed):")
    for paced, label in (
        (True, "file -> sqlite, batches follow the store"),
        (False, "file -> sqlite, fixed batches"),
    ):
        rate, busy = rates[paced]
        print(f"{label:44} {rate:10,.0f} records/s {busy:6.0%} in upsert")
    print(f"batches that follow the store: {rates[True][0] / rates[False][0]:.2f}x the fixed-batch rate")


if __name__ == "__main__":
    main()
