"""The headline chain with OpenTelemetry: a service instrumented with the official SDK exports spans and logs
to ``liubai serve`` (protobuf and JSON exporters); nothing in them names a commit, an audit id or a trace
of the deploy, only their resource names the Pod or the Deployment. ``liubai lineage commit:<sha>`` of the
commit the cluster runs reaches them.

The cluster side is what a real API server held after the demo's deploy (``api/demo_data``'s recording,
ingested with ``liubai ingest k8s --from-file``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter as JsonLogExporter
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from liubai.api.demo_cluster import RECORDED_CLUSTER, recorded_audit_id
from liubai.api.demo_node import RECORDED_NODE, recorded_pod_uid
from liubai.lineage.audit_id import parse_audit_id
from liubai.lineage.model import span_node_id
from tests.otlp.serve import LIUBAI, liubai_serve


def _cli(store_url: str, *args: str) -> str:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300"}
    env.pop("LIUBAI_STORE", None)
    done = subprocess.run([*LIUBAI, "--store", store_url, *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _recorded() -> tuple[str, str]:
    """(the deployed commit, the uid of the payments Pod whose container ran) in the recordings."""
    commit = parse_audit_id(recorded_audit_id(RECORDED_CLUSTER, "payments")).commit
    pod = recorded_pod_uid(RECORDED_NODE)
    assert commit is not None and pod is not None
    return commit, pod


def _export(base: str, encoding: str, resource: dict[str, str], name: str) -> tuple[str, str]:
    """One failed request of the service, as its SDK exports it: a span and a log line written in it."""
    res = Resource.create(resource)
    if encoding == "protobuf":
        logs: Any = OTLPLogExporter(endpoint=f"{base}/v1/logs")
        spans: Any = OTLPSpanExporter(endpoint=f"{base}/v1/traces")
    else:
        logs, spans = (
            JsonLogExporter(endpoint=f"{base}/v1/logs"),
            JsonSpanExporter(endpoint=f"{base}/v1/traces"),
        )
    tracer_provider = TracerProvider(resource=res)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    logger_provider = LoggerProvider(resource=res)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
    with tracer_provider.get_tracer("shop").start_as_current_span(name) as span:
        logger_provider.get_logger("shop").emit(body=f"{name} failed", severity_text="ERROR")
        span.set_status(Status(StatusCode.ERROR, "declined"))
        ids = span.get_span_context()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    return f"{ids.trace_id:032x}", f"{ids.span_id:016x}"


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_sdk_telemetry_linked_only_by_its_resource_is_in_the_lineage_of_the_deployed_commit(
    tmp_path: Path, encoding: str
) -> None:
    store_url = f"sqlite:///{tmp_path / 'lineage.db'}"
    _cli(store_url, "ingest", "k8s", "--from-file", str(RECORDED_CLUSTER))
    commit, pod_uid = _recorded()
    with liubai_serve(store_url, tmp_path) as served:
        by_pod = _export(
            served.base,
            encoding,
            {"service.name": "payments", "k8s.namespace.name": "shop", "k8s.pod.uid": pod_uid},
            "charge",
        )
        by_workload = _export(
            served.base,
            encoding,
            {"service.name": "web", "k8s.namespace.name": "shop", "k8s.deployment.name": "web"},
            "render",
        )
    out = json.loads(_cli(store_url, "lineage", f"commit:{commit}", "--json"))
    nodes = {n["id"]: n for n in out["nodes"]}
    for trace_id, span_id in (by_pod, by_workload):
        span = nodes.get(span_node_id(trace_id, span_id))
        assert span is not None, f"{encoding}: span {span_id} is not in the lineage of commit {commit[:12]}"
        assert span["properties"]["status"] == "ERROR"
        assert span["properties"]["trace_id"] == trace_id
    messages = {n["properties"].get("message") for n in out["nodes"] if n["kind"] == "LogEvent"}
    assert {"charge failed", "render failed"} <= messages
