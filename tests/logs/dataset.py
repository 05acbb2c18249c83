"""A deterministic set of log lines with known lineage, in every shape a source delivers them.

Each line has a unique message ``evt-<n>`` and a kind that fixes what the graph must link it to:

* ``audit``: ``x-gitops-audit-id`` naming a commit and a trace  -> CARRIES audit -> commit; IN_TRACE trace
* ``commit``: ``audit_id`` naming only a commit                   -> CARRIES audit -> commit
* ``trace``: only a trace id (trace_id / traceId / TraceID / traceparent, in turn) -> IN_TRACE trace
* ``plain``: no ids                                                -> no edges
* ``bad_audit``: a malformed audit id                              -> no edges, one reject
* ``bad_trace``: a malformed traceparent                           -> no edges, one reject
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

KINDS = ("audit", "commit", "trace", "trace", "plain", "bad_audit", "bad_trace", "audit")
TRACE_KEYS = ("trace_id", "traceId", "TraceID", "traceparent")
REJECTING_KINDS = frozenset({"bad_audit", "bad_trace"})
EPOCH = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(slots=True)
class Line:
    n: int
    kind: str
    fields: dict[str, Any]
    commit: str | None = None
    trace: str | None = None

    @property
    def message(self) -> str:
        return str(self.fields["message"])


@dataclass(slots=True)
class Dataset:
    lines: list[Line]
    commits: list[str]
    traces: list[str] = field(default_factory=list)

    @property
    def expected_rejects(self) -> int:
        return sum(1 for ln in self.lines if ln.kind in REJECTING_KINDS)

    def by_message(self) -> dict[str, Line]:
        return {ln.message: ln for ln in self.lines}


def make_dataset(count: int, commits: Sequence[str], *, traces: int = 64, seed: int = 7) -> Dataset:
    rnd = random.Random(seed)
    trace_ids = [f"{rnd.getrandbits(128):032x}" for _ in range(traces)]
    lines: list[Line] = []
    for n in range(count):
        kind = KINDS[n % len(KINDS)]
        when = EPOCH + timedelta(milliseconds=37 * n)
        fields: dict[str, Any] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": rnd.choice(("info", "warn", "error")),
            "service": rnd.choice(("checkout", "deployer", "api")),
            "message": f"evt-{n} step done",
            "attempt": n % 5,
        }
        commit = trace = None
        if kind == "audit":
            commit, trace = rnd.choice(commits), rnd.choice(trace_ids)
            fields["x-gitops-audit-id"] = f"git-sha1:{commit}|trace:{trace}"
        elif kind == "commit":
            commit = rnd.choice(commits)
            fields["audit_id"] = f"git:{commit}"
        elif kind == "trace":
            trace = rnd.choice(trace_ids)
            key = TRACE_KEYS[(n // len(KINDS)) % len(TRACE_KEYS)]
            fields[key] = f"00-{trace}-{rnd.getrandbits(64):016x}-01" if key == "traceparent" else trace
        elif kind == "bad_audit":
            fields["x-gitops-audit-id"] = f"git-sha1:{n:x}zz|trace:"
        elif kind == "bad_trace":
            fields["traceparent"] = f"00-not-a-trace-{n}"
        lines.append(Line(n, kind, fields, commit, trace))
    return Dataset(lines, list(commits), trace_ids)


def write_jsonl(lines: Iterable[Line], path: Path, *, garbage: Sequence[str] = ()) -> Path:
    """JSON lines (gzipped if the name ends in .gz), with ``garbage`` lines appended after the data."""
    text = "".join(json.dumps(ln.fields) + "\n" for ln in lines) + "".join(g + "\n" for g in garbage)
    data = text.encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


OTLP_SPAN_ID = "00f067aa0ba902b7"  # the span the traceparent lines of an OTLP export were written in


def to_otlp(lines: Iterable[Line], per_document: int = 200) -> list[dict[str, Any]]:
    """OTLP/JSON ExportLogsServiceRequest documents: one resource per service, ``per_document`` lines each."""
    docs: list[dict[str, Any]] = []
    chunk: list[Line] = []
    for ln in [*lines, None]:
        if ln is not None:
            chunk.append(ln)
        if chunk and (ln is None or len(chunk) >= per_document):
            by_service: dict[str, list[dict[str, Any]]] = {}
            for item in chunk:
                f = dict(item.fields)
                ts = datetime.fromisoformat(f.pop("time"))
                record: dict[str, Any] = {
                    "timeUnixNano": str(int(ts.timestamp()) * 10**9 + ts.microsecond * 1000),
                    "severityText": f.pop("level"),
                    "body": {"stringValue": f.pop("message")},
                }
                service = f.pop("service")
                for key in ("trace_id", "traceId", "TraceID"):
                    if key in f:
                        record["traceId"] = f.pop(key)
                if "traceparent" in f and item.kind == "trace":
                    record["traceId"] = f.pop("traceparent").split("-")[1]
                    record["spanId"] = OTLP_SPAN_ID
                record["attributes"] = [{"key": k, "value": _any(v)} for k, v in f.items()]
                by_service.setdefault(service, []).append(record)
            docs.append(
                {
                    "resourceLogs": [
                        {
                            "resource": {
                                "attributes": [{"key": "service.name", "value": {"stringValue": s}}]
                            },
                            "scopeLogs": [{"scope": {"name": "liubai-test"}, "logRecords": recs}],
                        }
                        for s, recs in by_service.items()
                    ]
                }
            )
            chunk = []
    return docs


def write_otlp(lines: Iterable[Line], path: Path) -> Path:
    """OTLP/JSON in the collector file exporter's layout: one document per line."""
    path.write_text("".join(json.dumps(d) + "\n" for d in to_otlp(lines)), encoding="utf-8")
    return path


def put_into_sls(server: Any, logstore: str, lines: Sequence[Line], *, group_size: int = 50) -> None:
    """Spread the lines over the writable shards, ``group_size`` lines per log group, in order."""
    shards = server.shard_ids(logstore, writable=True)
    base = int(EPOCH.timestamp())
    for g, start in enumerate(range(0, len(lines), group_size)):
        chunk = lines[start : start + group_size]
        server.put_logs(logstore, shards[g % len(shards)], [ln.fields for ln in chunk], log_time=base + g)
