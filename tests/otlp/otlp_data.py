"""The official OTLP/JSON examples (opentelemetry-proto ``examples/``) and their protobuf forms."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

DATA = Path(__file__).parent / "data"
LOGS_JSON = DATA / "logs.json"
TRACE_JSON = DATA / "trace.json"
EXAMPLE_TRACE = "5b8efff798038103d269b633813fc60c"
EXAMPLE_SPAN = "eee19b7ec3c1b174"
EXAMPLE_PARENT = "eee19b7ec3c1b173"
_ID_KEYS = {"traceId", "spanId", "parentSpanId"}
_HEX = re.compile(r"[0-9a-fA-F]+")


def example(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def _protobuf_json(value: Any) -> Any:
    """OTLP/JSON as protobuf's own JSON mapping reads it: ids base64, not hex (the one place they differ
    for these documents)."""
    if isinstance(value, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode()
            if k in _ID_KEYS and isinstance(v, str) and _HEX.fullmatch(v)
            else _protobuf_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_protobuf_json(v) for v in value]
    return value


def as_protobuf(doc: dict[str, Any]) -> bytes:
    """The protobuf body of an OTLP/JSON logs or traces request."""
    message = ExportLogsServiceRequest() if "resourceLogs" in doc else ExportTraceServiceRequest()
    json_format.ParseDict(_protobuf_json(copy.deepcopy(doc)), message)
    data: bytes = message.SerializeToString()
    return data
