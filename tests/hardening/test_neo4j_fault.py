"""Fault test (3): Neo4j, the API's store, stopped and restarted mid-ingest.

The API answers 503 while its store is away, the agent spools, and once Neo4j is back the graph equals
the one an uninterrupted run put into SQLite: nothing lost, nothing doubled, on the other store.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests._real import missing
from tests.hardening.conftest import (
    ROOT,
    agent_argv,
    free_port,
    graph_of,
    run_agent,
    shipped,
    status,
    write_logs,
)
from tests.neo4j_server import NO_JARS_EXIT, SCRIPT, START_TIMEOUT_S, _read_first_line, _stop

pytestmark = pytest.mark.neo4j
LINES = 1200


class Neo4jProcess:
    """One Neo4j on a fixed port and data directory, so it can be stopped and started again as itself."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(
            # No --password: the launcher sets it at every start, and Neo4j refuses to "change" a password
            # to the one it already has, so a restart on the same data directory runs without auth.
            [str(SCRIPT), "--no-fetch", "--port", str(self.port), "--data", str(self.data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        uri = _read_first_line(self.proc, START_TIMEOUT_S)
        if uri is None:
            code = self.proc.poll()
            _stop(self.proc)
            if code == NO_JARS_EXIT:
                missing("neo4j", "jars not fetched (run scripts/neo4j-test-server --fetch-only)")
            pytest.fail(f"Neo4j did not start (exit {code})")
        self.url = f"bolt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def test_neo4j_stopped_and_restarted_mid_ingest_loses_and_doubles_nothing(
    api_factory: Any, tmp_path: Path
) -> None:
    if shutil.which("java") is None:
        missing("neo4j", "no java on PATH")
    logs = tmp_path / "deploy.jsonl"
    write_logs(logs, LINES)
    ref = api_factory("reference")
    assert run_agent(agent_argv(ref.url, tmp_path / "ref", "--logs", str(logs))).returncode == 0
    reference = graph_of(ref.store_url)

    neo = Neo4jProcess(tmp_path / "neo4j-data")
    neo.start()
    try:
        api = api_factory("neo", start=False)
        api.store_url = neo.url
        api.start()
        state = tmp_path / "state"
        proc = subprocess.Popen(
            agent_argv(
                api.url,
                state,
                "--logs",
                str(logs),
                extra=("--batch-size", "10", "--send-deadline", "1", "--poll", "0.2"),
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while shipped(state) < 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            neo.stop()
            deadline = time.monotonic() + 60
            while status(state).get("spooled_batches", 0) == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status(state).get("spooled_batches", 0) > 0, "the agent never had to spool"
            neo.start()
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert shipped(state) == LINES
        got = graph_of(neo.url)
        assert got["counts"] == reference["counts"]
        assert [n[0] for n in got["nodes"]] == [n[0] for n in reference["nodes"]]
        assert [e[:3] for e in got["edges"]] == [e[:3] for e in reference["edges"]]
        assert got["rejected"] == reference["rejected"]
    finally:
        neo.stop()
