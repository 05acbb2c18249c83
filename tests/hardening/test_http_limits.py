"""Request-head limits of ``liubai serve``, against a real server process on loopback and raw sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.hardening.conftest import ROOT, free_port

LIUBAI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return sock


def _serve(tmp: Path, workers: int) -> Iterator[Served]:
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1", "LIUBAI_HTTP_HEAD_TIMEOUT_S": "1"}
    env.pop("LIUBAI_STORE", None)
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen(
        [
            *LIUBAI,
            "--store",
            f"sqlite:///{tmp / 'lineage.db'}",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--allowed-host",
            "lineage.example",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()
    served = Served(port, proc)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp / "serve.log").read_text()
        try:
            if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "liubai serve did not start within 30 s"
        time.sleep(0.1)
    try:
        yield served
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("serve1"), workers=1)


@pytest.fixture(scope="module")
def served2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("serve2"), workers=2)


def _head(port: int, *lines: str, method: str = "GET", path: str = "/healthz") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *lines, "", ""]).encode()


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded: the socket has a timeout)."""
    out = b""
    try:
        while len(out) < 1 << 20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        pass
    return out


def test_a_100_mb_header_is_cut_off_while_healthz_keeps_answering(served: Served) -> None:
    sent = 0
    failure: list[BaseException] = []
    reply = b""

    def stream() -> None:
        nonlocal sent, reply
        chunk = b"a" * 65536
        with served.connect() as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Big: " % served.port)
                while sent < 100 * 1024 * 1024:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server closed the connection: what it answered, if anything, is below
            except BaseException as exc:  # pragma: no cover - reported by the main thread
                failure.append(exc)
            reply = _read_all(sock)

    sender = threading.Thread(target=stream, daemon=True)
    sender.start()
    answers = []
    for _ in range(20):
        answers.append(httpx.get(f"{served.url}/healthz", timeout=5).status_code)
        if not sender.is_alive():
            break
    sender.join(60)
    assert not sender.is_alive() and not failure
    assert set(answers) == {200}
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 "), reply[:200]


def test_a_head_over_the_byte_cap_gets_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(_head(served.port, "X-Big: " + "b" * (70 * 1024)))
        reply = _read_all(sock)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    with served.connect() as sock:  # just under the cap is a normal request
        sock.sendall(_head(served.port, "X-Big: " + "b" * (60 * 1024), "Connection: close"))
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_too_many_headers_are_refused_with_431(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(_head(served.port, *(f"X-H{i}: v" for i in range(101))))
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"over 100 header fields" in reply


def test_only_hosts_the_server_answers_to_get_through(served: Served) -> None:
    assert httpx.get(f"{served.url}/healthz", headers={"Host": "evil.example"}).status_code == 421
    assert httpx.get(f"{served.url}/healthz", headers={"Host": "lineage.example"}).status_code == 200
    assert httpx.get(f"http://localhost:{served.port}/healthz").status_code == 200


def test_half_a_request_head_is_closed_after_the_head_timeout(served: Served) -> None:
    with served.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % served.port)
        reply = _read_all(sock)  # the socket's own 10 s timeout bounds this; LIUBAI_HTTP_HEAD_TIMEOUT_S=1
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    with served.connect() as sock:  # a connection that never sends anything is closed too, quietly
        assert _read_all(sock) == b""


def test_limits_hold_with_several_workers_and_big_bodies_still_pass(served2: Served) -> None:
    for _ in range(4):  # several connections, so more than one worker is likely asked
        with served2.connect() as sock:
            sock.sendall(_head(served2.port, *(f"X-H{i}: v" for i in range(101))))
            assert _read_all(sock).startswith(b"HTTP/1.1 431 ")
        assert httpx.get(f"{served2.url}/healthz", headers={"Host": "evil.example"}).status_code == 421
        assert httpx.get(f"{served2.url}/healthz", headers={"Host": "lineage.example"}).status_code == 200
    # A small head sent in one write with a body far over the head cap: the body is not the head.
    body = b'{"query": "{ stats { counts } }"' + b" " * (300 * 1024) + b"}"
    head = _head(
        served2.port,
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        method="POST",
        path="/graphql",
    )
    with served2.connect() as sock:
        sock.sendall(head + body)
        reply = _read_all(sock)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert b'"counts"' in reply
