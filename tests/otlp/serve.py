"""``liubai serve`` as a user runs it, on a free loopback port, for OTLP exporters to send to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

LIUBAI = [sys.executable, "-c", "from liubai.api.cli.main import main; main()"]


@dataclass(frozen=True)
class Served:
    base: str
    store_url: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def liubai_serve(
    store_url: str, cwd: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """A ``liubai serve`` process over ``store_url`` until the block ends; it must come up within 30 s."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("LIUBAI_STORE", None)
    proc = subprocess.Popen(
        [*LIUBAI, "--store", store_url, "serve", "--port", str(port), "--log-level", "warning", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"liubai serve exited early ({proc.returncode}): {proc.communicate()[1]}")
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"liubai serve did not answer on {base} within 30 s") from None
                time.sleep(0.1)
        yield Served(base, store_url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
