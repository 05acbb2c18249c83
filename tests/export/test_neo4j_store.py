"""The export works on every store: the main round trips again, on a real Neo4j (skipped where absent)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
from typer.testing import CliRunner

from liubai.lineage.model import Direction, commit_node_id
from liubai.lineage.urls import redact_url
from tests.export.conftest import Scenario, build_scenario, run_cli

pytestmark = pytest.mark.neo4j


@pytest.fixture(scope="module")
def neo(tmp_path_factory: pytest.TempPathFactory, neo4j_url: str) -> Iterator[Scenario]:
    from tests import neo4j_server

    neo4j_server.wipe(neo4j_url)
    sc = build_scenario(tmp_path_factory.mktemp("neo4j-scenario"), neo4j_url)
    yield sc
    sc.store.close()


def test_bundle_and_graphml_from_neo4j(neo: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    for fmt in ("json", "graphml"):
        code, _, err = run_cli(
            cli,
            neo.store_url,
            "export",
            "--commit",
            neo.commit,
            "--depth",
            "4",
            "-f",
            fmt,
            "-o",
            str(tmp_path / fmt),
        )
        assert code == 0, err
    doc = json.loads((tmp_path / "json").read_bytes())
    canonical = json.dumps(doc["bundle"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(canonical).hexdigest() == doc["sha256"]
    assert doc["bundle"]["store"] == redact_url(neo.store_url) and ":***@" in doc["bundle"]["store"]
    sub = neo.store.lineage(commit_node_id(neo.commit), Direction.BOTH, 4)
    assert {n["id"] for n in doc["bundle"]["nodes"]} == {n.id for n in sub.nodes}
    assert {(e["src"], e["kind"], e["dst"]) for e in doc["bundle"]["edges"]} == {e.key for e in sub.edges}
    g = nx.read_graphml(tmp_path / "graphml", force_multigraph=True)
    assert set(g.nodes) == {n.id for n in sub.nodes} and g.number_of_edges() == len(sub.edges)


def test_signed_provenance_from_neo4j(neo: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    run_cli(cli, neo.store_url, "keygen", "-o", str(tmp_path / "k"))
    out = tmp_path / "prov.json"
    code, _, err = run_cli(
        cli,
        neo.store_url,
        "export",
        "--run",
        neo.run_id,
        "-f",
        "slsa",
        "--sign",
        str(tmp_path / "k.key"),
        "-o",
        str(out),
    )
    assert code == 0, err
    env = json.loads(out.read_bytes())
    pub = json.loads((tmp_path / "k.pub").read_text())
    Envelope.from_dict(json.loads(json.dumps(env))).verify([SSlibKey.from_dict(pub.pop("keyid"), pub)], 1)
    statement = json.loads(base64.b64decode(env["payload"]))
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    for path, digest in neo.written.items():
        assert subjects[path] == digest
