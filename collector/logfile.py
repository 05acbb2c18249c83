"""Log files as a record source: JSON lines (``-`` is stdin) and OpenTelemetry OTLP/JSON log exports.

Gzip input is recognised by its magic bytes, whatever the file is called. A line that cannot be used
becomes a ``RejectedRecord`` located as ``file:line``; the lines around it still land. Record ids are
content hashes (``liubai.collector.logfields.content_record_id``), so re-reading a file never duplicates and
the same line from a file or SLS is the same node when both use the same source name.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import itertools
import json
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from liubai.collector.ingest import IngestSummary, ingest_records, store_batches
from liubai.collector.logfields import FieldMap, LogMapper, log_mapper
from liubai.collector.offload import has_a_second_core, join_in_subprocess
from liubai.lineage.model import RejectedRecord
from liubai.lineage.provenance import LOGS_WRITER
from liubai.lineage.records import LogRecord
from liubai.lineage.store.base import LineageStore, row_preparer
from liubai.lineage.text import json_text, visible

__all__ = [
    "DOCUMENT_OPENERS",
    "FileIngestStats",
    "LogFormat",
    "OFFLOAD_MIN_BYTES",
    "RAW_KEEP",
    "default_source",
    "ingest_files",
    "jsonl_line_items",
    "open_log",
    "read_jsonl",
    "read_log_file",
    "read_otlp",
]

LogFormat = Literal["jsonl", "otlp"]
LogItem = LogRecord | RejectedRecord
RAW_KEEP = 2000  # rejected raw text is kept, but not a whole multi-megabyte line
_GZIP_MAGIC = b"\x1f\x8b"
_INT64 = 2.0**63
_NOT_FLAT = frozenset({float, dict, list})  # value types ``_exact`` must look into
OFFLOAD_MIN_BYTES = 4 << 20  # about 20k JSON lines
_TOO_DEEP = "nested too deeply to parse"
_SEVERITY = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))


def default_source(path: str) -> str:
    """The source name for a file: ``file:<name>`` (``stdin`` for ``-``)."""
    return "stdin" if path == "-" else f"file:{visible(Path(path).name)}"


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
    return RejectedRecord(source, where, reason, text[:RAW_KEEP].rstrip("\n"))


def _loads(line: bytes) -> Any:
    """orjson for speed, with the standard parser's exact result: what orjson refuses (NaN, lone
    surrogates, UTF-16) or may have read as a float from an integer past 64 bits is parsed again by
    ``json.loads``, so accepted lines, values and reject reasons are those of the standard parser."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return _std_loads(line)
    if type(obj) is dict and _NOT_FLAT.isdisjoint(map(type, obj.values())):
        return obj  # no float anywhere: the common line, checked without a Python loop
    try:
        exact = _exact(obj)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    return obj if exact else _std_loads(line)


def _std_loads(text: bytes | str) -> Any:
    """``json.loads``, with nesting too deep for it refused as bad JSON rather than crashing the reader, and
    a ``\\ud800``-style escape of half a UTF-16 pair kept as that escape's text: a lone surrogate is not
    text, and no store can hold it."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    escaped = b"\\u" in text if isinstance(text, bytes) else "\\u" in text
    return _storable(obj) if escaped else obj  # a surrogate can only come from an escape


def _storable(obj: Any) -> Any:
    """``obj`` (parsed from JSON with a ``\\u`` escape in it) with each lone surrogate kept as its escape's
    text."""
    try:
        json.dumps(obj, ensure_ascii=False).encode()
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None
    except UnicodeEncodeError:
        return _escape_surrogates(obj)
    return obj


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return json_text(value)
    if isinstance(value, list):
        return [_escape_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in value.items()}
    return value


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
    """The numbered lines of a file; where it cannot be read (further), one reject at the line it stopped
    at, after every line read before it."""
    name = "stdin" if path == "-" else visible(path)  # a name that is not UTF-8 arrives with surrogates
    lineno = 0
    try:
        with open_log(path) as stream:
            for lineno, line in enumerate(stream, 1):
                yield lineno, line
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        where = f"{name}:{lineno + 1}" if lineno else name
        yield _reject(source, where, f"cannot read: {exc}", b"")


def read_jsonl(
    path: str, *, source: str | None = None, fieldmap: FieldMap | None = None
) -> Iterator[LogItem]:
    """One JSON object per line; blank lines are skipped, anything else unusable is rejected. A line that
    is a whole OTLP logs document (the collector file exporter's layout) is read as one, and a file of
    pretty-printed documents is read document by document (``_pretty_documents``)."""
    src = visible(source) if source else default_source(path)
    fm = fieldmap or FieldMap()
    mapper = log_mapper(fm)
    name = "stdin" if path == "-" else visible(path)  # a name that is not UTF-8 arrives with surrogates
    lines = _lines(path, src)
    head: list[tuple[int, bytes] | RejectedRecord] = []
    for item in lines:  # up to the first line with something on it
        head.append(item)
        if not isinstance(item, RejectedRecord) and not item[1].isspace():
            break
    last = head[-1] if head else None
    if isinstance(last, tuple) and last[1].strip() in DOCUMENT_OPENERS:
        size = 0
        for item in lines:
            head.append(item)
            size += 0 if isinstance(item, RejectedRecord) else len(item[1])
            if size > _DOCUMENT_MAX:
                break
        documents = _pretty_documents(head) if size <= _DOCUMENT_MAX else None
        if documents is not None:
            for lineno, doc in documents:
                yield from _document_items(doc, src, f"{name}:{lineno}", mapper, fm)
            yield from (item for item in head if isinstance(item, RejectedRecord))
            return
    for item in itertools.chain(head, lines):  # JSON lines after all
        if isinstance(item, RejectedRecord):
            yield item  # the file could not be read (further)
            continue
        lineno, line = item
        yield from jsonl_line_items(line, src, f"{name}:{lineno}", mapper, fm)


def jsonl_line_items(
    line: bytes, source: str, where: str, mapper: LogMapper, fm: FieldMap
) -> Iterator[LogItem]:
    """The items of one JSON line read at ``where``: nothing for a blank line, else a record (or a whole
    OTLP document's) or a reject. Shared by ``read_jsonl`` and the agent's byte-offset tail, so both read
    a line alike."""
    if line.isspace():  # what ``not line.strip()`` says of a (never empty) line, without a copy
        return
    try:
        obj = _loads(line)
    except ValueError as exc:
        yield _reject(source, where, f"not valid JSON: {exc}", line)
        return
    yield from _object_items(obj, source, where, line, mapper, fm)


def _object_items(
    obj: Any, source: str, where: str, line: bytes | None, mapper: LogMapper, fm: FieldMap
) -> Iterator[LogItem]:
    """One JSON value read as a log line: an object is a record, or, holding a ``resourceLogs`` list, a
    whole OTLP document (the collector file exporter's layout); anything else is a reject, quoting
    ``line`` (the value's own text where it had one)."""
    if type(obj) is not dict:  # JSON gives plain dicts only
        raw = _raw(obj) if line is None else line
        yield _reject(source, where, f"expected a JSON object, got {type(obj).__name__}", raw)
        return
    if "resourceLogs" in obj and isinstance(obj["resourceLogs"], list):
        yield from _otlp_document(obj, source, where, fm)
        return
    record, rejected = mapper.map(obj, source, where)
    yield record
    yield from rejected


# A first line that opens an object or array and holds nothing else is no JSON line: the file may be
# documents over many lines (``jq .`` output, an OTLP export saved pretty-printed).
DOCUMENT_OPENERS = (b"{", b"[")
_DOCUMENT_MAX = 64 << 20  # bytes held to find out; a larger file of such documents is read as lines
_NOT_SPACE = re.compile(r"\S")


def _pretty_documents(lines: list[tuple[int, bytes] | RejectedRecord]) -> list[tuple[int, Any]] | None:
    """The JSON documents the ``lines`` hold one after another, each with the line it starts at; None
    unless every byte of them belongs to one (then they are JSON lines, good or bad, after all)."""
    numbered = [item for item in lines if not isinstance(item, RejectedRecord)]
    try:
        text = b"".join(line for _, line in numbered).decode("utf-8")
    except UnicodeDecodeError:
        return None
    decoder, documents, pos = json.JSONDecoder(), [], 0
    lineno, counted = numbered[0][0], 0  # the line at ``counted``, moved on document by document
    while (start := _NOT_SPACE.search(text, pos)) is not None:
        pos = start.start()
        try:
            doc, end = decoder.raw_decode(text, pos)
            if text.find("\\u", pos, end) >= 0:  # a lone surrogate can only come from an escape
                doc = _storable(doc)
        except (ValueError, RecursionError):
            return None
        lineno, counted = lineno + text.count("\n", counted, pos), pos
        documents.append((lineno, doc))
        pos = end
    return documents


def _document_items(doc: Any, source: str, where: str, mapper: LogMapper, fm: FieldMap) -> Iterator[LogItem]:
    """The items of one pretty-printed document: an array of log objects, an OTLP export or one object."""
    objects = (
        [(f"{where}#[{i}]", obj) for i, obj in enumerate(doc)] if isinstance(doc, list) else [(where, doc)]
    )
    for at, obj in objects:
        yield from _object_items(obj, source, at, None, mapper, fm)


def read_otlp(path: str, *, source: str | None = None, fieldmap: FieldMap | None = None) -> Iterator[LogItem]:
    """OTLP/JSON ``ExportLogsServiceRequest`` documents: one per line (the collector's file exporter)
    or a single, possibly pretty-printed, document."""
    src = visible(source) if source else default_source(path)
    fm = fieldmap or FieldMap()
    name = "stdin" if path == "-" else visible(path)  # a name that is not UTF-8 arrives with surrogates
    try:
        with open_log(path) as stream:
            data = stream.read()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield _reject(src, name, f"cannot read: {exc}", b"")
        return
    try:
        documents: list[tuple[int, Any]] = [(1, _std_loads(data))]
    except ValueError:
        documents = []
        for lineno, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append((lineno, _std_loads(line)))
            except ValueError as exc:
                yield _reject(src, f"{name}:{lineno}", f"not valid JSON: {exc}", line)
    for lineno, doc in documents:
        yield from _otlp_document(doc, src, f"{name}:{lineno}", fm)


def _otlp_document(doc: Any, source: str, where: str, fm: FieldMap) -> Iterator[LogItem]:
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceLogs"), list):
        yield _reject(source, where, "not an OTLP logs document (no resourceLogs list)", _raw(doc))
        return
    walk = _OtlpWalk(source, fm)
    for i, rl in enumerate(doc["resourceLogs"]):
        for item in walk.resource_logs(rl, f"{where}#resourceLogs[{i}]"):
            yield from walk.take_rejected()
            yield item
        yield from walk.take_rejected()


_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
_BAD = object()  # an OTLP value that broke the schema; rejected, and left out of its record


def _raw(value: Any) -> str:
    """The JSON of a rejected part, kept as the raw text of its reject."""
    try:
        return json.dumps(value)[:RAW_KEEP]
    except (RecursionError, ValueError):
        return f"({_JSON_TYPES.get(type(value), 'a value')} nested too deeply to keep)"


class _OtlpWalk:
    """Reads OTLP/JSON logs part by part. A part that breaks the schema is rejected at its JSON path and
    left out; the records and fields around it still land."""

    __slots__ = ("fm", "mapper", "rejected", "source")

    def __init__(self, source: str, fm: FieldMap) -> None:
        self.source, self.fm, self.mapper = source, fm, log_mapper(fm)
        self.rejected: list[RejectedRecord] = []

    def take_rejected(self) -> list[RejectedRecord]:
        taken, self.rejected = self.rejected, []
        return taken

    def bad(self, at: str, reason: str, value: Any) -> object:
        self.rejected.append(_reject(self.source, at, reason, _raw(value)))
        return _BAD

    def part(self, owner: Mapping[str, Any], key: str, kind: type, at: str) -> Any:
        """``owner[key]`` if it is of ``kind`` or absent (None); anything else is rejected."""
        value = owner.get(key)
        if value is None or isinstance(value, kind):
            return value
        self.bad(
            f"{at}.{key}", f"{key} must be {_JSON_TYPES[kind]}, got {_JSON_TYPES.get(type(value))}", value
        )
        return None

    def resource_logs(self, rl: Any, at: str) -> Iterator[LogRecord]:
        if not isinstance(rl, dict):
            self.bad(at, "a resourceLogs entry must be an object", rl)
            return
        resource = self.attributes(self.part(rl, "resource", dict, at) or {}, "attributes", f"{at}.resource")
        service = resource.get("service.name")
        env = {"service": str(service)} if service is not None else {}
        # the pre-1.0 name, read where the current one holds nothing
        key = (
            "instrumentationLibraryLogs"
            if not rl.get("scopeLogs") and "instrumentationLibraryLogs" in rl
            else "scopeLogs"
        )
        for j, sl in enumerate(self.part(rl, key, list, at) or []):
            scope_at = f"{at}.{key}[{j}]"
            if not isinstance(sl, dict):
                self.bad(scope_at, f"a {key} entry must be an object", sl)
                continue
            for k, lr in enumerate(self.part(sl, "logRecords", list, scope_at) or []):
                record_at = f"{scope_at}.logRecords[{k}]"
                if not isinstance(lr, dict):
                    self.bad(record_at, "log record is not an object", lr)
                    continue
                record, rejected = self.mapper.map(
                    self.fields(lr, record_at), self.source, record_at, defaults=env
                )
                self.rejected.extend(rejected)
                yield record

    def fields(self, lr: Mapping[str, Any], at: str) -> dict[str, Any]:
        """A log record flattened into the key space the field map reads (attributes + core fields)."""
        fm = self.fm
        fields = self.attributes(lr, "attributes", at)
        ts = lr.get("timeUnixNano")
        if ts in (None, "", "0", 0):
            ts = lr.get("observedTimeUnixNano")
        if ts not in (None, "", "0", 0):
            fields[fm.time[0]] = ts
        level = lr.get("severityText") or _severity_text(lr.get("severityNumber"))
        if level:
            fields[fm.level[0]] = level
        if lr.get("body") is not None:
            body = self.any_value(lr["body"], f"{at}.body")
            if body is not _BAD:
                fields[fm.message[0]] = body
        trace = self.part(lr, "traceId", str, at)
        if trace:
            fields[fm.trace[0] if fm.trace[0] not in fm.traceparent_keys else "trace_id"] = _otlp_trace_id(
                trace
            )
        return fields

    def attributes(self, owner: Mapping[str, Any], key: str, at: str) -> dict[str, Any]:
        """A ``KeyValue`` list (``attributes`` of a resource or record, ``values`` of a kvlist) as a dict."""
        out: dict[str, Any] = {}
        for n, kv in enumerate(self.part(owner, key, list, at) or []):
            kv_at = f"{at}.{key}[{n}]"
            if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
                self.bad(kv_at, "an attribute must be an object with a string key", kv)
                continue
            value = self.any_value(kv.get("value"), f"{kv_at}.value")
            if value is not _BAD:
                out[kv["key"]] = value
        return out

    def any_value(self, v: Any, at: str) -> Any:
        """An OTLP ``AnyValue`` as a plain value (int64 arrives as a JSON string and becomes an int); a
        bare JSON value is taken as it is."""
        if not isinstance(v, dict):
            return v
        if "stringValue" in v:
            return v["stringValue"]
        if "intValue" in v:
            try:
                return int(v["intValue"])
            except (TypeError, ValueError, OverflowError):
                return self.bad(at, "intValue is not an integer", v)
        if "doubleValue" in v:
            try:
                return float(v["doubleValue"])
            except (TypeError, ValueError, OverflowError):
                return self.bad(at, "doubleValue is not a number", v)
        if "boolValue" in v:
            return bool(v["boolValue"])
        if "arrayValue" in v:
            array_at = f"{at}.arrayValue"
            values = self.part(self.part(v, "arrayValue", dict, at) or {}, "values", list, array_at) or []
            items = (self.any_value(x, f"{array_at}.values[{n}]") for n, x in enumerate(values))
            return [x for x in items if x is not _BAD]
        if "kvlistValue" in v:
            return self.attributes(self.part(v, "kvlistValue", dict, at) or {}, "values", f"{at}.kvlistValue")
        if "bytesValue" in v:
            return v["bytesValue"]
        return None


def _severity_text(number: Any) -> str | None:
    try:
        n = int(number)
    except (TypeError, ValueError, OverflowError):
        return None
    return next((name for top, name in _SEVERITY if 1 <= n <= top), None)


def _otlp_trace_id(value: str) -> str:
    """OTLP/JSON carries hex trace ids; some exporters write protobuf-JSON base64 (16 bytes) instead."""
    if len(value) == 24 and not all(c in "0123456789abcdefABCDEF" for c in value):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return value
        return raw.hex() if len(raw) == 16 else value
    return value


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
    child's start-up to pay off, on a machine with a second core."""
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
            with closing(
                join_in_subprocess(read, batch_size, row_preparer(store), paced=paced)
            ) as joined:  # a store error stops the child
                store_batches(
                    store, joined, progress=show, on_reject=on_reject, background=False, writer=LOGS_WRITER
                )
        else:  # reports every stored batch through ``show``
            ingest_records(
                store, read(), batch_size=batch_size, progress=show, on_reject=on_reject, writer=LOGS_WRITER
            )
        stats.files += 1
        if progress is not None:
            progress(stats)
    return stats
