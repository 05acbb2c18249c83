"""GraphQL over real HTTP: lineage answers of 100 / 1,000 / 10,000 nodes, and depth-2 throughput.

A real ``liubai serve`` (uvicorn, one worker) runs over an SQLite store; a client in this process
(httpx, keep-alive) measures, in the same run:

* per answer size, p50/p95 of the plain object-per-node query (``nodes {...} edges {...}``, every
  field resolved by graphql-core: the baseline) and of the ``compact`` field (one JSON value);
* requests/s of depth-2 lineage queries from ``--clients`` concurrent connections for ``--seconds``,
  from this Python client and, where installed, from ``wrk`` (a C load generator: on 2 cores the Python
  client itself takes a good part of the CPU the server needs);
* the server's CPU time per request in each throughput arm (robust to other load on the machine, unlike
  requests/s) and its peak RSS.

Prints a table and, last, one JSON line. Example: .venv/bin/python bench/graphql_http.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from liubai.lineage.model import EdgeKind, GraphBatch
from liubai.lineage.store import open_store

PLAIN = """query($id: ID!) { lineage(from: $id, depth: 2, limit: 50000) {
  nodes { id kind placeholder label time properties } edges { source target kind properties } depths truncated } }"""
COMPACT = """query($id: ID!) { lineage(from: $id, depth: 2, limit: 50000) { compact } }"""
SMALL = """query($id: ID!) { lineage(from: $id, depth: 2) { compact } }"""


def build(db: Path, sizes: list[int]) -> dict[int, str]:
    """Per size n: one run whose processes (n/3) each wrote two files: n nodes within 2 hops."""
    store = open_store(f"sqlite:///{db}")
    starts = {}
    for n in sizes:
        batch = GraphBatch()
        run = f"run:bench:{n}:1"
        batch.add_node(
            run,
            {"host": "bench", "command": ["make", f"size-{n}"], "started_at": "2026-01-01T00:00:00.000000Z"},
        )
        for p in range((n - 1) // 3):
            proc = f"proc:bench:{n * 100_000 + p}:1"
            batch.add_node(
                proc,
                {
                    "pid": p,
                    "comm": "cc",
                    "argv": ["cc", "-c", f"m{p}.c"],
                    "started_at": "2026-01-01T00:00:01.000000Z",
                },
            )
            batch.add_edge(run, EdgeKind.RAN, proc)
            for f in range(2):
                path = f"/work/{n}/obj/m{p}.{f}.o"
                batch.add_node(f"file:bench:{path}", {"path": path})
                batch.add_edge(proc, EdgeKind.WROTE, f"file:bench:{path}", {"count": 1})
        store.upsert(batch)
        starts[n] = run
    store.close()
    return starts


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used: per request, robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed(client: httpx.Client, url: str, query: str, node: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post(url, json={"query": query, "variables": {"id": node}})
        r.raise_for_status()
        body = r.json()
        if body.get("errors"):
            raise SystemExit(f"query failed: {body['errors']}")
        out.append((time.perf_counter() - t) * 1000)
    return out


def throughput(url: str, node: str, clients: int, seconds: float) -> tuple[float, int, list[float]]:
    done = 0
    errors = 0
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal done, errors
        with httpx.Client(timeout=30) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = c.post(url, json={"query": SMALL, "variables": {"id": node}})
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    if r.status_code >= 500:
                        errors += 1
                    done += 1
                    lat.append(ms)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done / (time.perf_counter() - t0), errors, lat


def wrk_throughput(url: str, node: str, clients: int, seconds: float) -> dict[str, float] | None:
    """Requests/s and latency percentiles from ``wrk`` (POSTing the same query), or None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = json.dumps({"query": SMALL, "variables": {"id": node}})
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
            "done = function(summary, latency, requests)\n"
            '  io.write(string.format("RESULT %d %d %d %f %f\\n", summary.requests, summary.errors.status,'
            " summary.duration, latency:percentile(50), latency:percentile(95)))\nend\n"
        )
        script = f.name
    try:
        out = subprocess.run(
            [wrk, "-t1", f"-c{clients}", f"-d{int(seconds)}s", "-s", script, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        ).stdout
    finally:
        os.unlink(script)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return None
    requests, errors, duration_us, p50_us, p95_us = (float(x) for x in line.split()[1:])
    return {
        "rps": requests / (duration_us / 1e6),
        "requests": requests,
        "non2xx": errors,
        "p50_ms": p50_us / 1000,
        "p95_ms": p95_us / 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="liubai-gql-") as d:
        db = Path(d) / "g.db"
        starts = build(db, args.sizes + [30])
        port = _port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "liubai.api.cli.main",
                "--store",
                f"sqlite:///{db}",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            rows = []
            with httpx.Client(timeout=60) as client:
                for n in args.sizes:
                    timed(client, url, COMPACT, starts[n], 2)  # warm up
                    plain = timed(
                        client, url, PLAIN, starts[n], max(3, args.repeat // (1 if n < 10000 else 3))
                    )
                    compact = timed(client, url, COMPACT, starts[n], args.repeat)
                    rows.append(
                        {
                            "nodes": n,
                            "plain_p50_ms": statistics.median(plain),
                            "plain_p95_ms": _pct(plain, 0.95),
                            "compact_p50_ms": statistics.median(compact),
                            "compact_p95_ms": _pct(compact, 0.95),
                            "speedup": statistics.median(plain) / statistics.median(compact),
                        }
                    )
            cpu0 = _cpu_seconds(server.pid)
            rps, errors, lat = throughput(url, starts[30], args.clients, args.seconds)
            cpu1 = _cpu_seconds(server.pid)
            cpu_ms = 1000 * (cpu1 - cpu0) / max(1, len(lat))
            wrk = wrk_throughput(url, starts[30], args.clients, args.seconds)
            if wrk is not None:
                wrk["server_cpu_ms"] = 1000 * (_cpu_seconds(server.pid) - cpu1) / max(1.0, wrk["requests"])
            rss = _peak_rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"{'nodes':>7} {'plain p50':>10} {'plain p95':>10} {'compact p50':>12} {'compact p95':>12} {'speed-up':>9}"
    )
    for r in rows:
        print(
            f"{r['nodes']:>7} {r['plain_p50_ms']:>8.1f}ms {r['plain_p95_ms']:>8.1f}ms {r['compact_p50_ms']:>10.1f}ms "
            f"{r['compact_p95_ms']:>10.1f}ms {r['speedup']:>8.1f}x"
        )
    print(
        f"depth-2 lineage (~30 nodes), {args.clients} clients, one worker: {rps:,.0f} req/s, "
        f"p50 {statistics.median(lat):.1f}ms p95 {_pct(lat, 0.95):.1f}ms, 5xx {errors}; server CPU {cpu_ms:.2f} ms/req, "
        f"peak RSS {rss:.0f} MiB"
    )
    if wrk is not None:
        print(
            f"depth-2 lineage, wrk -c{args.clients} (C client), one worker: {wrk['rps']:,.0f} req/s, "
            f"p50 {wrk['p50_ms']:.1f}ms p95 {wrk['p95_ms']:.1f}ms, non-2xx {wrk['non2xx']:.0f}; "
            f"server CPU {wrk['server_cpu_ms']:.2f} ms/req"
        )
    print(
        json.dumps(
            {
                "bench": "graphql_http",
                "sizes": rows,
                "rps_depth2": rps,
                "errors_5xx": errors,
                "wrk": wrk,
                "rps_p50_ms": statistics.median(lat),
                "rps_p95_ms": _pct(lat, 0.95),
                "server_cpu_ms_per_req": cpu_ms,
                "server_rss_mib": rss,
            }
        )
    )


if __name__ == "__main__":
    main()
