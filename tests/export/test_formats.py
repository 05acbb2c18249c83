"""Each export format, read back with the standard tool for it, equals the subgraph the store holds."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import rfc8785
from typer.testing import CliRunner

from liubai.lineage.model import Direction, commit_node_id
from liubai.lineage.urls import redact_url
from tests._real import missing
from tests.export.conftest import TRICKY, Scenario, run_cli

DEPTH = 4


def expected(
    sc: Scenario, depth: int = DEPTH
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str, str], dict[str, Any]]]:
    """The walk from the scenario's commit, straight from the store protocol."""
    sub = sc.store.lineage(commit_node_id(sc.commit), Direction.BOTH, depth)
    nodes = {n.id: {"kind": n.kind.value, "placeholder": n.placeholder, "props": n.props} for n in sub.nodes}
    edges = {(e.src, e.kind.value, e.dst): e.props for e in sub.edges}
    return nodes, edges


def export(cli: CliRunner, sc: Scenario, out: Path, fmt: str, *extra: str) -> Path:
    code, _, err = run_cli(
        cli,
        sc.store_url,
        "export",
        "--commit",
        sc.commit[:10],
        "--depth",
        str(DEPTH),
        "-f",
        fmt,
        "-o",
        str(out),
        *extra,
    )
    assert code == 0, err
    return out


def test_json_bundle_digest_recomputed_independently(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    doc = json.loads(export(cli, scenario, tmp_path / "b.json", "json").read_bytes())
    canonical = rfc8785.dumps(doc["bundle"])
    assert hashlib.sha256(canonical).hexdigest() == doc["sha256"]

    nodes, edges = expected(scenario)
    bundle = doc["bundle"]
    assert {n["id"]: {k: n[k] for k in ("kind", "placeholder", "props")} for n in bundle["nodes"]} == nodes
    assert {(e["src"], e["kind"], e["dst"]): e["props"] for e in bundle["edges"]} == edges
    assert bundle["summary"] == {"nodes": len(nodes), "edges": len(edges), "truncated": False}
    assert bundle["query"]["start"] == commit_node_id(scenario.commit)
    assert bundle["query"]["depth"] == DEPTH and bundle["query"]["direction"] == "both"
    assert bundle["store"] == redact_url(scenario.store_url)  # a Neo4j password never lands in a bundle
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", bundle["generated_at"])
    # the untrusted log text survives byte for byte
    assert any(n["props"].get("message") == TRICKY for n in bundle["nodes"])
    # the walk reached all three kinds of evidence
    kinds = {n["kind"] for n in bundle["nodes"]}
    assert {"Commit", "PipelineRun", "Process", "File", "LogEvent", "Trace", "Workload"} <= kinds


def test_jsonl_round_trip(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    lines = [
        json.loads(x) for x in export(cli, scenario, tmp_path / "b.jsonl", "jsonl").read_text().splitlines()
    ]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "summary"
    nodes, edges = expected(scenario)
    got_nodes = {
        x["id"]: {k: x[k] for k in ("kind", "placeholder", "props")} for x in lines if x["type"] == "node"
    }
    got_edges = {(x["src"], x["kind"], x["dst"]): x["props"] for x in lines if x["type"] == "edge"}
    assert got_nodes == nodes and got_edges == edges
    assert lines[-1]["nodes"] == len(nodes) and lines[-1]["edges"] == len(edges)


def _read_csv(nodes_text: str, edges_text: str) -> tuple[dict[str, Any], dict[tuple[str, str, str], Any]]:
    nodes = {
        r["id"]: {
            "kind": r["kind"],
            "placeholder": r["placeholder"] == "true",
            "props": json.loads(r["props"]),
        }
        for r in csv.DictReader(io.StringIO(nodes_text, newline=""))
    }
    edges = {
        (r["src"], r["kind"], r["dst"]): json.loads(r["props"])
        for r in csv.DictReader(io.StringIO(edges_text, newline=""))
    }
    return nodes, edges


def test_csv_directory_and_zip_round_trip(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    want = expected(scenario)
    out_dir = export(cli, scenario, tmp_path / "csvdir", "csv")
    got = _read_csv(
        (out_dir / "nodes.csv").read_bytes().decode("utf-8"),
        (out_dir / "edges.csv").read_bytes().decode("utf-8"),
    )
    assert got == want
    with zipfile.ZipFile(export(cli, scenario, tmp_path / "b.zip", "csv")) as zf:
        assert zf.testzip() is None
        assert set(zf.namelist()) == {"nodes.csv", "edges.csv", "query.json"}
        got_zip = _read_csv(zf.read("nodes.csv").decode(), zf.read("edges.csv").decode())
        assert json.loads(zf.read("query.json"))["query"]["start"] == commit_node_id(scenario.commit)
    assert got_zip == want


def _graphml_value(value: Any, original: Any) -> Any:
    """networkx hands back GraphML's typed values; lists and maps travel as JSON text."""
    if isinstance(original, list | dict):
        return json.loads(value)
    return value


def _xml_representable(value: Any) -> Any:
    """XML 1.0 cannot hold control characters: the export writes them as visible \\xNN text."""
    if isinstance(value, str):
        return re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", lambda m: f"\\x{ord(m.group()):02x}", value)
    return value


def test_graphml_read_by_networkx_equals_subgraph(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    g = nx.read_graphml(export(cli, scenario, tmp_path / "b.graphml", "graphml"), force_multigraph=True)
    nodes, edges = expected(scenario)
    assert set(g.nodes) == set(nodes)
    for nid, want in nodes.items():
        attrs = dict(g.nodes[nid])
        assert attrs.pop("liubai.kind") == want["kind"]
        assert attrs.pop("liubai.placeholder") is want["placeholder"]
        props = {k: _xml_representable(v) for k, v in want["props"].items() if v is not None}
        assert {k: _graphml_value(attrs[k], props[k]) for k in attrs} == props
    got_edges = {(u, d["liubai.kind"], v): d for u, v, d in g.edges(data=True)}
    assert set(got_edges) == set(edges)
    for key, props in edges.items():
        attrs = {k: v for k, v in got_edges[key].items() if k not in ("liubai.kind", "id")}
        assert attrs == {k: v for k, v in props.items() if v is not None}


def test_dot_renders_with_graphviz(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        missing("graphviz", "the `dot` program is not installed (apt-get install graphviz)")
    path = export(cli, scenario, tmp_path / "b.dot", "dot")
    proc = subprocess.run([dot, "-Tsvg", str(path)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert not proc.stderr.strip(), proc.stderr.decode()  # no syntax warnings either
    svg = proc.stdout.decode()
    nodes, edges = expected(scenario)
    assert svg.count('class="node"') == len(nodes)
    assert svg.count('class="edge"') == len(edges)


def test_time_window_keeps_the_bundle_whole(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    doc = json.loads(export(cli, scenario, tmp_path / "w.json", "json", "--since", "2021-01-01").read_bytes())
    ids = {n["id"] for n in doc["bundle"]["nodes"]}
    assert "log:app:old" not in ids and "log:app:l1" in ids
    assert all(e["src"] in ids and e["dst"] in ids for e in doc["bundle"]["edges"])
    assert doc["bundle"]["query"]["since"] == "2021-01-01T00:00:00.000000Z"
    code, out, _ = run_cli(cli, scenario.store_url, "verify", "--allow-unsigned", str(tmp_path / "w.json"))
    assert code == 0, out


def test_whole_store_export_equals_store(scenario: Scenario, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    code, _, err = run_cli(cli, scenario.store_url, "export", "--all", "-f", "jsonl", "-o", str(out))
    assert code == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    got = {x["id"] for x in lines if x["type"] == "node"}
    want = {n.id for batch in scenario.store.iter_nodes() for n in batch}
    assert got == want
    assert sum(1 for x in lines if x["type"] == "edge") == scenario.store.counts()["edges"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commit", "deadbeef"], "no commit starting with 'deadbeef'"),
        (["--commit", "zz"], "not a hex commit id"),
        (["--audit-id", "git-sha1:nothex"], "malformed audit id"),
        (["--node", "nonsense"], "not a liubai node id"),
        (["--trace", "a", "--commit", "b"], "exactly one of"),
        (["--all", "--since", "yesterday"], "not an ISO 8601"),
        (["--all", "-f", "pdf"], "unknown --format"),
        (["--all", "-f", "csv"], "csv writes two files"),
    ],
)
def test_bad_selection_is_one_clear_line(
    scenario: Scenario, cli: CliRunner, args: list[str], message: str
) -> None:
    code, out, err = run_cli(cli, scenario.store_url, "export", *args)
    assert code == 1
    assert message in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_help_shows_a_real_example(cli: CliRunner) -> None:
    from liubai.api.cli.main import app

    for cmd in ("export", "verify", "keygen"):
        result = cli.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0
        assert "Example: liubai " + cmd in result.stdout


def test_limit_cut_is_recorded_and_bundle_stays_whole(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    doc = json.loads(export(cli, scenario, tmp_path / "cut.json", "json", "--limit", "3").read_bytes())
    assert len(doc["bundle"]["nodes"]) == 3
    assert doc["bundle"]["summary"]["truncated"] is True and doc["bundle"]["query"]["truncated"] is True
    code, out, _ = run_cli(cli, scenario.store_url, "verify", "--allow-unsigned", str(tmp_path / "cut.json"))
    assert code == 0, out


def test_upstream_from_a_written_file_reaches_the_commit(scenario: Scenario, cli: CliRunner) -> None:
    """An auditor holding an artifact asks: which run, process and commit produced it? (json to stdout)"""
    file_id = f"file:{scenario.host}:{next(iter(scenario.written))}"
    code, out, err = run_cli(
        cli,
        scenario.store_url,
        "export",
        "--node",
        file_id,
        "--direction",
        "upstream",
        "--depth",
        "3",
        "--no-progress",
    )
    assert code == 0, err
    ids = {n["id"] for n in json.loads(out)["bundle"]["nodes"]}
    assert {file_id, scenario.run_id, commit_node_id(scenario.commit)} <= ids
    assert not any(
        i.startswith("log:") for i in ids
    )  # logs are downstream of the run, not upstream of the file


def test_whole_store_time_window_streams_a_consistent_bundle(
    scenario: Scenario, cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "old.json"
    code, _, err = run_cli(
        cli, scenario.store_url, "export", "--all", "--until", "2020-06-01", "-o", str(out)
    )
    assert code == 0, err
    bundle = json.loads(out.read_bytes())["bundle"]
    ids = {n["id"] for n in bundle["nodes"]}
    assert "log:app:old" in ids and "log:app:l1" not in ids and scenario.run_id not in ids
    assert any(e["src"] == "log:app:old" for e in bundle["edges"])
    code, out_text, _ = run_cli(cli, scenario.store_url, "verify", "--allow-unsigned", str(out))
    assert code == 0, out_text
