"""Real processes on loopback: the API under uvicorn, the agent as its own process, real log files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

from liubai.api.limits import LimitSettings
from liubai.lineage.store import LineageStore, open_store
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def write_logs(path: Path, count: int, *, bad_every: int = 97) -> None:
    """JSON lines with a trace id and an audit id each; every ``bad_every``-th line is not JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(1, count + 1):
            if i % bad_every == 0:
                fh.write(f"{{not json {i}\n")
                continue
            sha = f"{i:040x}"
            fh.write(
                json.dumps(
                    {
                        "time": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z",
                        "level": "info",
                        "service": "deploy",
                        "message": f'step {i}: it\'s "done" {{ok}} MATCH (n) DELETE n; DROP TABLE nodes --',
                        "trace_id": f"{i:032x}",
                        "x-gitops-audit-id": f"git-sha256:{sha}|trace:{i:032x}",
                    }
                )
                + "\n"
            )


@dataclass
class ApiServer:
    """``uvicorn --factory api.app:create_app_from_env`` on a free loopback port; stop/start at will."""

    store_url: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                PY,
                "-m",
                "uvicorn",
                "--factory",
                "liubai.api.app:create_app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **self.env, "LIUBAI_STORE": self.store_url},
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"API exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("API did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def api_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[ApiServer] = []

    def make(name: str = "api", env: dict[str, str] | None = None, start: bool = True) -> ApiServer:
        server = ApiServer(f"sqlite:///{tmp_path / (name + '.db')}", env or {}, tmp_path / f"{name}.log")
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for s in servers:
        s.stop()


def agent_argv(server: str, state: Path, *inputs: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        PY,
        "-m",
        "liubai.api.cli.main",
        "agent",
        "--server",
        server,
        "--state-dir",
        str(state),
        *inputs,
        *extra,
    ]


def run_agent(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def status(state: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((state / "status.json").read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def shipped(state: Path) -> int:
    """Records the agent counts as taken by the API or its spool, over all its sources."""
    return sum(status(state).get("shipped_records", {}).values())


def graph_of(store_url: str) -> dict[str, Any]:
    """Everything a user can see in a store, in a comparable form (ingest bookkeeping left out)."""
    store: LineageStore = open_store(store_url)
    try:
        nodes = sorted(
            (n.id, json.dumps(n.props, sort_keys=True), n.placeholder) for b in store.iter_nodes() for n in b
        )
        edges = sorted(
            (e.src, e.kind.value, e.dst, json.dumps(e.props, sort_keys=True))
            for b in store.iter_edges()
            for e in b
        )
        rejected = sorted((r.source, r.location, r.reason) for r in store.rejected(first=100_000).records)
        counts = store.counts()
    finally:
        store.close()
    return {"nodes": nodes, "edges": edges, "rejected": rejected, "counts": counts}


def limited_client(store: LineageStore, settings: LimitSettings) -> TestClient:
    """The GraphQL API over ``store`` with its limits set to ``settings`` (the schema ``liubai serve`` builds,
    other limits aside)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from strawberry.fastapi import GraphQLRouter

    from liubai.api.schema import build_schema
    from liubai.api.schema_context import ApiContext

    async def context() -> ApiContext:
        return ApiContext(lambda: store)

    app = FastAPI()
    app.include_router(GraphQLRouter(build_schema(settings), context_getter=context), prefix="/graphql")
    return TestClient(app)
