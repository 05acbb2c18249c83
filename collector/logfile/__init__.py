"""Log files as a record source: JSON lines (``-`` is stdin) and OpenTelemetry OTLP/JSON log exports.

Gzip input is recognised by its magic bytes, whatever the file is called. A line that cannot be used
becomes a ``RejectedRecord`` located as ``file:line``; the lines around it still land. Record ids are
content hashes (``liubai.collector.logfields.content_record_id``), so re-reading a file never duplicates and
the same line from a file or SLS is the same node when both use the same source name.

Parts: ``source`` (naming, opening, rejects), ``exact_json`` (parsing), ``jsonl`` and ``otlp`` (the two
formats), ``ingest`` (into a store, offloaded to a child process for big files).
"""

from liubai.collector.logfile.ingest import OFFLOAD_MIN_BYTES, FileIngestStats, ingest_files, read_log_file
from liubai.collector.logfile.jsonl import DOCUMENT_OPENERS, jsonl_line_items, read_jsonl
from liubai.collector.logfile.otlp import read_otlp
from liubai.collector.logfile.source import RAW_KEEP, LogFormat, default_source, open_log

__all__ = [
    "DOCUMENT_OPENERS",
    "OFFLOAD_MIN_BYTES",
    "RAW_KEEP",
    "FileIngestStats",
    "LogFormat",
    "default_source",
    "ingest_files",
    "jsonl_line_items",
    "open_log",
    "read_jsonl",
    "read_log_file",
    "read_otlp",
]
