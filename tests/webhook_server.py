"""A real ``liubai webhook`` process for tests: a self-signed certificate for 127.0.0.1, a free port, and
the server started through the CLI as a user would start it."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from liubai.collector.admission.selfsigned import self_signed
from tests.serving import free_port


@dataclass(frozen=True, slots=True)
class Webhook:
    url: str  # https://127.0.0.1:PORT
    cert: Path
    key: Path
    log: Path
    client_cert: tuple[Path, Path] | None = None  # what the client presents, where --client-ca is set

    def client(self) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.cert))
        if self.client_cert is not None:
            context.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return httpx.Client(base_url=self.url, verify=context, timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_webhook(
    directory: Path,
    store_url: str,
    *args: str,
    env: dict[str, str] | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> Iterator[Webhook]:
    """``liubai --store STORE webhook --cert … --key … --port P [args]`` until the block ends (SIGTERM, so
    queued records are written as on a real shutdown)."""
    cert, key = self_signed(directory)
    port = free_port()
    log = directory / f"webhook-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "liubai.api.cli.main",
        "--store",
        store_url,
        "webhook",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--port",
        str(port),
        *args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "300", **(env or {})},
            start_new_session=True,
        )
    hook = Webhook(f"https://127.0.0.1:{port}", cert, key, log, client_cert)
    try:
        _wait_healthy(hook, proc)
        yield hook
    finally:
        stop(proc)


def _wait_healthy(hook: Webhook, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with hook.client() as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"liubai webhook exited {proc.returncode}: {hook.output()[-2000:]}")
            try:
                if client.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"liubai webhook did not answer in {timeout:.0f} s: {hook.output()[-2000:]}"
                )
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
