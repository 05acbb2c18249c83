"""The agent never drops data silently: batches over the API's body limit, rotated log files, refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from liubai.lineage.wire import decode_batch
from tests.hardening.conftest import ROOT, agent_argv, graph_of, run_agent, shipped, status

LIMIT = 1 << 20


def _line(i: int, pad: int = 0) -> str:
    return json.dumps({"message": f"line {i} " + "x" * pad, "trace_id": f"{i:032x}"}) + "\n"


def _wait_for(pred: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_batches_over_the_api_limit_are_split_and_a_record_alone_over_it_is_a_visible_reject(
    api_factory: Any, tmp_path: Path
) -> None:
    api = api_factory(env={"LIUBAI_INGEST_MAX_BYTES": str(LIMIT)})
    logs = tmp_path / "big.jsonl"
    with open(logs, "w") as fh:
        for i in range(1, 1201):
            fh.write(_line(i, 40_000))
            if i == 600:
                fh.write(_line(0, 2_000_000))  # line 601, alone over the limit
    state = tmp_path / "st"
    run = run_agent(agent_argv(api.url, state, "--logs", str(logs)))
    assert run.returncode == 0, run.stderr
    graph = graph_of(api.store_url)
    assert graph["counts"]["LogEvent"] == 1200
    [(source, location, reason)] = graph["rejected"]
    assert (source, location) == ("file:big.jsonl", f"{logs}:601")
    assert reason.startswith("record of 20000") and reason.endswith(
        f"exceeds the server's ingest limit of {LIMIT} bytes"
    )
    final = status(state)
    assert (
        final["oversized_records"] == 1
        and final["split_batches"] > 0
        and final["ingest_limit_bytes"] == LIMIT
    )
    assert final["refused_batches"] == 0 and "1 records over the API's limit" in run.stdout
    again = run_agent(agent_argv(api.url, state, "--logs", str(logs)))
    assert again.returncode == 0 and "sent 0 batches" in again.stdout


def _rotating_writer(logs: Path, state: Path, rotate: Callable[[], None], total: int = 3000) -> None:
    """Append ``total`` lines in bursts; once the agent has shipped some, append more and rotate at once
    (so lines the agent has not read yet are in the rotated file only), then keep appending."""
    fh = open(logs, "a")
    try:
        i = 0
        while i < total:
            if i == total // 2:
                _wait_for(lambda: shipped(state) >= total // 4, "the agent to ship the first lines")
                for j in range(i + 1, i + 201):
                    fh.write(_line(j))
                fh.flush()
                i += 200
                fh.close()
                rotate()
                fh = open(logs, "a")
            for j in range(i + 1, min(i + 50, total) + 1):
                fh.write(_line(j))
            fh.flush()
            i = min(i + 50, total)
            time.sleep(0.01)
    finally:
        fh.close()


def _follow_through_rotation(api_factory: Any, tmp_path: Path, rotate: Callable[[Path], None]) -> None:
    api = api_factory()
    logs = tmp_path / "app.jsonl"
    logs.touch()
    state = tmp_path / "st"
    proc = subprocess.Popen(
        agent_argv(
            api.url, state, "--logs", str(logs), extra=("--follow", "--poll", "0.1", "--batch-size", "100")
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _rotating_writer(logs, state, lambda: rotate(logs))
        _wait_for(lambda: shipped(state) >= 3000 or proc.poll() is not None, "the agent to ship 3000 lines")
        time.sleep(0.3)  # a few more passes: nothing may be sent twice
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert shipped(state) == 3000, err  # every line read once
    graph = graph_of(api.store_url)
    ids = {node_id for node_id, _, _ in graph["nodes"] if node_id.startswith("log:")}
    messages = {json.loads(props)["message"] for node_id, props, _ in graph["nodes"] if node_id in ids}
    assert messages == {f"line {i} " for i in range(1, 3001)} and graph["rejected"] == []


def test_copytruncate_rotation_under_a_following_agent_loses_no_line(
    api_factory: Any, tmp_path: Path
) -> None:
    def copytruncate(logs: Path) -> None:
        shutil.copyfile(logs, logs.with_name(logs.name + ".1"))
        os.truncate(logs, 0)

    _follow_through_rotation(api_factory, tmp_path, copytruncate)


def test_rename_rotation_under_a_following_agent_loses_no_line(api_factory: Any, tmp_path: Path) -> None:
    def rename(logs: Path) -> None:
        logs.rename(logs.with_name(logs.name + ".1"))
        logs.touch()

    _follow_through_rotation(api_factory, tmp_path, rename)


def test_a_batch_spooled_before_the_api_said_its_limit_is_split_when_replayed(
    api_factory: Any, tmp_path: Path
) -> None:
    api = api_factory(env={"LIUBAI_INGEST_MAX_BYTES": str(256 * 1024)}, start=False)
    logs = tmp_path / "app.jsonl"
    logs.write_text("".join(_line(i, 4000) for i in range(1, 301)))
    state = tmp_path / "st"
    argv = agent_argv(api.url, state, "--logs", str(logs), extra=("--send-deadline", "0.2", "--poll", "0.1"))
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: status(state).get("spool_pending", 0) > 0, "the agent to spool")
        api.start()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert graph_of(api.store_url)["counts"]["LogEvent"] == 300
    final = status(state)
    assert final["spool_pending"] == 0 and final["refused_batches"] == 0 and final["split_batches"] > 0


class _Refusing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {"detail": {"code": "BAD_BATCH", "message": "refused batch: body.nodes[0].id: bad"}}
        )
        self.send_response(422)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_batch_refused_for_good_is_kept_in_the_dead_letter_directory_and_counted(tmp_path: Path) -> None:
    import threading

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        logs = tmp_path / "app.jsonl"
        logs.write_text("".join(_line(i) for i in range(1, 8)))
        state = tmp_path / "st"
        run = run_agent(agent_argv(f"http://127.0.0.1:{httpd.server_address[1]}", state, "--logs", str(logs)))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert status(state)["refused_batches"] == 1
    [kept] = (state / "spool" / "dead-letter").glob("*.batch")
    assert len(decode_batch(kept.read_bytes()).batch.nodes) >= 7
    assert "body.nodes[0].id: bad" in kept.with_suffix(".reason").read_text()


def test_a_state_file_of_an_unknown_version_is_refused_in_one_line(tmp_path: Path) -> None:
    logs = tmp_path / "app.jsonl"
    logs.write_text(_line(1))
    state = tmp_path / "st"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"version": 9, "positions": {}}))
    run = run_agent(agent_argv("http://127.0.0.1:9", state, "--logs", str(logs), extra=("--deadline", "1")))
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 1 and len(lines) == 1 and "version 9" in lines[0] and "move it away" in lines[0]


@pytest.mark.parametrize("records", [0, 3])
def test_a_version_1_state_file_resumes_after_its_record_count(
    api_factory: Any, tmp_path: Path, records: int
) -> None:
    api = api_factory()
    logs = tmp_path / "app.jsonl"
    logs.write_text("".join(_line(i) for i in range(1, 8)))
    state = tmp_path / "st"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"positions": {f"logs:{logs}": records}}))
    run = run_agent(agent_argv(api.url, state, "--logs", str(logs)))
    assert run.returncode == 0, run.stderr
    assert graph_of(api.store_url)["counts"]["LogEvent"] == 7 - records
    assert status(state)["positions"][f"logs:{logs}"]["offset"] == logs.stat().st_size
