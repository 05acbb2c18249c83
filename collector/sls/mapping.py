"""SLS logs -> ``LogRecord``: the lines of one PullLogs answer or of one GetLogs page, mapped by a
``FieldMap``. No client and no store here: only what a log's fields become, and its record id.

Record ids: ``<shard>:<pull cursor>:<index>`` for consumed logs (a re-read starts at a stored checkpoint,
the same pull boundary, so it yields the same ids) and a content hash for query results.

Resource: the Kubernetes tags Logtail attaches to a log group (``_pod_name_``, ``_namespace_``, ...; a
GetLogs answer spells them ``__tag__:_pod_name_``) become ``LogRecord.resource`` under OpenTelemetry
semantic-convention keys. They name who wrote a line, not what it says, so they stay out of its id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aliyun.log.proto import LogGroupListRaw

from liubai.collector.logfields import LogMapper, stringify
from liubai.lineage.model import RejectedRecord
from liubai.lineage.records import LogRecord, iso_utc
from liubai.lineage.text import json_text

__all__ = [
    "Mapped",
    "image_attributes",
    "logtail_resource",
    "pulled_records",
    "queried_logs",
    "queried_records",
]

TAG_PREFIX = "__tag__:"
# Logtail's Kubernetes tags -> OpenTelemetry resource attributes (``_image_name_``: see image_attributes)
LOGTAIL_K8S_TAGS = {
    "_pod_name_": "k8s.pod.name",
    "_namespace_": "k8s.namespace.name",
    "_pod_uid_": "k8s.pod.uid",
    "_container_name_": "k8s.container.name",
    "_container_ip_": "k8s.pod.ip",  # the pod's containers share its network namespace, so its IP
    "_node_name_": "k8s.node.name",
    "_node_ip_": "host.ip",
}

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
        resource = logtail_resource({stringify(t.Key): stringify(t.Value) for t in group.LogTags})
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
                record, rejected = mapper.map(fields, source, f"{at}{index}", rid, when)
            except TypeError:  # a key that is not UTF-8, as bytes (the mapper's ``stringify`` takes values)
                fields = {stringify(k): stringify(v) for k, v in fields.items()}
                record, rejected = mapper.map(fields, source, f"{at}{index}", rid, when)
            if resource:
                record.resource = dict(resource)
            yield record, rejected
            index += 1


def queried_records(
    page: list[tuple[dict[str, str], str]], mapper: LogMapper, source: str, at: str, offset: int
) -> Iterator[Mapped]:
    """The logs of one GetLogs page (see ``queried_logs``), with content-hash ids; ``offset``: the index
    of the page's first log in the whole query, for locations."""
    for i, (fields, when) in enumerate(page):
        record, rejected = mapper.map(fields, source, f"{at}{offset + i}", None, when)
        resource = logtail_resource({k: v for k, v in fields.items() if k.startswith(TAG_PREFIX)})
        if resource:
            record.resource = resource
        yield record, rejected


def logtail_resource(tags: Mapping[str, str]) -> dict[str, str]:
    """The resource attributes of Logtail's Kubernetes tags (keys with or without ``__tag__:``); other
    tags and empty values are left out."""
    out: dict[str, str] = {}
    for key, value in tags.items():
        if not value:
            continue
        name = key.removeprefix(TAG_PREFIX)
        if name == "_image_name_":
            out.update(image_attributes(value))
        elif name in LOGTAIL_K8S_TAGS:
            out[LOGTAIL_K8S_TAGS[name]] = value
    return out


def image_attributes(reference: str) -> dict[str, str]:
    """``container.image.name`` of an image reference, with ``container.image.tags`` when it names a tag
    and ``container.image.repo_digests`` (``name@digest``) when it names a digest. A colon before the
    last ``/`` is a registry's port, not a tag (``registry:5000/team/app:1.2``)."""
    named, _, digest = reference.partition("@")
    slash = named.rfind("/")
    colon = named.rfind(":")
    name, tag = (named[:colon], named[colon + 1 :]) if colon > slash else (named, "")
    out = {"container.image.name": name}
    if tag:
        out["container.image.tags"] = tag
    if digest:
        out["container.image.repo_digests"] = f"{name}@{digest}"
    return out


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
