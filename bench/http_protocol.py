"""Server CPU per request of the HTTP/1.1 protocols ``liubai serve`` could run: which limits cost least.

Arms, each a fresh uvicorn process (one worker, uvloop) serving ``liubai.api.app:create_app_from_env`` over an
empty SQLite store, asked ``--requests`` small ``GET /healthz`` and ``POST /graphql`` requests over one
keep-alive connection from this process:

* ``httptools``: uvicorn's httptools protocol, no request-head limits (the baseline);
* ``limited``: ``liubai.api.http_protocol.LimitedHttpToolsProtocol`` (httptools plus head limits);
* ``h11``: uvicorn's h11 protocol with ``h11_max_incomplete_event_size`` at the same 64 KiB.

The figure is the server's user+system CPU time (from /proc) divided by the requests: robust to other
load on the machine, unlike wall time. Example: .venv/bin/python bench/http_protocol.py --requests 3000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys, uvicorn
arm, port = sys.argv[1], int(sys.argv[2])
kw = {"http": "h11", "h11_max_incomplete_event_size": 65536} if arm == "h11" else {"http": "httptools"}
if arm == "limited":
    from liubai.api.http_protocol import LimitedHttpToolsProtocol
    kw = {"http": LimitedHttpToolsProtocol}
uvicorn.run("liubai.api.app:create_app_from_env", factory=True, host="127.0.0.1", port=port, log_level="warning",
            access_log=False, **kw)
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_arm(arm: str, store: str, requests: int) -> float:
    port = _port()
    env = {**os.environ, "LIUBAI_STORE": store, "LIUBAI_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVER, arm, str(port)], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(50):  # warm-up
                client.get("/healthz")
            before = _cpu_seconds(proc.pid)
            for i in range(requests):
                if i % 2:
                    client.get("/healthz")
                else:
                    client.post("/graphql", json={"query": "{ stats { counts } }"})
            return (_cpu_seconds(proc.pid) - before) / requests
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--rounds", type=int, default=2, help="each arm runs this many times; the best counts"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = f"sqlite:///{Path(tmp) / 'bench.db'}"
        result = {
            arm: min(run_arm(arm, store, args.requests) for _ in range(args.rounds)) * 1e6
            for arm in ("httptools", "limited", "h11")
        }
    for arm, micros in result.items():
        print(f"{arm:10s} {micros:8.0f} us server CPU per request")
    print(
        json.dumps({"bench": "http_protocol", "cpu_us_per_request": {k: round(v) for k, v in result.items()}})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
