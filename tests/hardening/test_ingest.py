"""The wire format, ``POST /v1/ingest`` and the spool: exactly once, bounded, and clear about refusals."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from liubai.api import metrics
from liubai.api.app import create_app
from liubai.api.auth import AuthSettings
from liubai.api.ingest_http import IngestSettings, install_ingest
from liubai.api.metrics import BoundedLabel, MetricSettings
from liubai.collector.spool import Spool, SpoolFull
from liubai.lineage.join import join_records
from liubai.lineage.model import EdgeKind, GraphBatch, RejectedRecord
from liubai.lineage.records import LogRecord
from liubai.lineage.store import open_store
from liubai.lineage.wire import AgentStats, WireError, batch_id_of, decode_batch, encode_batch

SHA = "ab" * 20
JSON = {"Content-Type": "application/json"}  # what the agent sends


def _batch(n: int = 3) -> GraphBatch:
    records = [
        LogRecord(
            source="app",
            record_id=f"r{i}",
            time="2026-01-01T00:00:00Z",
            message=f"m{i} \"}}{{'",
            trace_id=f"{i:032x}",
            audit_id=f"git-sha256:{SHA}|trace:{i:032x}",
        )
        for i in range(n)
    ]
    batch = join_records(records)
    batch.rejected.append(RejectedRecord("app", "app.log:9", "not valid JSON", "{oops"))
    return batch


def test_round_trip_keeps_every_fact_and_the_id_is_the_body_hash() -> None:
    batch = _batch()
    bid, data = encode_batch(batch, "logs", AgentStats(name="n1", spool_bytes=5))
    decoded = decode_batch(data)
    assert decoded.batch_id == bid == batch_id_of(orjson.loads(data)["body"])
    assert decoded.source == "logs" and decoded.agent is not None and decoded.agent.spool_bytes == 5
    assert decoded.batch.nodes == batch.nodes and decoded.batch.edges == batch.edges
    assert decoded.batch.rejected == batch.rejected
    # Agent stats ride outside the body: the same facts keep the same id whatever the agent reports.
    assert encode_batch(batch, "logs", AgentStats(name="n1", spool_bytes=99))[0] == bid
    other = _batch()
    other.nodes[0].props["message"] = "changed"
    assert encode_batch(other, "logs")[0] != bid


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e["body"]["nodes"][1].__setitem__("id", "nokind"),
            "body.nodes[1].id: not a liubai node id",
        ),
        (lambda e: e["body"]["edges"][0].__setitem__("kind", "OWNS"), "body.edges[0].kind"),
        (lambda e: e["body"]["rejected"][0].__setitem__("reason", ""), "body.rejected[0].reason"),
        (lambda e: e["body"].__setitem__("extra", 1), "body.extra"),
        (lambda e: e.__setitem__("version", 2), "version: this server reads version 1"),
        (lambda e: e.__setitem__("batch_id", "0" * 64), "batch_id: does not match the body"),
        (lambda e: e["body"]["nodes"][0].__setitem__("kind", "Commit"), "does not match id"),
    ],
)
def test_bad_envelopes_are_refused_naming_the_field(mutate: object, message: str) -> None:
    envelope = orjson.loads(encode_batch(_batch(), "logs")[1])
    mutate(envelope)  # type: ignore[operator]
    with pytest.raises(WireError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_batch(orjson.dumps(envelope))


def test_non_finite_numbers_cannot_enter_a_batch() -> None:
    batch = GraphBatch()
    batch.add_node("trace:t1", {"score": float("nan")})
    with pytest.raises(WireError, match=r"body.nodes\[0\].props.*finite"):
        encode_batch(batch, "x")


def test_ingest_applies_once_even_across_an_api_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    bid, data = encode_batch(_batch(), "logs")
    with TestClient(create_app(url, auth=AuthSettings(auth=False)), headers=JSON) as first:
        applied = first.post("/v1/ingest", content=data).json()
        assert applied["status"] == "applied" and applied["batch_id"] == bid
        assert applied["nodes_created"] > 0 and applied["rejected_added"] == 1
        assert first.post("/v1/ingest", content=data).json()["status"] == "duplicate"
    with TestClient(create_app(url, auth=AuthSettings(auth=False)), headers=JSON) as second:
        assert second.post("/v1/ingest", content=data).json() == {"batch_id": bid, "status": "duplicate"}
        metrics = second.get("/metrics").text
        assert 'liubai_ingest_batches_total{outcome="duplicate"}' in metrics
    store = open_store(url)
    try:
        assert store.get_checkpoint("ingest", bid) == "applied"
        assert store.counts()["LogEvent"] == 3 and store.counts()["rejected"] == 1
    finally:
        store.close()


def test_oversized_and_invalid_bodies_get_413_and_422(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", auth=AuthSettings(auth=False))
    install_ingest(app, IngestSettings(max_bytes=2048))
    with TestClient(app, headers=JSON) as client:
        big = client.post("/v1/ingest", content=encode_batch(_batch(40), "logs")[1])
        assert big.status_code == 413 and "2048-byte ingest limit" in big.json()["detail"]["message"]
        assert big.json()["detail"]["limit_bytes"] == 2048  # what an agent builds its later batches under

        def chunks() -> object:
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post("/v1/ingest", content=chunks())  # no Content-Length: counted while read
        assert streamed.status_code == 413
        bad = client.post("/v1/ingest", content=b'{"format": "liubai.batch", "version": 1}')
        assert bad.status_code == 422 and "batch_id" in bad.json()["detail"]["message"]
        sneaky = GraphBatch(checkpoints={("ingest", "f" * 64): "applied"})
        refused = client.post("/v1/ingest", content=encode_batch(sneaky, "x")[1])
        assert refused.status_code == 422 and "reserved" in refused.json()["detail"]["message"]


def test_agent_stats_reach_the_api_metrics(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'l.db'}", auth=AuthSettings(auth=False))
    batch = GraphBatch()
    batch.add_node("run:h:1:2", {"lost_events": 7})
    batch.add_edge("run:h:1:2", EdgeKind.RAN, "proc:h:1:2")
    with TestClient(app, headers=JSON) as client:
        sent = client.post(
            "/v1/ingest",
            content=encode_batch(
                batch,
                "events:x",
                AgentStats(name="node-7", spool_bytes=1234, spooled_batches=2, dropped_batches=3),
            )[1],
        )
        assert sent.status_code == 200
        text = client.get("/metrics").text
    assert 'liubai_agent_spool_bytes{agent="node-7"} 1234.0' in text
    assert 'liubai_agent_dropped_batches{agent="node-7"} 3.0' in text
    assert 'liubai_bpf_lost_events_total{source="events:x"}' in text


def test_spool_keeps_order_bounds_bytes_and_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=300)
    ids = [f"{i:064x}" for i in range(3)]
    for i, bid in enumerate(ids):
        spool.put(bid, bytes([65 + i]) * 100)
    with pytest.raises(SpoolFull, match="is full .*300 of 300 bytes used"):
        spool.put("f" * 64, b"x")
    (tmp_path / "s" / "000000000099-torn.tmp").write_bytes(b"half a batch")  # a write cut by a crash
    reopened = Spool(tmp_path / "s", max_bytes=300)
    assert len(reopened) == 3 and reopened.size_bytes == 300
    seen = []
    while (entry := reopened.oldest()) is not None:
        seen.append((entry.batch_id, entry.read()[:1]))
        reopened.remove(entry)
    assert seen == [(ids[0], b"A"), (ids[1], b"B"), (ids[2], b"C")]
    assert reopened.size_bytes == 0 and not list((tmp_path / "s").iterdir())
    reopened.put(ids[0], b"again")
    assert reopened.oldest() is not None and reopened.oldest().seq == 4  # type: ignore[union-attr]


def test_agent_names_cannot_grow_the_metrics_without_end(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = MetricSettings()
    monkeypatch.setattr(
        metrics, "_agent_label", BoundedLabel(settings.max_label_values, settings.max_label_chars)
    )
    metrics.observe_agent("flood-" + "n" * 10_000, 1, 1, 0)
    for i in range(10_000):
        metrics.observe_agent(f"flood-{i}", i, 1, 0)
    agents = {
        sample.labels["agent"]
        for family in metrics.REGISTRY.collect()
        if family.name == "liubai_agent_spool_bytes"
        for sample in family.samples
        if sample.labels["agent"].startswith("flood-") or sample.labels["agent"] == "other"
    }
    assert len(agents) == settings.max_label_values + 1  # the first names, and "other" for the rest
    assert "other" in agents and "flood-0" in agents and f"flood-{settings.max_label_values}" not in agents
    assert max(len(a) for a in agents) == settings.max_label_chars
