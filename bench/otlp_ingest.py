"""OTLP/HTTP log ingest: the official SDK's protobuf exporter into ``liubai serve``, vs the same records
through ``liubai ingest logs`` from a file, both into SQLite.

The same ``--records`` log records (a resource naming service and Pod, half of them written in a span,
two attributes each) go through each arm, each on a fresh database:

* ``sdk -> serve``    - the OpenTelemetry SDK emits them; ``BatchLogRecordProcessor`` (batches of 512)
  hands them to ``OTLPLogExporter`` (protobuf over HTTP), which posts to a ``liubai serve`` process;
  timed from the first emit until ``force_flush`` returns (every batch answered);
* ``exporter bytes -> serve`` - the exporter's own request bodies (the SDK's encoder, 512 records each),
  captured beforehand and posted one after another over one keep-alive connection, as the exporter
  posts them: the receiver's rate without the SDK's own cost;
* ``... 4 senders at once`` - the same bodies from four connections at once, as exporters of several
  Pods send: the requests that arrive together share one store transaction (group commit);
* ``file -> store`` (baseline) - the same records as an OTLP/JSON file, one export request per line as
  the collector's file exporter writes it, through ``ingest_files`` as ``liubai ingest logs --format otlp``
  runs it (a file this size is parsed and joined in a second process).

Every arm ends with the records in the store: the server is stopped (its last WAL checkpoint counts) and
its database is counted, or the bench fails. Then where the time goes, in this process on the same
bodies: the SDK alone (emit and encode, no HTTP), protobuf decode to records, join, SQLite write in
512-record transactions. Targets: the SDK path at >= 50,000 records/s and >= 80% of the file path.

Example: .venv/bin/python bench/otlp_ingest.py --records 100000
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the serve helper lives in tests/

import requests
from google.protobuf import json_format
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from liubai.collector.ingest import join_batches
from liubai.collector.logfields import FieldMap
from liubai.collector.logfile import ingest_files
from liubai.collector.otlp.proto import proto_logs
from liubai.lineage.model import GraphBatch, NodeKind
from liubai.lineage.store import open_store
from liubai.lineage.store.base import write_batch
from tests.otlp.serve import liubai_serve

TARGET_RATE = 50_000
TARGET_RATIO = 0.80
BATCH = 512
SENDERS = 4
BASE_NS = 1_767_323_045_000_000_000


class _Keep(LogRecordExporter):
    """An exporter that encodes each batch as the OTLP exporter does and keeps the bytes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def export(self, batch: Any) -> LogRecordExportResult:
        self.bodies.append(encode_logs(batch).SerializeToString())
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _contexts(n: int) -> list[Context]:
    """``n`` span contexts to write records in (the SDK reads trace and span id from the context)."""
    return [
        set_span_in_context(
            NonRecordingSpan(SpanContext(i + 1, i + 1, False, TraceFlags(TraceFlags.SAMPLED)))
        )
        for i in range(n)
    ]


def emit(records: int, exporter: LogRecordExporter) -> float:
    """The SDK's path: emit ``records`` through a BatchLogRecordProcessor into ``exporter``; seconds until
    every batch is exported."""
    resource = Resource.create(
        {"service.name": "shop", "k8s.pod.uid": "0f6c3b4e-pod", "k8s.namespace.name": "prod"}
    )
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            exporter, max_queue_size=records, max_export_batch_size=BATCH, schedule_delay_millis=50
        )
    )
    logger = provider.get_logger("bench")
    contexts = _contexts(1000)
    t = time.perf_counter()
    for i in range(records):
        logger.emit(
            timestamp=BASE_NS + i * 1000,
            context=contexts[i % 1000] if i % 2 == 0 else None,
            severity_text="WARN" if i % 10 == 0 else "INFO",
            body=f"evt-{i} step done",
            attributes={"order": i, "user": f"u{i % 100}"},
        )
    if not provider.force_flush(timeout_millis=600_000):
        raise SystemExit("the SDK did not flush every batch in time")
    seconds = time.perf_counter() - t
    provider.shutdown()
    return seconds


def _log_count(url: str) -> int:
    store = open_store(url)
    try:
        return store.counts().get(NodeKind.LOG_EVENT.value, 0)
    finally:
        store.close()


def _served(url: str, root: Path, send: Callable[[str], float]) -> float:
    with liubai_serve(url, root) as s:
        return send(s.base)


def _post_all(bodies: list[bytes], senders: int = 1) -> Callable[[str], float]:
    """Post ``bodies`` in order, each sender (a keep-alive connection) its share, one at a time."""

    def post(base: str, share: list[bytes]) -> None:
        with requests.Session() as session:
            for body in share:
                answer = session.post(
                    f"{base}/v1/logs", data=body, headers={"Content-Type": "application/x-protobuf"}
                )
                if answer.status_code != 200 or answer.content:
                    raise SystemExit(f"the receiver answered {answer.status_code}: {answer.content[:200]!r}")

    def send(base: str) -> float:
        shares = [bodies[i::senders] for i in range(senders)]
        t = time.perf_counter()
        with ThreadPoolExecutor(senders) as pool:
            list(pool.map(lambda share: post(base, share), shares))
        return time.perf_counter() - t

    return send


def _otlp_json_lines(bodies: list[bytes]) -> str:
    """The bodies as OTLP/JSON, one request per line: ids in hex, as OTLP/JSON has them."""
    lines = []
    for body in bodies:
        doc = json_format.MessageToDict(ExportLogsServiceRequest.FromString(body))
        for rl in doc.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for lr in sl.get("logRecords", []):
                    for key in ("traceId", "spanId"):
                        if key in lr:
                            lr[key] = base64.b64decode(lr[key]).hex()
        lines.append(json.dumps(doc, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def breakdown(bodies: list[bytes], root: Path) -> dict[str, float]:
    """Seconds of each server step on the same bodies, in this process; the store step also as the file
    path writes (transactions of 10,000 records), for what one transaction per request costs."""
    fm = FieldMap()
    t = time.perf_counter()
    decoded = [proto_logs(body, "otlp", "/v1/logs", fm).items for body in bodies]
    decode_s = time.perf_counter() - t
    t = time.perf_counter()
    batches: list[GraphBatch] = [j.batch for items in decoded for j in join_batches(items, len(items))]
    join_s = time.perf_counter() - t
    every = [item for items in decoded for item in items]
    large = [j.batch for j in join_batches(every, 10_000)]

    def store_s(name: str, batches: list[GraphBatch]) -> float:
        store = open_store(f"sqlite:///{root / name}")
        t = time.perf_counter()
        for batch in batches:
            write_batch(store, batch)
        store.close()
        return time.perf_counter() - t

    return {
        "decode": decode_s,
        "join": join_s,
        "store": store_s("steps.db", batches),
        "store (10k per tx)": store_s("steps-10k.db", large),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    args = ap.parse_args()
    n = args.records
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="liubai-otlp-bench-") as tmp:
        root = Path(tmp)
        kept = _Keep()
        sdk_alone = emit(n, kept)  # the SDK's own cost, and the exporter's bytes for the other arms
        bodies = kept.bodies
        otlp_file = root / "export.otlp.jsonl"
        otlp_file.write_text(_otlp_json_lines(bodies), encoding="utf-8")

        rates: dict[str, float] = {}
        url = f"sqlite:///{root / 'sdk.db'}"
        seconds = _served(url, root, lambda base: emit(n, OTLPLogExporter(endpoint=f"{base}/v1/logs")))
        rates["sdk -> serve"] = n / seconds
        landed = {"sdk -> serve": _log_count(url)}

        url = f"sqlite:///{root / 'bytes.db'}"
        rates["exporter bytes -> serve"] = n / _served(url, root, _post_all(bodies))
        landed["exporter bytes -> serve"] = _log_count(url)

        url = f"sqlite:///{root / 'senders.db'}"
        arm = f"... {SENDERS} senders at once"
        rates[arm] = n / _served(url, root, _post_all(bodies, SENDERS))
        landed[arm] = _log_count(url)

        url = f"sqlite:///{root / 'file.db'}"
        store = open_store(url)
        t = time.perf_counter()
        stats = ingest_files(store, [str(otlp_file)], "otlp", source="otlp")
        store.close()
        rates["file -> store"] = n / (time.perf_counter() - t)
        landed["file -> store"] = _log_count(url)
        if stats.rejected:
            raise SystemExit(f"the file path rejected {stats.rejected} records")

        steps = breakdown(bodies, root)

    for arm, count in landed.items():
        if count != n:
            raise SystemExit(f"{arm}: {count:,} of {n:,} records landed")
    file_rate = rates["file -> store"]
    print(f"{n:,} log records, {len(bodies)} requests of up to {BATCH}; every arm stored all of them")
    print(f"{'arm':26} {'records/s':>10} {'vs file':>8}")
    for arm, rate in rates.items():
        print(f"{arm:26} {rate:10,.0f} {rate / file_rate:7.0%}")
    print("where the time goes (records/s of each step alone):")
    print(f"  {'SDK emit + encode':24} {n / sdk_alone:10,.0f}")
    for step, secs in steps.items():
        print(f"  {'server ' + step:24} {n / secs:10,.0f}")
    server_alone = n / (steps["decode"] + steps["join"] + steps["store"])
    print(f"  {'server decode+join+store':24} {server_alone:10,.0f}")
    sdk_rate = rates["sdk -> serve"]
    met = sdk_rate >= TARGET_RATE and sdk_rate / file_rate >= TARGET_RATIO
    print(
        f"target >= {TARGET_RATE:,}/s and >= {TARGET_RATIO:.0%} of the file path: "
        f"{'met' if met else 'missed'} (sdk -> serve {sdk_rate:,.0f}/s, {sdk_rate / file_rate:.0%})"
    )
    print(
        json.dumps(
            {
                "bench": "otlp_ingest",
                "records": n,
                **{
                    arm.replace("... ", "exporter_bytes_").replace(" -> ", "_to_").replace(" ", "_"): round(r)
                    for arm, r in rates.items()
                },
                "sdk_alone": round(n / sdk_alone),
                **{
                    f"step_{k.split(' ')[0]}{'_10k' if '10k' in k else ''}": round(n / v)
                    for k, v in steps.items()
                },
                "target_met": met,
            }
        )
    )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
