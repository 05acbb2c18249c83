"""A real Neo4j for tests: ``scripts/neo4j-test-server`` started once per session, stopped at the end.

``running()`` yields the Bolt URL (with the generated password in it). ``LIUBAI_TEST_NEO4J_URL`` points the
tests at a server that is already running instead. Where Java or the cached jars are missing the tests
are skipped through ``tests._real.missing`` (failed under ``LIUBAI_REQUIRE_NEO4J=1``). Jars are never
fetched here: CI runs ``scripts/neo4j-test-server --fetch-only`` first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from tests._real import missing

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "neo4j-test-server"
START_TIMEOUT_S = float(os.environ.get("LIUBAI_TEST_NEO4J_START_TIMEOUT", "180"))
NO_JARS_EXIT = 3


def _read_first_line(proc: subprocess.Popen[str], timeout: float) -> str | None:
    """The launcher's first stdout line (the Bolt URI), or None if it exits or times out first."""
    box: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        box.append(proc.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box and box[0].strip() else None


@contextmanager
def running() -> Iterator[str]:
    """Start a throw-away Neo4j with authentication on and yield ``bolt://neo4j:<pw>@127.0.0.1:<port>``."""
    external = os.environ.get("LIUBAI_TEST_NEO4J_URL")
    if external:
        yield external
        return
    if shutil.which(os.environ.get("JAVA", "java")) is None:
        missing("neo4j", "no java on PATH (Neo4j 5.26 needs JDK 17+)")
    password = secrets.token_hex(12)
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [str(SCRIPT), "--no-fetch", "--password", password],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            url = _read_first_line(proc, START_TIMEOUT_S)
            if url is None:
                code = proc.poll()
                log.seek(0)
                tail = " | ".join(log.read().strip().splitlines()[-3:])
                _stop(proc)
                if code == NO_JARS_EXIT:
                    missing("neo4j", tail or "jars not fetched (run scripts/neo4j-test-server --fetch-only)")
                pytest.fail(
                    f"Neo4j test server did not start within {START_TIMEOUT_S:.0f}s (exit {code}): {tail}"
                )
            yield url
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    """Closing stdin is the launcher's stop signal; kill only if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def driver_args(url: str) -> tuple[str, tuple[str, str] | None]:
    """A store URL split into the driver URI and its login."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{parts.port}" if parts.port else host
    auth = (unquote(parts.username or "neo4j"), unquote(parts.password)) if parts.password else None
    return urlunsplit((parts.scheme, netloc, "", "", "")), auth


def wipe(url: str) -> None:
    """Delete every node and relationship (the schema stays), so each test starts from a blank graph."""
    import neo4j

    uri, auth = driver_args(url)
    with neo4j.GraphDatabase.driver(uri, auth=auth, notifications_min_severity="OFF") as driver:
        while True:
            records, _, _ = driver.execute_query(
                "MATCH (n) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS c", database_="neo4j"
            )
            if records[0]["c"] == 0:
                return


@pytest.fixture(scope="session")
def neo4j_server_url() -> Iterator[str]:
    """Session-wide Neo4j, for suites that do not get ``neo4j_url`` from ``tests/conftest.py``."""
    with running() as url:
        yield url
