"""A store on read-only media (a real read-only bind mount) answers every read and refuses writes in
one line. Both shapes a copied store comes in: closed cleanly (no -wal) and copied while open (its
-wal and -shm beside it, recent writes only in the -wal)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app
from liubai.lineage.model import Edge, EdgeKind, GraphBatch, Node, log_node_id, trace_node_id
from liubai.lineage.store import open_store
from tests.gitrepo import GitRepoBuilder

runner = CliRunner()
TRACE = trace_node_id(f"{7:032x}")
OLD, NEW = log_node_id("file:app.jsonl", "1"), log_node_id("file:app.jsonl", "2")


@contextmanager
def _read_only(src: Path, dst: Path) -> Iterator[Path]:
    dst.mkdir()
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(src), str(dst)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here (needs root): {done.stderr.strip()}")
    try:
        yield dst
    finally:
        if subprocess.run(["umount", str(dst)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(dst)], check=True)


def _batch(node: str, message: str) -> GraphBatch:
    return GraphBatch(
        nodes=[Node.of(node, {"message": message})], edges=[Edge(node, EdgeKind.IN_TRACE, TRACE)]
    )


@pytest.fixture(params=["closed", "open"])
def media(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The store file on a read-only mount: written by a store closed before the copy, or copied with
    its -wal and -shm while the writing store is still open (the newest line is only in the -wal)."""
    src = tmp_path / "src"
    src.mkdir()
    store = open_store(str(tmp_path / "lineage.db"))
    store.upsert(_batch(OLD, "first words"))
    store.upsert(_batch(NEW, "newest words"))
    if request.param == "closed":
        store.close()
    names = ["lineage.db", "lineage.db-wal", "lineage.db-shm"]
    if request.param == "open":
        assert all((tmp_path / n).exists() for n in names)
    for name in names:
        if (tmp_path / name).exists():
            shutil.copy(tmp_path / name, src / name)
    try:
        with _read_only(src, tmp_path / "ro") as ro:
            yield ro / "lineage.db"
    finally:
        store.close()


def _run(db: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["--store", f"sqlite:///{db}", *args], env={"COLUMNS": "400", "NO_COLOR": "1"}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.stdout, result.stderr


def test_every_read_command_works_on_read_only_media(media: Path, tmp_path: Path) -> None:
    for args, shown in [
        (("lineage", TRACE, "--direction", "both"), NEW),
        (("search", "newest"), NEW),
        (("path", OLD, NEW), NEW),
        (("stats",), "LogEvent"),
        (("rejected",), ""),
    ]:
        code, out, err = _run(media, *args)
        assert code == 0, f"{args}: {err}"
        assert shown in out, f"{args}: {out}"
    code, _, err = _run(media, "export", "--node", TRACE, "--output", str(tmp_path / "out.json"))
    assert code == 0, err
    assert NEW in (tmp_path / "out.json").read_text()


def test_the_api_serves_a_read_only_store(media: Path) -> None:
    with TestClient(create_app(f"sqlite:///{media}")) as client:
        assert client.get("/healthz").status_code == 200
        query = '{ search(text: "newest") { edges { node { id } } } lineage(from: "%s", direction: BOTH) { nodes { id } } }'
        answer = client.post("/graphql", json={"query": query % TRACE}).json()
        assert "errors" not in answer, answer
        assert answer["data"]["search"]["edges"][0]["node"]["id"] == NEW
        assert {n["id"] for n in answer["data"]["lineage"]["nodes"]} == {TRACE, OLD, NEW}
        resp = client.get("/export", params={"node": TRACE})
        assert resp.status_code == 200 and NEW in resp.text


def test_writes_to_a_read_only_store_are_refused_in_one_line(media: Path, tmp_path: Path) -> None:
    logs = tmp_path / "more.jsonl"
    logs.write_text('{"message": "more", "time": "2026-01-01T00:00:00Z"}\n')
    builder = GitRepoBuilder(tmp_path / "repo")
    builder.write("a.txt", "a\n")
    builder.commit("first")
    repo = builder.path
    for args in (
        ("ingest", "logs", str(logs)),
        ("ingest", "git", str(repo)),
        ("migrate", "--from", f"sqlite:///{tmp_path / 'lineage.db'}", "--to", f"sqlite:///{media}"),
    ):
        code, _, err = _run(media, *args)
        assert code != 0
        errors = [
            line for line in err.splitlines() if line.startswith("error:")
        ]  # migrate shows progress too
        assert len(errors) == 1 and f"store {media} is read-only" in errors[0], f"{args}: {err}"
        assert "Traceback" not in err and "run it again" not in err
