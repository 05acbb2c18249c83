"""Exactly-once ingest across worker processes: ``liubai serve --workers 2`` receiving one batch from many
clients at once applies it once, whichever worker each copy reaches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from liubai.lineage.join import join_records
from liubai.lineage.model import GraphBatch
from liubai.lineage.records import LogRecord
from liubai.lineage.store import open_store
from liubai.lineage.wire import encode_batch
from tests.hardening.conftest import free_port

LIUBAI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]
CLIENTS = 12
ROUNDS = 6  # a distinct batch each: every round is another chance for two workers to overlap


def _batch(round_: int) -> GraphBatch:
    """Big enough that applying it takes a while: the window two workers would both pass through."""
    return join_records(
        LogRecord(
            f"app{round_}",
            f"r{i}",
            f"2026-01-01T00:00:{i % 60:02d}Z",
            "INFO",
            "api",
            f"line {i}",
            trace_id=f"{i % 50:032x}",
        )
        for i in range(3000)
    )


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(150):
        if proc.poll() is not None:
            pytest.fail(f"liubai serve exited early ({proc.returncode})")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        threading.Event().wait(0.2)
    pytest.fail(f"liubai serve did not answer on {base}")


def test_one_batch_sent_by_many_clients_to_two_workers_is_applied_once(tmp_path: Path) -> None:
    batches = [_batch(r) for r in range(ROUNDS)]
    expected = open_store(f"sqlite:///{tmp_path / 'once.db'}")
    for batch in batches:
        expected.upsert(batch)
    want = expected.counts()
    expected.close()

    store_url = f"sqlite:///{tmp_path / 'served.db'}"
    open_store(store_url).close()  # created before the workers race to create it
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("LIUBAI_STORE", "LIUBAI_AUTH")}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [
            *LIUBAI,
            "--store",
            store_url,
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=log,
        env=env,
        cwd=tmp_path,
    )
    log.close()
    rounds: list[list[str]] = []
    try:
        _wait_healthy(base, proc)
        for batch in batches:
            _, envelope = encode_batch(batch, "agent")
            rounds.append(_send_at_once(base, envelope))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for statuses in rounds:
        assert sorted(statuses) == ["applied"] + ["duplicate"] * (CLIENTS - 1), statuses
    served = open_store(store_url)
    try:
        assert served.counts() == want
    finally:
        served.close()


def _send_at_once(base: str, envelope: bytes) -> list[str]:
    """POST ``envelope`` from ``CLIENTS`` connections released together; the status each got."""
    statuses: list[str] = []
    start = threading.Barrier(CLIENTS, timeout=60)

    def send() -> None:
        with httpx.Client(timeout=60) as client:
            client.get(f"{base}/healthz")  # connect first, so the copies spread over both workers
            start.wait()
            answer = client.post(
                f"{base}/v1/ingest", content=envelope, headers={"Content-Type": "application/json"}
            )
            statuses.append(
                answer.json().get("status", answer.text) if answer.status_code == 200 else answer.text
            )

    threads = [threading.Thread(target=send) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return statuses
