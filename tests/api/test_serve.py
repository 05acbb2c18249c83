"""``liubai serve`` as a user runs it: a real process on a free loopback port, queried over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from liubai.lineage.model import commit_node_id
from tests.api.conftest import World
from tests.serving import free_port

# A real server process (ports, workers, signals); the store's own answers are tested in-process on
# every store by test_graphql.py.
pytestmark = pytest.mark.sqlite_only

LIUBAI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


def _wait_healthy(base: str, proc: subprocess.Popen[str], timeout: float = 30.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"liubai serve exited early ({proc.returncode}): {proc.communicate()[1]}")
        try:
            return httpx.get(f"{base}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"liubai serve did not answer on {base} within {timeout}s")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_prints_urls_and_answers_queries(world: World, tmp_path: Path, workers: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("LIUBAI_STORE", None)
    proc = subprocess.Popen(
        [
            *LIUBAI,
            "--store",
            world.store.url,
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        health = _wait_healthy(base, proc)
        assert health.status_code == 200 and health.json()["store"] == world.store.url
        query = "query($s: String!, $id: ID!) { commit(sha: $s) { id label } lineage(from: $id, depth: 1) { nodes { id } } }"
        answer = httpx.post(
            f"{base}/graphql",
            json={"query": query, "variables": {"s": world.deploy[:9], "id": world.deploy[:9]}},
            timeout=10,
        )
        assert answer.status_code == 200
        body = answer.json()
        assert "errors" not in body, body
        assert body["data"]["commit"]["id"] == commit_node_id(world.deploy)
        assert set(world.workloads) <= {n["id"] for n in body["data"]["lineage"]["nodes"]}
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        ide = httpx.get(f"{base}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"{base}/" in out and f"{base}/graphql" in out


def test_serve_refuses_a_store_it_cannot_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = subprocess.run(
        [*LIUBAI, "--store", f"sqlite:///{blocker}/db.sqlite", "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    assert done.returncode == 1
    assert "cannot open store" in done.stderr and len(done.stderr.strip().splitlines()) == 1
