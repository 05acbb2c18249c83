"""``liubai serve`` as a user runs it, in a child process on a free loopback port, for the tests that drive
it over HTTP (the browser, the OTLP exporters)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = ["free_port", "liubai_command", "serving"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def liubai_command() -> list[str]:
    script = Path(sys.executable).with_name("liubai")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


@contextlib.contextmanager
def serving(
    store_url: str, port: int, log_path: Path, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run ``liubai serve`` over ``store_url`` on a loopback port until the block ends; yields its base URL.
    ``env`` adds to the environment (e.g. ``LIUBAI_AUTH``), ``extra`` to serve's options (e.g. ``--auth``)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *liubai_command(),
                "--store",
                store_url,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"liubai serve exited with {proc.returncode}; see {log_path}")
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"liubai serve did not answer /healthz within 60 s; see {log_path}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
