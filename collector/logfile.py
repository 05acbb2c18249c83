"""Log files as a record source: JSON lines (``-`` is stdin) and OpenTelemetry OTLP/JSON log exports.

Gzip input is recognised by its magic bytes, whatever the file is called. A line that cannot be used
becomes a ``RejectedRecord`` located as ``file:line``; the lines around it still land. Record ids are
content hashes (``collector.logfields.content_record_id``), so re-reading a file never duplicates and
the same line from a file or SLS is the same node when both use the same source name.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from collector.ingest import IngestSummary, ingest_records, store_batches
from collector.logfields import FieldMap, log_mapper
from collector.offload import has_a_second_core, join_in_subprocess
from lineage.model import RejectedRecord
from lineage.records import LogRecord
from lineage.store.base import LineageStore, row_preparer

__all__ = [
    "FileIngestStats",
    "LogFormat",
    "OFFLOAD_MIN_BYTES",
    "default_source",
    "ingest_files",
    "open_log",
    "read_jsonl",
    "read_log_file",
    "read_otlp",
]

LogFormat = Literal["jsonl", "otlp"]
LogItem = LogRecord | RejectedRecord
_RAW_KEEP = 2000  # rejected raw text is kept, but not a whole multi-megabyte line
_GZIP_MAGIC = b"\x1f\x8b"
_INT64 = 2.0**63
_NOT_FLAT = frozenset({float, dict, list})  # value types ``_exact`` must look into
OFFLOAD_MIN_BYTES = 4 << 20  # about 20k JSON lines
_SEVERITY = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))


def default_source(path: str) -> str:
    """The source name for a file: ``file:<name>`` (``stdin`` for ``-``)."""
    return "stdin" if path == "-" else f"file:{Path(path).name}"


@contextmanager
def open_log(path: str) -> Iterator[IO[bytes]]:
    """A binary stream over a file or stdin, transparently gunzipped."""
    raw: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        peek = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if peek == _GZIP_MAGIC else raw  # type: ignore[assignment]
        yield stream
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _reject(source: str, where: str, reason: str, raw: bytes | str) -> RejectedRecord:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return RejectedRecord(source, where, reason, text[:_RAW_KEEP].rstrip("\n"))


def _loads(line: bytes) -> Any:
    """orjson for speed, with the standard parser's exact result: what orjson refuses (NaN, lone
    surrogates, UTF-16) or may have read as a float from an integer past 64 bits is parsed again by
    ``json.loads``, so accepted lines, values and reject reasons are those of the standard parser."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)
    if type(obj) is dict and _NOT_FLAT.isdisjoint(map(type, obj.values())):
        return obj  # no float anywhere: the common line, checked without a Python loop
    return obj if _exact(obj) else json.loads(line)


def _exact(value: Any) -> bool:
    """False if ``value`` holds a float big enough to have been an integer orjson could not keep."""
    kind = type(value)
    if kind is dict:
        items: Iterable[Any] = value.values()
    elif kind is list:
        items = value
    else:
        return kind is not float or abs(value) < _INT64
    for v in items:  # a plain loop: this runs on every line, mostly over flat objects
        kind = type(v)
        if kind is float:
            if abs(v) >= _INT64:
                return False
        elif (kind is dict or kind is list) and not _exact(v):
            return False
    return True


def _lines(path: str, source: str) -> Iterator[tuple[int, bytes] | RejectedRecord]:
    name = "stdin" if path == "-" else path
    try:
        with open_log(path) as stream:
            yield from enumerate(stream, 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        yield _reject(source, name, f"cannot read: {exc}", b"")


def read_jsonl(
    path: str, *, source: str | None = None, fieldmap: FieldMap | None = None
) -> Iterator[LogItem]:
    """One JSON object per line; blank lines are skipped, anything else unusable is rejected. A line that
    is a whole OTLP logs document (the collector file exporter's layout) is read as one."""
    src = source or default_source(path)
    fm = fieldmap or FieldMap()
    mapper = log_mapper(fm)
    name = "stdin" if path == "-" else path
    for item in _lines(path, src):
        if isinstance(item, RejectedRecord):
            yield item  # the file could not be read (further)
            continue
        lineno, line = item
        if line.isspace():  # what ``not line.strip()`` says of a (never empty) line, without a copy
            continue
        where = f"{name}:{lineno}"
        try:
            obj = _loads(line)
        except ValueError as exc:
            yield _reject(src, where, f"not valid JSON: {exc}", line)
            continue
        if type(obj) is not dict:  # JSON gives plain dicts only
            yield _reject(src, where, f"expected a JSON object, got {type(obj).__name__}", line)
            continue
        if "resourceLogs" in obj and isinstance(obj["resourceLogs"], list):  # a whole OTLP document
            yield from _otlp_document(obj, src, where, fm)
            continue
        record, rejected = mapper.map(obj, src, where)
        yield record
        if rejected:
            yield from rejected


def read_otlp(path: str, *, source: str | None = None, fieldmap: FieldMap | None = None) -> Iterator[LogItem]:
    """OTLP/JSON ``ExportLogsServiceRequest`` documents: one per line (the collector's file exporter)
    or a single, possibly pretty-printed, document."""
    src = source or default_source(path)
    fm = fieldmap or FieldMap()
    name = "stdin" if path == "-" else path
    with open_log(path) as stream:
        try:
            data = stream.read()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            yield _reject(src, name, f"cannot read: {exc}", b"")
            return
    try:
        documents: list[tuple[int, Any]] = [(1, json.loads(data))]
    except ValueError:
        documents = []
        for lineno, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append((lineno, json.loads(line)))
            except ValueError as exc:
                yield _reject(src, f"{name}:{lineno}", f"not valid JSON: {exc}", line)
    for lineno, doc in documents:
        yield from _otlp_document(doc, src, f"{name}:{lineno}", fm)


def _otlp_document(doc: Any, source: str, where: str, fm: FieldMap) -> Iterator[LogItem]:
    mapper = log_mapper(fm)
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceLogs"), list):
        yield _reject(
            source, where, "not an OTLP logs document (no resourceLogs list)", json.dumps(doc)[:_RAW_KEEP]
        )
        return
    for i, rl in enumerate(doc["resourceLogs"]):
        rl = rl if isinstance(rl, dict) else {}
        resource = _attributes((rl.get("resource") or {}).get("attributes"))
        env = {"service": str(resource["service.name"])} if resource.get("service.name") is not None else {}
        for j, sl in enumerate(rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs") or []):
            for k, lr in enumerate((sl or {}).get("logRecords") or []):
                loc = f"{where}#resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}]"
                if not isinstance(lr, dict):
                    yield _reject(source, loc, "log record is not an object", json.dumps(lr))
                    continue
                try:
                    fields = _otlp_fields(lr, fm)
                except ValueError as exc:
                    yield _reject(source, loc, str(exc), json.dumps(lr))
                    continue
                record, rejected = mapper.map(fields, source, loc, defaults=env)
                yield record
                yield from rejected


def _otlp_fields(lr: Mapping[str, Any], fm: FieldMap) -> dict[str, Any]:
    """An OTLP log record flattened into the key space the field map reads (attributes + core fields)."""
    fields: dict[str, Any] = _attributes(lr.get("attributes"))
    ts = lr.get("timeUnixNano")
    if ts in (None, "", "0", 0):
        ts = lr.get("observedTimeUnixNano")
    if ts not in (None, "", "0", 0):
        fields[fm.time[0]] = ts
    level = lr.get("severityText") or _severity_text(lr.get("severityNumber"))
    if level:
        fields[fm.level[0]] = level
    if "body" in lr and lr["body"] is not None:
        body = _any_value(lr["body"])
        fields[fm.message[0]] = body
    trace = _otlp_trace_id(lr.get("traceId"))
    if trace:
        fields[fm.trace[0] if fm.trace[0] not in fm.traceparent_keys else "trace_id"] = trace
    return fields


def _severity_text(number: Any) -> str | None:
    try:
        n = int(number)
    except (TypeError, ValueError):
        return None
    return next((name for top, name in _SEVERITY if 1 <= n <= top), None)


def _otlp_trace_id(value: Any) -> str | None:
    """OTLP/JSON carries hex trace ids; some exporters write protobuf-JSON base64 (16 bytes) instead."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 24 and not all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        return raw.hex() if len(raw) == 16 else value
    return value


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in items or []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = _any_value(kv.get("value"))
    return out


def _any_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as a plain value (int64 arrives as a JSON string and becomes an int)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            raise ValueError(f"bad intValue {v['intValue']!r}") from None
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_any_value(x) for x in (v["arrayValue"] or {}).get("values") or []]
    if "kvlistValue" in v:
        return _attributes((v["kvlistValue"] or {}).get("values"))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def read_log_file(
    path: str, fmt: LogFormat = "jsonl", *, source: str | None = None, fieldmap: FieldMap | None = None
) -> Iterator[LogItem]:
    """Records of one file in the given format."""
    reader = read_otlp if fmt == "otlp" else read_jsonl
    return reader(path, source=source, fieldmap=fieldmap)


@dataclass(slots=True)
class FileIngestStats:
    records: int = 0
    rejected: int = 0
    batches: int = 0
    files: int = 0


def _offloaded(path: str, parallel: bool | None) -> bool:
    """Whether to read ``path`` in a child process: asked for, or (by default) a file big enough for the
    child's start-up (about 0.2 s) to pay off, on a machine with a second core."""
    if path == "-" or parallel is False:
        return False  # stdin belongs to this process
    if parallel:
        return True
    try:
        size = os.stat(path).st_size
    except OSError:
        return False  # reported as a rejected record by the reader, in-process
    return has_a_second_core() and size >= OFFLOAD_MIN_BYTES


def ingest_files(
    store: LineageStore,
    paths: Iterable[str],
    fmt: LogFormat = "jsonl",
    *,
    source: str | None = None,
    fieldmap: FieldMap | None = None,
    batch_size: int = 10_000,
    progress: Callable[[FileIngestStats], None] | None = None,
    on_reject: Callable[[RejectedRecord], None] | None = None,
    parallel: bool | None = None,
    paced: bool = True,
) -> FileIngestStats:
    """Read files into ``store`` in batches of ``batch_size`` records, the next batch parsed while the last
    one is written. Ids are content hashes, so a re-run after a crash simply re-writes what landed.

    Files of ``OFFLOAD_MIN_BYTES`` or more are read, parsed and joined in a child process while this one
    stores (``parallel`` True/False forces either way); the graph is the same. There, batches grow while
    the store falls behind (``paced``, see ``BatchPace``)."""
    stats = FileIngestStats()
    for path in paths:
        done = FileIngestStats(stats.records, stats.rejected, stats.batches, stats.files)

        def show(summary: IngestSummary, done: FileIngestStats = done) -> None:
            stats.records = done.records + summary.count(LogRecord.__name__)
            stats.rejected = done.rejected + summary.rejected
            stats.batches = done.batches + summary.batches
            if progress is not None:
                progress(stats)

        read = partial(read_log_file, path, fmt, source=source, fieldmap=fieldmap)
        if _offloaded(path, parallel):
            with closing(join_in_subprocess(read, batch_size, row_preparer(store), paced=paced)) as joined:  # a store error stops the child
                store_batches(store, joined, progress=show, on_reject=on_reject, background=False)
        else:  # reports every stored batch through ``show``
            ingest_records(store, read(), batch_size=batch_size, progress=show, on_reject=on_reject)
        stats.files += 1
        if progress is not None:
            progress(stats)
    return stats
