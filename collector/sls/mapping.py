"""SLS logs -> ``LogRecord``: the lines of one PullLogs answer or of one GetLogs page, mapped by a
``FieldMap``. No client and no store here: only what a log's fields become, and its record id.

Record ids: ``<shard>:<pull cursor>:<index>`` for consumed logs (a re-read starts at a stored checkpoint,
the same pull boundary, so it yields the same ids) and a content hash for query results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aliyun.log.proto import LogGroupListRaw

from liubai.collector.logfields import LogMapper, stringify
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, iso_utc
from liubai.lineage.text import json_text

__all__ = ["Mapped", "pulled_records", "queried_logs", "queried_records"]

Mapped = tuple[LogRecord, list[RejectedRecord]]


def pulled_records(
    resp: Any, mapper: LogMapper, source: str, at: str, id_prefix: str | None
) -> Iterator[Mapped]:
    """The lines of one pull, each with what its mapping rejected. ``at``: the location prefix (the
    line's index in the pull follows it); ``id_prefix`` (``<shard>:<cursor>:``): cursor-mode ids, the
    same with the same pull size however pulls are batched; None: content-hash ids."""
    times: dict[tuple[int, int], str] = {}  # the lines of a log group mostly share one time
    index = 0
    groups = resp.loggroup_list
    # The SDK parses a pull its protobuf runtime refuses (text that is not UTF-8) as all bytes; upb
    # parses it, handing over as bytes only the strings that are not UTF-8.
    as_bytes = isinstance(groups, LogGroupListRaw)
    for group in groups.LogGroups:
        for entry in group.Logs:
            if as_bytes:
                fields = {stringify(c.Key): stringify(c.Value) for c in entry.Contents}
            else:
                fields = {c.Key: c.Value for c in entry.Contents}
            stamp = (entry.Time, entry.Time_ns if entry.HasField("Time_ns") else 0)
            when = times.get(stamp)
            if when is None:
                when = times[stamp] = iso_utc(stamp[0] + stamp[1] / 1e9)
            rid = f"{id_prefix}{index}" if id_prefix is not None else None
            try:
                yield mapper.map(fields, source, f"{at}{index}", rid, when)
            except TypeError:  # a key that is not UTF-8, as bytes (the mapper's ``stringify`` takes values)
                fields = {stringify(k): stringify(v) for k, v in fields.items()}
                yield mapper.map(fields, source, f"{at}{index}", rid, when)
            index += 1


def queried_records(
    page: list[tuple[dict[str, str], str]], mapper: LogMapper, source: str, at: str, offset: int
) -> Iterator[Mapped]:
    """The logs of one GetLogs page (see ``queried_logs``), with content-hash ids; ``offset``: the index
    of the page's first log in the whole query, for locations."""
    for i, (fields, when) in enumerate(page):
        yield mapper.map(fields, source, f"{at}{offset + i}", None, when)


def queried_logs(resp: Any) -> list[tuple[dict[str, str], str]]:
    """(fields, ISO time) per log of a GetLogs answer, as text that can be stored (``json_text``)."""
    out = []
    for entry in resp.get_logs():
        contents = entry.get_contents()
        if not isinstance(contents, dict):
            raise ValueError(f"a log is not an object: {str(contents)[:80]}")
        fields = {json_text(str(k)): json_text(v) if isinstance(v, str) else v for k, v in contents.items()}
        out.append((fields, iso_utc(int(entry.get_time()))))
    return out
