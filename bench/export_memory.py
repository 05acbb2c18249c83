"""Peak memory of a streamed whole-store export: 100k facts vs 1M facts.

The export must run in bounded memory: the 1M-fact export may take at most 2x the memory of the
100k-fact one (a writer that held the graph would take ~10x). Each size gets its own temp SQLite store,
filled through ``GraphBatch``/``upsert`` in batches of 10k facts; each export runs in a fresh child
process running the real ``liubai export --all`` (progress bar included).

Two figures per run: the process's peak RSS (VmHWM), on which the bound is checked by default, and its
peak anonymous RSS (heap: Python objects, SQLite's page cache, writer buffers; sampled every 20 ms).

Run:  .venv/bin/python bench/export_memory.py [--sizes 100000 1000000] [--format json] [--gate rss|anon]
Exit status 0 when the bound holds, 1 when it does not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BOUND = 2.0
BATCH_FACTS = 10_000


def generate(db: Path, facts: int) -> int:
    """Fill a store with about ``facts`` facts shaped like traced runs: runs, processes, files, edges."""
    from liubai.lineage.model import EdgeKind, GraphBatch
    from liubai.lineage.store import open_store

    store = open_store(f"sqlite:///{db}")
    made = 0
    i = 0
    batch = GraphBatch()
    try:
        while made < facts:
            run = f"run:bench:{i // 1000}:1"
            if i % 1000 == 0:
                batch.add_node(
                    run,
                    {
                        "host": "bench",
                        "command": ["make", "all"],
                        "started_at": "2026-01-01T00:00:00.000000Z",
                    },
                )
                made += 1
            proc = f"proc:bench:{i}:1"
            path = f"/work/out/dir{i % 97}/file-{i}.o"
            batch.add_node(
                proc,
                {
                    "host": "bench",
                    "pid": i,
                    "comm": "cc",
                    "argv": ["cc", "-c", f"src/f{i}.c"],
                    "started_at": "2026-01-01T00:00:01.000000Z",
                },
            )
            batch.add_node(f"file:bench:{path}", {"host": "bench", "path": path})
            batch.add_edge(run, EdgeKind.RAN, proc)
            batch.add_edge(proc, EdgeKind.WROTE, f"file:bench:{path}", {"count": 1, "sha256": f"{i:064x}"})
            made += 4
            i += 1
            if batch.fact_count >= BATCH_FACTS:
                store.upsert(batch)
                batch = GraphBatch()
        if batch:
            store.upsert(batch)
        counts = store.counts()
    finally:
        store.close()
    return (
        sum(v for k, v in counts.items() if k not in ("edges", "rejected", "placeholders")) + counts["edges"]
    )


def _vm_hwm_kib() -> int:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries that across fork+exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _AnonPeak(threading.Thread):
    """Samples anonymous RSS (heap, not the mapped database file) every 20 ms; the kernel keeps no peak of it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, _status_kib("RssAnon"))


def child(db: str, fmt: str, out: str) -> None:
    """Runs in a fresh process: the real CLI export, then the process's own peak RSS."""
    from liubai.api.cli.main import app

    sampler = _AnonPeak()
    sampler.start()

    baseline = _vm_hwm_kib()
    started = time.perf_counter()
    try:
        app(["--store", f"sqlite:///{db}", "export", "--all", "-f", fmt, "-o", out], standalone_mode=False)
    finally:
        peak = _vm_hwm_kib()
        sampler.done.set()
        sampler.join()
    print(
        json.dumps(
            {
                "peak_kib": peak,
                "anon_peak_kib": sampler.peak,
                "file_kib_end": _status_kib("RssFile"),
                "import_kib": baseline,
                "seconds": time.perf_counter() - started,
                "bytes": os.path.getsize(out),
            }
        )
    )


def measure(db: Path, fmt: str, tmp: Path) -> dict[str, float]:
    out = tmp / f"export-{db.stem}.{fmt}"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(db), fmt, str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"export of {db} failed:\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    out.unlink()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=[100_000, 1_000_000], metavar=("SMALL", "LARGE")
    )
    parser.add_argument("--format", default="json", choices=["json", "jsonl", "csv", "graphml", "dot"])
    parser.add_argument(
        "--gate", choices=["rss", "anon"], default="rss", help="which peak the bound applies to"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0

    results = {}
    with tempfile.TemporaryDirectory(prefix="liubai-bench-") as d:
        tmp = Path(d)
        for size in args.sizes:
            db = tmp / f"facts-{size}.db"
            t0 = time.perf_counter()
            facts = generate(db, size)
            gen_s = time.perf_counter() - t0
            r = measure(db, args.format, tmp)
            results[size] = r
            print(
                f"{facts:>9} facts: generated in {gen_s:6.1f}s; export {args.format} {r['seconds']:6.1f}s "
                f"({facts / r['seconds']:,.0f} facts/s, {r['bytes'] / 1e6:,.1f} MB); "
                f"peak RSS {r['peak_kib'] / 1024:,.1f} MiB (after imports {r['import_kib'] / 1024:,.1f} MiB, "
                f"peak anonymous {r['anon_peak_kib'] / 1024:,.1f} MiB, file-backed at end {r['file_kib_end'] / 1024:,.1f} MiB)",
                flush=True,
            )
            db.unlink()
    small, large = args.sizes
    rss = results[large]["peak_kib"] / results[small]["peak_kib"]
    anon = results[large]["anon_peak_kib"] / results[small]["anon_peak_kib"]
    ratio = anon if args.gate == "anon" else rss
    ok = ratio <= BOUND
    print(f"peak RSS ratio {large}/{small} facts = {rss:.2f}; peak anonymous RSS ratio = {anon:.2f}")
    print(f"bound {BOUND:.1f} on the {args.gate} ratio: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
