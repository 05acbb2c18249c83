"""Evidence provenance: what an ``ingest``-scoped token can and cannot do to facts other writers own.

Through the real app with auth on, a real SQLite store, a real git repository and the real CLI
(``liubai ingest git``, ``liubai export --sign``, ``liubai verify``).
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.auth import AuthSettings
from liubai.api.cli.main import app as cli
from liubai.collector.git import repo_identity
from liubai.lineage.model import EdgeKind, GraphBatch, commit_node_id, repo_node_id
from liubai.lineage.store import LineageStore, open_store
from liubai.lineage.wire import encode_batch
from tests.gitrepo import GitRepoBuilder

runner = CliRunner()
FORGED = {"author": "Mallory", "subject": "forged: disable the audit hook"}
FORGER = "token:ingest-user"  # the writer the API records for the ingest token below


@dataclass
class World:
    store: LineageStore
    store_url: str
    client: TestClient
    tokens: dict[str, str]
    repo: GitRepoBuilder
    shas: list[str]
    cache: Path

    def ingest_git(self) -> str:
        return _cli(self.store_url, "ingest", "git", str(self.repo.path), "--cache-dir", str(self.cache))

    def post(self, batch: GraphBatch, source: str = "agent") -> Any:
        return self.client.post(
            "/v1/ingest",
            content=encode_batch(batch, source)[1],
            headers={"Authorization": f"Bearer {self.tokens['ingest']}", "Content-Type": "application/json"},
        )

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.tokens['read']}"},
        )
        body: dict[str, Any] = answer.json()
        assert answer.status_code == 200 and "errors" not in body, body
        return body["data"]


def _cli(store_url: str, *args: str) -> str:
    result = runner.invoke(cli, ["--store", store_url, *args], env={"COLUMNS": "300", "NO_COLOR": "1"})
    assert result.exit_code == 0, f"liubai {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    if shutil.which("git") is None:
        pytest.skip("the git CLI is not installed")
    repo = GitRepoBuilder(tmp_path / "gitops")
    shas = []
    for i in range(3):
        repo.write(f"f{i}.txt", f"change {i}\n")
        shas.append(repo.commit(f"change {i}"))
    store_url = f"sqlite:///{tmp_path / 'lineage.db'}"
    store = open_store(store_url)
    app = create_app(store=store, auth=AuthSettings(auth=True, tokens=tmp_path / "tokens.db"))
    tokens = {scope: app.state.tokens.create(f"{scope}-user", [scope])[1] for scope in ("read", "ingest")}
    try:
        with TestClient(app) as client:
            yield World(store, store_url, client, tokens, repo, shas, tmp_path / "cache")
    finally:
        store.close()


def _forged_commit(sha: str, repo_url: str) -> GraphBatch:
    batch = GraphBatch()
    batch.add_node(commit_node_id(sha), {**FORGED, "sha": sha})
    batch.add_edge(repo_node_id(repo_url), EdgeKind.HAS_COMMIT, commit_node_id(sha))
    return batch


NODE = "query($id: ID!) { node(id: $id) { properties writer claims { key writer value } owners { key writer } } }"


def test_an_ingest_token_cannot_set_the_git_collectors_checkpoint(world: World) -> None:
    source = f"git:{repo_identity(str(world.repo.path))}"
    forged = GraphBatch()
    forged.checkpoints[(source, "resume")] = world.shas[-1]
    forged.checkpoints[(source, "ref:refs/heads/main")] = world.shas[-1]
    answer = world.post(forged)
    assert answer.status_code == 422, answer.text
    message = answer.json()["detail"]["message"]
    assert source in message and FORGER in message
    assert world.store.checkpoints(source) == {}
    own = GraphBatch()
    own.checkpoints[(FORGER, "position")] = "42"  # a sender's own namespace stays writable
    assert world.post(own).json()["status"] == "applied"
    assert world.store.get_checkpoint(FORGER, "position") == "42"

    world.ingest_git()
    assert world.store.counts()["Commit"] == 3  # the whole history was read
    for sha in world.shas:
        assert world.store.get(commit_node_id(sha)) is not None


def test_an_ingest_token_cannot_rewrite_a_commit_git_wrote(world: World, tmp_path: Path) -> None:
    world.ingest_git()
    target = world.shas[1]
    real = world.store.get(commit_node_id(target))
    assert real is not None and real.props["subject"] == "change 1"
    answer = world.post(_forged_commit(target, "forged-repo"))
    assert answer.status_code == 200 and answer.json()["conflicts"] == 2, answer.text

    node = world.graphql(NODE, id=commit_node_id(target))["node"]
    assert (
        node["properties"]["subject"] == "change 1" and node["properties"]["author"] == real.props["author"]
    )
    assert node["writer"] == "git"
    assert {(c["key"], c["writer"], c["value"]) for c in node["claims"]} == {
        ("author", FORGER, "Mallory"),
        ("subject", FORGER, FORGED["subject"]),
    }

    bundle = _signed_export(world, target, tmp_path)
    exported = next(n for n in bundle["nodes"] if n["id"] == commit_node_id(target))
    assert exported["props"]["subject"] == "change 1" and exported["props"]["author"] == real.props["author"]
    assert exported["writer"] == "git"
    assert {(c["key"], c["writer"], c["value"]) for c in exported["claims"]} == {
        ("author", FORGER, "Mallory"),
        ("subject", FORGER, FORGED["subject"]),
    }
    assert "forged" not in json.dumps([n["props"] for n in bundle["nodes"]])

    tree = _cli(world.store_url, "lineage", target, "--depth", "0")
    assert "Claims" in tree and FORGED["subject"] in tree and FORGER in tree


def test_a_commit_forged_before_git_ingests_it_ends_up_as_git_wrote_it(world: World) -> None:
    target = world.shas[0]
    assert world.post(_forged_commit(target, "forged-repo")).json()["status"] == "applied"
    assert world.store.get(commit_node_id(target)).props["subject"] == FORGED["subject"]  # type: ignore[union-attr]

    world.ingest_git()
    node = world.graphql(NODE, id=commit_node_id(target))["node"]
    assert node["properties"]["subject"] == "change 0" and node["properties"]["author"] != "Mallory"
    assert node["writer"] == "git"
    assert {(c["key"], c["writer"]) for c in node["claims"]} == {("author", FORGER), ("subject", FORGER)}
    # the forger's later tries change nothing either
    world.post(_forged_commit(target, "forged-repo-2"))
    assert world.store.get(commit_node_id(target)).props["subject"] == "change 0"  # type: ignore[union-attr]


def test_the_envelope_cannot_name_its_own_writer(world: World) -> None:
    _, data = encode_batch(_forged_commit(world.shas[0], "r"), "git")
    envelope = json.loads(data)
    envelope["body"]["writer"] = "git"
    answer = world.client.post(
        "/v1/ingest",
        content=json.dumps(envelope),
        headers={"Authorization": f"Bearer {world.tokens['ingest']}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 422 and "writer" in answer.text
    assert world.post(_forged_commit(world.shas[0], "r"), source="git").json()["status"] == "applied"
    assert (
        world.store.provenance([commit_node_id(world.shas[0])])[commit_node_id(world.shas[0])].writer
        == FORGER
    )


def _signed_export(world: World, sha: str, tmp_path: Path) -> dict[str, Any]:
    keys = tmp_path / "keys"
    keys.mkdir()
    _cli(world.store_url, "keygen", "-o", str(keys / "k"))
    out = tmp_path / "evidence.json"
    _cli(
        world.store_url,
        "export",
        "--commit",
        sha,
        "--depth",
        "1",
        "--sign",
        str(keys / "k.key"),
        "-o",
        str(out),
    )
    verified = _cli(world.store_url, "verify", "--key", str(keys / "k.pub"), str(out))
    assert "ok" in verified.lower() or "valid" in verified.lower(), verified
    envelope = json.loads(out.read_text())  # DSSE: the signed bundle is the payload
    bundle: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))["bundle"]
    return bundle


def test_migrate_keeps_who_wrote_what(world: World, tmp_path: Path) -> None:
    world.ingest_git()
    target = commit_node_id(world.shas[2])
    world.post(_forged_commit(world.shas[2], "forged-repo"))
    before = world.store.provenance([target])
    assert before[target].writer == "git" and before[target].claims
    to_url = f"sqlite:///{tmp_path / 'copy.db'}"
    _cli(world.store_url, "migrate", "--from", world.store_url, "--to", to_url)
    copy = open_store(to_url)
    try:
        assert copy.provenance([target]) == before
        assert copy.get(target) == world.store.get(target)
    finally:
        copy.close()
