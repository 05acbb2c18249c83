"""Load test: ingest and GraphQL queries at once against a real ``liubai serve`` on loopback.

The server runs as its own process; this process drives it with ingest threads (fresh batches of log
records through ``POST /v1/ingest``) and query threads (search, stats, lineage). It reports requests per
second and p50/p95/p99 latency per kind, and exits 1 if any answer was a 5xx.

Example: .venv/bin/python bench/load.py --seconds 60 --ingest-threads 2 --query-threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

from liubai.lineage.join import join_records
from liubai.lineage.records import CommitRecord, LogRecord
from liubai.lineage.wire import encode_batch

ROOT = Path(__file__).resolve().parent.parent
SHA = "7e" * 20
QUERIES = [
    '{ search(text: "deploy", first: 20) { totalCount edges { node { id } } } }',
    "{ stats { counts } }",
    f'{{ lineage(from: "commit:{SHA}", depth: 2, limit: 200) {{ nodes {{ id }} }} }}',
    '{ search(text: "\' OR 1=1 -- MATCH (n)", first: 5) { totalCount } }',
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=fh, start_new_session=True)
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-1500:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not come up in 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_server(store: str, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A real ``liubai serve`` over ``store`` on a free loopback port."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LIUBAI_STORE": store, "LIUBAI_AUTH": "0"}
    liubai = str(Path(sys.executable).with_name("liubai"))
    proc = _start(
        [liubai, "--store", store, "serve", "--port", str(port), "--log-level", "warning"], env, url, log
    )
    return proc, url, "liubai serve"


def _batch(worker: int, seq: int, size: int) -> bytes:
    records = [
        LogRecord(
            source="load",
            record_id=f"w{worker}-{seq}-{i}",
            time="2026-01-01T00:00:00Z",
            service="deploy",
            message=f"deploy step {seq}/{i}",
            trace_id=f"{worker:08x}{seq:016x}{i:08x}",
            audit_id=f"git-sha256:{SHA}|trace:{worker:08x}{seq:016x}{i:08x}",
        )
        for i in range(size)
    ]
    return encode_batch(join_records(records), f"load-{worker}")[1]


def _worker(
    kind: str, n: int, url: str, stop: threading.Event, out: dict[str, list[tuple[float, int]]], size: int
) -> None:
    seq = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.is_set():
            seq += 1
            body = _batch(n, seq, size) if kind == "ingest" else None
            t0 = time.perf_counter()
            try:
                if kind == "ingest":
                    r = client.post("/v1/ingest", content=body, headers={"Content-Type": "application/json"})
                else:
                    r = client.post("/graphql", json={"query": QUERIES[seq % len(QUERIES)]})
                code = r.status_code
                if kind == "query" and code == 200 and r.json().get("errors"):
                    code = 299  # answered, but with GraphQL errors (a broken query in this script)
            except httpx.HTTPError:
                code = 599
            out[kind].append((time.perf_counter() - t0, code))


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ingest-threads", type=int, default=2)
    ap.add_argument("--query-threads", type=int, default=2)
    ap.add_argument("--batch-records", type=int, default=100)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="liubai-load-") as tmp:
        store = f"sqlite:///{Path(tmp) / 'load.db'}"
        proc, url, how = start_server(store, Path(tmp) / "server.log")
        try:
            seed = join_records(
                [
                    CommitRecord(
                        repo="load",
                        sha=SHA,
                        parents=(),
                        author_name="a",
                        author_email="a@x",
                        authored_at="2026-01-01T00:00:00Z",
                        committer_name="a",
                        committer_email="a@x",
                        committed_at="2026-01-01T00:00:00Z",
                        subject="deploy",
                    )
                ]
            )
            httpx.post(
                f"{url}/v1/ingest",
                content=encode_batch(seed, "seed")[1],
                headers={"Content-Type": "application/json"},
            ).raise_for_status()
            out: dict[str, list[tuple[float, int]]] = defaultdict(list)
            stop = threading.Event()
            threads = [
                threading.Thread(target=_worker, args=("ingest", i, url, stop, out, args.batch_records))
                for i in range(args.ingest_threads)
            ]
            threads += [
                threading.Thread(target=_worker, args=("query", i, url, stop, out, 0))
                for i in range(args.query_threads)
            ]
            began = time.perf_counter()
            for t in threads:
                t.start()
            time.sleep(args.seconds)
            stop.set()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - began
        finally:
            _stop(proc)

    report: dict[str, object] = {"server": how, "seconds": round(elapsed, 1)}
    failures = 0
    for kind in ("ingest", "query"):
        rows = out[kind]
        lat = [d for d, _ in rows]
        codes: dict[int, int] = defaultdict(int)
        for _, c in rows:
            codes[c] += 1
        fivexx = sum(v for c, v in codes.items() if c >= 500)
        failures += fivexx
        report[kind] = {
            "requests": len(rows),
            "per_s": round(len(rows) / elapsed, 1),
            "5xx": fivexx,
            "status": dict(sorted(codes.items())),
            "p50_ms": round(_pct(lat, 50), 1),
            "p95_ms": round(_pct(lat, 95), 1),
            "p99_ms": round(_pct(lat, 99), 1),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        }
        if kind == "ingest":
            report[kind]["records_per_s"] = round(len(rows) * args.batch_records / elapsed, 1)  # type: ignore[index]
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print("zero 5xx: " + ("yes" if failures == 0 else f"NO ({failures})"))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
