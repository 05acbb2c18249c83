"""JSON lines as log records: one object per line, or (recognised by the first line) a file of
pretty-printed documents read document by document. A line that cannot be used becomes a reject located as
``file:line``; the lines around it still land."""

from __future__ import annotations

import gzip
import itertools
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

from liubai.collector.logfields import FieldMap, LogMapper, log_mapper
from liubai.collector.logfile.exact_json import loads, storable
from liubai.collector.logfile.otlp import otlp_document
from liubai.collector.logfile.source import LogItem, default_source, open_log, raw_json, reject
from liubai.lineage.model import RejectedRecord
from liubai.lineage.text import visible

__all__ = ["DOCUMENT_OPENERS", "jsonl_line_items", "read_jsonl"]

# A first line that opens an object or array and holds nothing else is no JSON line: the file may be
# documents over many lines (``jq .`` output, an OTLP export saved pretty-printed).
DOCUMENT_OPENERS = (b"{", b"[")
_DOCUMENT_MAX = 64 << 20  # bytes held to find out; a larger file of such documents is read as lines
_NOT_SPACE = re.compile(r"\S")


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
        yield reject(source, where, f"cannot read: {exc}", b"")


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
        obj = loads(line)
    except ValueError as exc:
        yield reject(source, where, f"not valid JSON: {exc}", line)
        return
    yield from _object_items(obj, source, where, line, mapper, fm)


def _object_items(
    obj: Any, source: str, where: str, line: bytes | None, mapper: LogMapper, fm: FieldMap
) -> Iterator[LogItem]:
    """One JSON value read as a log line: an object is a record, or, holding a ``resourceLogs`` or
    ``resourceSpans`` list, a whole OTLP document (the collector file exporter's layout); anything else is a reject, quoting
    ``line`` (the value's own text where it had one)."""
    if type(obj) is not dict:  # JSON gives plain dicts only
        raw = raw_json(obj) if line is None else line
        yield reject(source, where, f"expected a JSON object, got {type(obj).__name__}", raw)
        return
    if isinstance(obj.get("resourceLogs"), list) or isinstance(obj.get("resourceSpans"), list):
        yield from otlp_document(obj, source, where, fm)
        return
    record, rejected = mapper.map(obj, source, where)
    yield record
    yield from rejected


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
                doc = storable(doc)
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
