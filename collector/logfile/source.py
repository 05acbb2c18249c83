"""What every log reader shares: the source name of a file, opening it (gzip or not, stdin for ``-``),
and rejects that keep a bounded prefix of the raw text they refuse."""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, SpanRecord
from liubai.lineage.text import visible

__all__ = [
    "JSON_TYPES",
    "RAW_KEEP",
    "LogFormat",
    "LogItem",
    "default_source",
    "open_log",
    "raw_json",
    "reject",
]

LogFormat = Literal["jsonl", "otlp"]
LogItem = LogRecord | SpanRecord | RejectedRecord  # OTLP files may hold traces too
RAW_KEEP = 2000  # rejected raw text is kept, but not a whole multi-megabyte line
_GZIP_MAGIC = b"\x1f\x8b"


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


def reject(source: str, where: str, reason: str, raw: bytes | str) -> RejectedRecord:
    """A reject at ``where`` keeping the first ``RAW_KEEP`` characters of the input it refuses."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return RejectedRecord(source, where, reason, text[:RAW_KEEP].rstrip("\n"))


# JSON's names for the value types a reject reason quotes
JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def raw_json(value: Any) -> str:
    """The JSON of a rejected part, kept as the raw text of its reject."""
    try:
        return json.dumps(value)[:RAW_KEEP]
    except (RecursionError, ValueError):
        return f"({JSON_TYPES.get(type(value), 'a value')} nested too deeply to keep)"
