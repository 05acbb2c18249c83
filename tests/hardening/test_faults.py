"""Fault tests with real processes: the agent killed with SIGKILL, the API stopped mid-ingest, a full spool.

Each compares the graph in the store with the graph an uninterrupted agent run produced from the same
input: equal node, edge and rejected-record sets mean nothing was lost and nothing was doubled.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._real import missing
from tests.hardening.conftest import (
    ROOT,
    ApiServer,
    agent_argv,
    free_port,
    graph_of,
    run_agent,
    shipped,
    status,
    write_logs,
)

LINES = 4000
BAD_EVERY = 97
GOOD = LINES - LINES // BAD_EVERY


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "deploy.jsonl"
    write_logs(path, LINES, bad_every=BAD_EVERY)
    return path


@pytest.fixture(scope="module")
def reference(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The graph of one uninterrupted agent run over ``logs`` (computed once for the module)."""
    tmp = tmp_path_factory.mktemp("reference")
    api = ApiServer(f"sqlite:///{tmp / 'ref.db'}", {}, tmp / "liubai.api.log")
    api.start()
    try:
        done = run_agent(
            agent_argv(api.url, tmp / "state", "--logs", str(logs), extra=("--batch-size", "25"))
        )
        assert done.returncode == 0, done.stderr
        graph = graph_of(api.store_url)
    finally:
        api.stop()
    assert graph["counts"]["LogEvent"] == GOOD
    assert len(graph["rejected"]) == LINES // BAD_EVERY
    yield graph


def _wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_kill_9_mid_stream_then_restart_equals_uninterrupted_run(
    api_factory: Any, logs: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    api = api_factory("killed")
    state = tmp_path / "state"
    argv = agent_argv(api.url, state, "--logs", str(logs), extra=("--batch-size", "10"))
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: shipped(state) >= 500, 60, "the agent to ship 500 records")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert shipped(state) < LINES, (
        "the agent finished before it was killed; the test did not interrupt anything"
    )
    assert graph_of(api.store_url)["counts"]["LogEvent"] < GOOD

    again = run_agent(argv)
    assert again.returncode == 0, again.stderr
    assert graph_of(api.store_url) == reference
    # At most the batch in flight at the kill is sent twice, and the API recognised it by its id.
    assert status(state)["duplicate_batches"] <= 1


def _api_outage(
    api_factory: Any, logs: Path, reference: dict[str, Any], tmp_path: Path, outage_s: float
) -> None:
    api = api_factory("outage")
    state = tmp_path / "state"
    argv = agent_argv(
        api.url,
        state,
        "--logs",
        str(logs),
        extra=("--batch-size", "10", "--send-deadline", "0.5", "--poll", "0.2", "--name", "outage-agent"),
    )
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: shipped(state) >= 200, 60, "the agent to ship 200 records")
        api.stop()
        _wait_for(lambda: status(state).get("spooled_batches", 0) > 0, 30, "the agent to spool")
        time.sleep(outage_s)
        assert proc.poll() is None, "the agent gave up while the API was down"
        api.start()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    final = status(state)
    assert final["spooled_batches"] > 0 and final["replayed_batches"] >= final["spooled_batches"]
    assert final["spool_pending"] == 0 and final["dropped_batches"] == 0
    assert "spooling batches" in err
    assert graph_of(api.store_url) == reference


def test_api_down_for_5s_agent_spools_then_graph_is_complete(
    api_factory: Any, logs: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    _api_outage(api_factory, logs, reference, tmp_path, outage_s=5)


@pytest.mark.slow
def test_api_down_for_30s_agent_spools_then_graph_is_complete(
    api_factory: Any, logs: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    _api_outage(api_factory, logs, reference, tmp_path, outage_s=30)


def test_spool_over_its_byte_limit_warns_counts_drops_and_loses_nothing_once_the_api_is_back(
    api_factory: Any, logs: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    api = api_factory("late", start=False)  # nothing listens yet
    state = tmp_path / "state"
    extra = ("--batch-size", "25", "--send-deadline", "0.3", "--poll", "0.1", "--name", "small-spool")
    first = run_agent(
        agent_argv(
            api.url,
            state,
            "--logs",
            str(logs),
            extra=(*extra, "--spool-max-bytes", "200000", "--deadline", "2"),
        )
    )
    assert first.returncode == 1
    assert "Traceback" not in first.stderr
    assert re.search(r"spool .* is full", first.stderr), first.stderr
    dropped = status(state)["dropped_batches"]
    assert dropped > 0 and status(state)["spool_bytes"] <= 200000

    api.start()
    second = run_agent(agent_argv(api.url, state, "--logs", str(logs), extra=extra))
    assert second.returncode == 0, second.stderr
    assert graph_of(api.store_url) == reference
    metrics = httpx.get(f"{api.url}/metrics").text
    assert f'liubai_agent_dropped_batches{{agent="small-spool"}} {float(dropped)}' in metrics


def test_spool_on_a_full_disk_warns_counts_drops_and_does_not_crash(
    api_factory: Any, logs: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        missing("tmpfs", "mounting a small tmpfs needs root")
    disk = tmp_path / "tiny"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        missing("tmpfs", f"mount failed: {mounted.stderr.strip()}")
    try:
        port = free_port()  # nothing listens there: every batch must go to the spool
        run = run_agent(
            agent_argv(
                f"http://127.0.0.1:{port}",
                disk / "state",
                "--logs",
                str(logs),
                extra=("--batch-size", "25", "--send-deadline", "0.2", "--poll", "0.1", "--deadline", "3"),
            )
        )
        assert run.returncode == 1
        assert "Traceback" not in run.stderr
        assert "disk holding spool" in run.stderr and "is full" in run.stderr, run.stderr
        assert "dropped" in run.stdout
        final = status(disk / "state")
        assert final["dropped_batches"] > 0 and final["spooled_batches"] > 0
    finally:
        subprocess.run(["umount", str(disk)], check=False)
