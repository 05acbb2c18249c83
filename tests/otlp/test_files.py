"""``liubai ingest logs --format otlp`` reads OTLP/JSON trace exports too: the official examples, and the
collector file exporter's mixed files, land with their ids intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from liubai.api.app import create_app
from liubai.api.cli.main import app
from liubai.lineage.model import Direction, EdgeKind, NodeKind, span_node_id
from liubai.lineage.store import open_store
from tests.otlp.otlp_data import (
    EXAMPLE_PARENT,
    EXAMPLE_SPAN,
    EXAMPLE_TRACE,
    LOGS_JSON,
    TRACE_JSON,
    as_protobuf,
    example,
)

pytestmark = pytest.mark.sqlite_only  # the CLI's own path; the join is checked on every store elsewhere


def _ingest(store_url: str, *files: Path) -> str:
    result = CliRunner().invoke(
        app,
        ["--store", store_url, "ingest", "logs", "--format", "otlp", "--source", "otel", *map(str, files)],
        env={"COLUMNS": "300", "NO_COLOR": "1"},
    )
    assert result.exit_code == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("layout", ["two files", "one mixed file"])
def test_the_official_examples_land_with_their_ids_intact(tmp_path: Path, layout: str) -> None:
    if layout == "two files":
        files = [LOGS_JSON, TRACE_JSON]
    else:
        mixed = tmp_path / "export.jsonl"
        mixed.write_text("".join(json.dumps(example(p)) + "\n" for p in (TRACE_JSON, LOGS_JSON)))
        files = [mixed]
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    said = _ingest(url, *files)
    assert "ingested 1 log records and 1 spans" in " ".join(said.split())
    store = open_store(url)
    try:
        span = store.get(span_node_id(EXAMPLE_TRACE, EXAMPLE_SPAN))
        assert span is not None and span.kind is NodeKind.SPAN
        assert (span.props["trace_id"], span.props["span_id"], span.props["parent_span_id"]) == (
            EXAMPLE_TRACE,
            EXAMPLE_SPAN,
            EXAMPLE_PARENT,
        )
        assert (span.props["name"], span.props["kind"], span.props["start"]) == (
            "I'm a server span",
            "SERVER",
            "2018-12-13T14:51:00.000000Z",
        )
        (parent,) = store.neighbors(span.id, Direction.DOWNSTREAM, [EdgeKind.CHILD_OF]).edges
        assert parent.dst == span_node_id(EXAMPLE_TRACE, EXAMPLE_PARENT)
        logs = [n for page in store.iter_nodes() for n in page if n.kind is NodeKind.LOG_EVENT]
        (log,) = logs
        assert (log.props["trace_id"], log.props["span_id"]) == (EXAMPLE_TRACE, EXAMPLE_SPAN)
        (in_span,) = store.neighbors(log.id, Direction.DOWNSTREAM, [EdgeKind.IN_SPAN]).edges
        assert in_span.dst == span.id  # the example log line was written in the example span
        assert store.rejected().total == 0
    finally:
        store.close()


def test_a_file_and_the_receiver_make_one_node_of_one_log_line(tmp_path: Path) -> None:
    """With ``--source otlp`` a file export and what the receiver took in (as protobuf) merge: the line's
    content id is the same whichever way it came."""
    url = f"sqlite:///{tmp_path / 'lineage.db'}"
    with TestClient(create_app(store_url=url)) as client:
        answer = client.post(
            "/v1/logs",
            content=as_protobuf(example(LOGS_JSON)),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert answer.status_code == 200
    result = CliRunner().invoke(
        app, ["--store", url, "ingest", "logs", "--format", "otlp", "--source", "otlp", str(LOGS_JSON)]
    )
    assert result.exit_code == 0, result.stderr
    store = open_store(url)
    try:
        (log,) = [n for page in store.iter_nodes() for n in page if n.kind is NodeKind.LOG_EVENT]
        assert log.id.startswith("log:otlp:") and log.props["message"] == "Example log record"
    finally:
        store.close()
