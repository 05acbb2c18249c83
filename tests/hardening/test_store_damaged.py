"""A damaged SQLite store gives one clear line naming the file in every command, and fails /healthz.

Three kinds of damage a disk, a bad copy or another program can leave: the header overwritten (the file
is no database any more), the file cut short, and one page of node rows overwritten while the schema and
indexes stay intact (the store opens; reads of those rows fail).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app
from liubai.lineage.model import Edge, EdgeKind, GraphBatch, Node, log_node_id, trace_node_id
from liubai.lineage.store import open_store
from liubai.lineage.store.base import StoreDamaged
from tests.gitrepo import GitRepoBuilder

runner = CliRunner()
LINES = 3000
FIRST = log_node_id("file:app.jsonl", "00000")


def _overwrite(path: Path, offset: int, length: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xa5" * length)


def _page_size(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:18], "big")


def _header(path: Path) -> None:
    _overwrite(path, 0, 100)


def _truncated(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)


def _first_rows(path: Path) -> None:
    """The page holding the first node's row (its message text is stored nowhere else)."""
    size = _page_size(path)
    at = path.read_bytes().index(b"line 0 x")
    _overwrite(path, at // size * size, size)


DAMAGE: dict[str, Callable[[Path], None]] = {"header": _header, "truncated": _truncated, "rows": _first_rows}


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("damaged") / "healthy.db"
    store = open_store(str(path))
    nodes = [
        Node.of(log_node_id("file:app.jsonl", f"{i:05d}"), {"message": f"line {i} " + "x" * 150})
        for i in range(LINES)
    ]
    edges = [Edge(n.id, EdgeKind.IN_TRACE, trace_node_id(f"{i % 50 + 1:032x}")) for i, n in enumerate(nodes)]
    store.upsert(GraphBatch(nodes=nodes, edges=edges))
    store.close()
    assert not Path(f"{path}-wal").exists()
    return path


def _damaged(healthy: Path, tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.db"
    shutil.copy(healthy, path)
    DAMAGE[kind](path)
    return path


def _commands(tmp_path: Path) -> dict[str, list[str]]:
    logs = tmp_path / "app.jsonl"
    logs.write_text('{"message": "hello", "time": "2026-01-01T00:00:00Z"}\n')
    builder = GitRepoBuilder(tmp_path / "repo")
    builder.write("a.txt", "a\n")
    builder.commit("first")
    repo = builder.path
    return {
        "lineage": ["lineage", FIRST],
        "search": ["search", "line"],
        "path": ["path", FIRST, trace_node_id(f"{1:032x}")],
        "stats": ["stats"],
        "rejected": ["rejected"],
        "export": ["export", "--node", FIRST, "--output", str(tmp_path / "out.json")],
        "ingest logs": ["ingest", "logs", str(logs)],
        "ingest git": ["ingest", "git", str(repo)],
        "serve": ["serve", "--port", "1"],
    }


def _one_line(store: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> str:
    started: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: started.append(a))  # never listen in this test
    result = runner.invoke(
        app, ["--store", f"sqlite:///{store}", *args], env={"COLUMNS": "400", "NO_COLOR": "1"}
    )
    assert not started, "serve started on a damaged store"
    assert result.exit_code != 0, f"{args}: exit 0, out {result.stdout[-300:]!r}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{args}: {result.stderr!r}"
    return lines[0]


@pytest.mark.parametrize("kind", ["header", "truncated"])
def test_every_command_on_a_damaged_file_says_so_in_one_line(
    healthy: Path, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _damaged(healthy, tmp_path, kind)
    commands = _commands(tmp_path)
    commands["migrate"] = [
        "migrate",
        "--from",
        f"sqlite:///{store}",
        "--to",
        f"sqlite:///{tmp_path / 'new.db'}",
    ]
    for name, args in commands.items():
        line = _one_line(store, args, monkeypatch)
        assert f"store {store} is damaged: " in line and "restore it from a backup" in line, f"{name}: {line}"


def test_reads_of_damaged_rows_say_so_in_one_line(
    healthy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _damaged(healthy, tmp_path, "rows")
    commands = _commands(tmp_path)
    for name in ("lineage", "stats", "export", "serve"):
        line = _one_line(store, commands[name], monkeypatch)
        assert f"store {store} is damaged: database disk image is malformed" in line, f"{name}: {line}"


def test_healthz_is_unhealthy_when_the_store_cannot_be_read(healthy: Path, tmp_path: Path) -> None:
    store = _damaged(healthy, tmp_path, "rows")
    with TestClient(create_app(f"sqlite:///{store}")) as client:
        resp = client.get("/healthz")
    assert resp.status_code == 503
    assert "is damaged: database disk image is malformed" in resp.json()["error"]
    with TestClient(create_app(f"sqlite:///{healthy}")) as client:
        assert client.get("/healthz").status_code == 200


def test_damage_is_its_own_store_error(healthy: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreDamaged, match="file is not a database"):
        open_store(str(_damaged(healthy, tmp_path, "header")))
    store = open_store(str(_damaged(healthy, tmp_path, "rows")))
    try:
        with pytest.raises(StoreDamaged, match="malformed"):
            store.probe()
    finally:
        store.close()
