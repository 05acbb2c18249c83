"""The agent's pluggable sources give the same graph as the direct ingest commands, and fail clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests._real import missing
from tests.hardening.conftest import ROOT, agent_argv, graph_of, run_agent, shipped, status, write_logs

LIUBAI = str(Path(sys.executable).with_name("liubai"))


def _liubai(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIUBAI, *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)


def test_logs_shipped_by_the_agent_equal_a_direct_ingest(api_factory: Any, tmp_path: Path) -> None:
    logs = tmp_path / "app.jsonl"
    write_logs(logs, 300, bad_every=50)
    direct = f"sqlite:///{tmp_path / 'direct.db'}"
    ingested = _liubai("--store", direct, "ingest", "logs", str(logs))
    if ingested.returncode != 0:
        pytest.fail(f"direct ingest failed: {ingested.stderr}")
    api = api_factory()
    shipped = run_agent(
        agent_argv(api.url, tmp_path / "st", "--logs", str(logs), extra=("--batch-size", "7"))
    )
    assert shipped.returncode == 0, shipped.stderr
    assert graph_of(api.store_url) == graph_of(direct)
    # a second run has nothing new to send: positions are kept
    again = run_agent(agent_argv(api.url, tmp_path / "st", "--logs", str(logs)))
    assert again.returncode == 0 and "sent 0 batches" in again.stdout


def test_a_traced_run_recording_shipped_by_the_agent_equals_a_direct_ingest(
    api_factory: Any, tmp_path: Path
) -> None:
    from liubai.ebpf.loader import preflight

    problems = preflight()
    if problems:
        missing("ebpf", "; ".join(problems))
    recording = tmp_path / "run.events"
    traced = _liubai(
        "--store",
        f"sqlite:///{tmp_path / 'unused.db'}",
        "trace",
        "--record",
        str(recording),
        "--no-ingest",
        "--",
        "/bin/sh",
        "-c",
        "cat /etc/hostname >/dev/null; ls / >/dev/null",
    )
    assert traced.returncode == 0, traced.stderr
    direct = f"sqlite:///{tmp_path / 'direct.db'}"
    assert _liubai("--store", direct, "ingest", "events", str(recording)).returncode == 0
    api = api_factory()
    shipped = run_agent(
        agent_argv(api.url, tmp_path / "st", "--events", str(recording), extra=("--batch-size", "5"))
    )
    assert shipped.returncode == 0, shipped.stderr
    graph = graph_of(api.store_url)
    assert graph["counts"]["Process"] >= 3  # sh, cat, ls
    assert graph == graph_of(direct)


def test_missing_input_bad_token_and_nothing_to_do_are_one_line_errors(
    api_factory: Any, tmp_path: Path
) -> None:
    none = run_agent(agent_argv("http://127.0.0.1:9", tmp_path / "a"))
    assert none.returncode == 1 and "nothing to ship" in none.stderr
    absent = run_agent(
        agent_argv("http://127.0.0.1:9", tmp_path / "a", "--logs", str(tmp_path / "nope.jsonl"))
    )
    assert absent.returncode == 1 and "does not exist" in absent.stderr and "Traceback" not in absent.stderr

    api = api_factory("authed", env={"LIUBAI_AUTH": "1", "LIUBAI_TOKENS": str(tmp_path / "tokens.db")})
    logs = tmp_path / "x.jsonl"
    write_logs(logs, 20)
    denied = run_agent(
        agent_argv(api.url, tmp_path / "b", "--logs", str(logs), extra=("--token", "lb_bad_token"))
    )
    assert denied.returncode == 1 and "refused the agent's token (401)" in denied.stderr
    assert "Traceback" not in denied.stderr
    assert status(tmp_path / "b").get("positions", {}) == {}  # nothing counted as shipped

    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "liubai.api.cli.main",
            "token",
            "create",
            "--scope",
            "ingest",
            "--name",
            "node",
            "--tokens",
            str(tmp_path / "tokens.db"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token_file = tmp_path / "token"
    token_file.write_text(made.stdout.strip().splitlines()[-1] + "\n")
    ok = run_agent(
        agent_argv(api.url, tmp_path / "b", "--logs", str(logs), extra=("--token-file", str(token_file)))
    )
    assert ok.returncode == 0, ok.stderr
    assert graph_of(api.store_url)["counts"]["LogEvent"] == 20 - 20 // 97


def test_follow_ships_appended_lines_and_waits_for_a_half_written_one(
    api_factory: Any, tmp_path: Path
) -> None:
    import json
    import signal
    import time

    api = api_factory()
    logs = tmp_path / "live.jsonl"
    line = lambda i: json.dumps({"message": f"live {i}", "trace_id": f"{i:032x}"}) + "\n"  # noqa: E731
    logs.write_text("".join(line(i) for i in range(1, 11)))
    state = tmp_path / "st"
    proc = subprocess.Popen(
        agent_argv(api.url, state, "--logs", str(logs), extra=("--follow", "--poll", "0.1")),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def wait(n: int) -> None:
        deadline = time.monotonic() + 30
        while shipped(state) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shipped(state) == n

    try:
        wait(10)
        with open(logs, "a") as fh:
            half = line(11)
            fh.write(half[:15])
            fh.flush()
            time.sleep(1.0)  # several passes see the half line
            assert shipped(state) == 10
            fh.write(half[15:] + "".join(line(i) for i in range(12, 17)))
        wait(16)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    graph = graph_of(api.store_url)
    assert graph["counts"]["LogEvent"] == 16 and graph["rejected"] == []


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ("http://[::1", "--server 'http://[::1' is not a URL"),
        ("garbage", "--server 'garbage' is not an http(s) URL"),
        ("http://node:pw-3b9f@[::1", "--server 'http://node:***@[::1' is not a URL"),
        ("http://node:pw-3b9f/x@10.0.0.5:8000", "--server 'http://node:***@10.0.0.5:8000' is not a URL"),
        ("http://node:pw-3b9f?x@10.0.0.5:8000", "--server 'http://node:***@10.0.0.5:8000' is not a URL"),
    ],
)
def test_a_bad_server_url_is_one_line_without_its_password(tmp_path: Path, server: str, says: str) -> None:
    logs = tmp_path / "x.jsonl"
    write_logs(logs, 3)
    run = run_agent(agent_argv(server, tmp_path / "st", "--logs", str(logs), extra=("--deadline", "1")))
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.returncode == 1 and len(lines) == 1 and says in lines[0], run.stderr
    assert "pw-3b9f" not in run.stderr


def test_an_unreadable_token_file_and_a_busy_or_impossible_metrics_port_are_one_line(tmp_path: Path) -> None:
    import socket

    logs = tmp_path / "x.jsonl"
    write_logs(logs, 3)
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\x00")
    bad = run_agent(agent_argv("http://127.0.0.1:9", tmp_path / "st", "--logs", str(logs),
                               extra=("--token-file", str(token), "--deadline", "1")))  # fmt: skip
    assert bad.returncode == 1 and "--token-file" in bad.stderr and "not UTF-8" in bad.stderr
    assert len([ln for ln in bad.stderr.splitlines() if ln.strip()]) == 1, bad.stderr

    huge = run_agent(agent_argv("http://127.0.0.1:9", tmp_path / "st", "--logs", str(logs),
                                extra=("--metrics-port", "99999", "--deadline", "1")))  # fmt: skip
    assert huge.returncode == 2 and "--metrics-port" in huge.stderr and "Traceback" not in huge.stderr

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run_agent(agent_argv("http://127.0.0.1:9", tmp_path / "st", "--logs", str(logs),
                                     extra=("--metrics-port", str(port), "--deadline", "1")))  # fmt: skip
    lines = [ln for ln in taken.stderr.splitlines() if ln.strip()]
    assert taken.returncode == 1 and len(lines) == 1, taken.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in lines[0]


def test_a_server_answering_html_keeps_the_batch_spooled_without_a_traceback(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Html(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html>welcome</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        logs = tmp_path / "x.jsonl"
        write_logs(logs, 3)
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        run = run_agent(agent_argv(url, tmp_path / "st", "--logs", str(logs),
                                   extra=("--deadline", "1", "--send-deadline", "0.2")))  # fmt: skip
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert "without the API's JSON answer" in run.stderr
    assert status(tmp_path / "st")["spool_pending"] == 1
