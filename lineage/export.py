"""Audit export: select a slice of the lineage graph and stream it out in formats auditors' tools read.

Auditors keep evidence outside liubai's database, so every format here is plain and standard: the
canonical JSON audit bundle (with its own sha256, checkable without liubai), JSON lines, CSV, GraphML
and Graphviz DOT. Writers are generators of byte chunks that pull facts from the store batch by batch,
so an export of the whole store runs in bounded memory and the same generator feeds a file or an HTTP
response.

The JSON bundle and JSON lines carry each node's provenance (``liubai.lineage.provenance``): ``writer``, the
writer that owns the node, ``owners`` for keys another writer added, and ``claims``, values other
writers gave that the store did not take as facts. ``props`` only ever holds the facts, so a signed
export never presents a claim as one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from typing import Any, Protocol
from xml.sax.saxutils import escape, quoteattr

from liubai.lineage.model import (
    AuditIdError,
    Direction,
    Edge,
    EdgeKind,
    Node,
    NodeKind,
    audit_node_id,
    commit_node_id,
    node_kind_of,
    parse_audit_id,
    trace_node_id,
)
from liubai.lineage.provenance import Provenance
from liubai.lineage.records import iso_utc
from liubai.lineage.store.base import LineageStore, Subgraph
from liubai.lineage.text import clip
from liubai.lineage.urls import redact_url

__all__ = [
    "BUNDLE_FORMAT",
    "FORMATS",
    "MAX_DEPTH",
    "MAX_LIMIT",
    "BundleCheck",
    "ExportError",
    "ExportMeta",
    "FactSource",
    "Selection",
    "Selector",
    "canonical_json",
    "check_bundle",
    "liubai_version",
    "parse_time_bound",
    "render",
    "render_csv_edges",
    "render_csv_nodes",
    "resolve_start",
    "select",
]

BUNDLE_FORMAT = "liubai.audit-bundle/v1"
FORMATS = ("json", "jsonl", "csv", "graphml", "dot")
MEDIA_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "application/zip",
    "graphml": "application/graphml+xml",
    "dot": "text/vnd.graphviz",
}
FILE_SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".zip", "graphml": ".graphml", "dot": ".dot"}
BATCH = 5000
# A walk's bounds, as the HTTP export has them: a store cannot take an unbounded number, a user cannot
# read an unbounded walk; --all exports everything without a walk.
MAX_DEPTH = 50
MAX_LIMIT = 1_000_000

Progress = Callable[[int], None]


class ExportError(ValueError):
    """A selection or bundle a user asked for cannot be produced; the message says why and what to change."""


def liubai_version() -> str:
    try:
        return metadata.version("liubai")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the byte form every bundle digest is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


# --------------------------------------------------------------------------- selection


class Selector(StrEnum):
    NODE = "node"
    AUDIT_ID = "audit_id"
    COMMIT = "commit"
    TRACE = "trace"
    RUN = "run"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class Selection:
    """What to export: a start node named by one selector, how far to walk, and a time window."""

    selector: Selector
    value: str | None = None
    depth: int = 3
    direction: Direction = Direction.BOTH
    since: str | None = None
    until: str | None = None
    limit: int = 100_000

    def to_dict(self, start: str | None) -> dict[str, Any]:
        """The query as recorded in a bundle, so a reader knows what the slice is a slice of."""
        out: dict[str, Any] = {"selector": self.selector.value, "value": self.value, "start": start}
        if self.selector is not Selector.ALL:
            out.update(depth=self.depth, direction=self.direction.value, limit=self.limit)
        out.update(since=self.since, until=self.until)
        return out


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_time_bound(text: str, what: str = "time") -> str:
    """An ISO 8601 date or date-time (no zone = UTC) as the stored time form, which compares as text."""
    raw = text.strip()
    try:
        if _DATE_ONLY.fullmatch(raw):
            dt = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith(("Z", "z")) else raw)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
    except ValueError:
        raise ExportError(
            f"{what}: {clip(text)!r} is not an ISO 8601 date or time (e.g. 2026-01-31T12:00:00Z)"
        ) from None
    return iso_utc(dt)


def resolve_start(store: LineageStore, selection: Selection) -> str | None:
    """The node id a selector names; ExportError if it names nothing in the store (None for ``all``)."""
    sel, value = selection.selector, (selection.value or "").strip()
    if sel is Selector.ALL:
        return None
    if not value:
        raise ExportError(f"--{sel.value.replace('_', '-')} needs a value")
    if sel is Selector.NODE:
        try:
            node_kind_of(value)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        node_id = value
    elif sel is Selector.AUDIT_ID:
        try:
            node_id = audit_node_id(parse_audit_id(value))
        except AuditIdError as exc:
            raise ExportError(str(exc)) from None
    elif sel is Selector.COMMIT:
        node_id = _resolve_commit(store, value)
    elif sel is Selector.TRACE:
        node_id = trace_node_id(value.lower() if re.fullmatch(r"[0-9a-fA-F]{32}", value) else value)
    else:
        node_id = value if value.startswith("run:") else f"run:{value}"  # as lineage.slsa.run_id_of
    if store.get(node_id) is None:
        raise ExportError(
            f"no {sel.value.replace('_', ' ')} {clip(value)!r} in the store (looked for node {clip(node_id)!r})"
        )
    return node_id


def _resolve_commit(store: LineageStore, value: str) -> str:
    sha = value.lower().removeprefix("commit:")
    if not re.fullmatch(r"[0-9a-f]{4,64}", sha):
        raise ExportError(f"commit {clip(value)!r} is not a hex commit id (4 to 64 hex characters)")
    if len(sha) in (40, 64):
        return commit_node_id(sha)
    found = store.find_by_prefix(NodeKind.COMMIT, sha, limit=2)
    if not found:
        raise ExportError(f"no commit starting with {sha!r} in the store")
    if len(found) > 1:
        raise ExportError(
            f"commit prefix {sha!r} is ambiguous ({found[0].id}, {found[1].id}, ...): give more digits"
        )
    return found[0].id


class FactSource(Protocol):
    """Facts to write, pulled in batches; may be iterated more than once (GraphML needs a pre-pass)."""

    start: str | None
    truncated: bool

    def total(self) -> int | None:
        """An upper bound of the facts to come, for progress display."""
        ...

    def node_batches(self) -> Iterator[list[Node]]: ...

    def edge_batches(self) -> Iterator[list[Edge]]: ...

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        """Who wrote each of ``nodes`` (from the store the facts come from)."""
        ...


@dataclass(slots=True)
class _Window:
    since: str | None
    until: str | None

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None

    def admits(self, node: Node) -> bool:
        """A node is in the window if its seen span overlaps it; nodes with no time (files, repos) always are."""
        p = node.props
        first = p.get("first_seen") or p.get("time") or p.get("started_at") or p.get("committed_at")
        last = p.get("last_seen") or p.get("ended_at") or first
        if not isinstance(first, str):
            return True
        last = last if isinstance(last, str) else first
        return (self.until is None or first <= self.until) and (self.since is None or last >= self.since)


@dataclass(slots=True)
class SubgraphSource:
    """A traversal answer (already bounded by the selection's limit), in id order."""

    nodes: list[Node]
    edges: list[Edge]
    start: str | None
    truncated: bool = False
    store: LineageStore | None = None

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        return self.store.provenance([n.id for n in nodes]) if self.store is not None and nodes else {}

    def total(self) -> int | None:
        return len(self.nodes) + len(self.edges)

    def node_batches(self) -> Iterator[list[Node]]:
        for i in range(0, len(self.nodes), BATCH):
            yield self.nodes[i : i + BATCH]

    def edge_batches(self) -> Iterator[list[Edge]]:
        for i in range(0, len(self.edges), BATCH):
            yield self.edges[i : i + BATCH]


@dataclass(slots=True)
class StoreSource:
    """The whole store, streamed batch by batch so memory does not grow with the store.

    There is no snapshot across batches: facts ingested during the export may or may not appear.
    """

    store: LineageStore
    window: _Window
    start: str | None = None
    truncated: bool = False

    def provenance(self, nodes: Sequence[Node]) -> dict[str, Provenance]:
        return self.store.provenance([n.id for n in nodes]) if nodes else {}

    def total(self) -> int | None:
        counts = self.store.counts()
        return sum(counts.get(k.value, 0) for k in NodeKind) + counts.get("edges", 0)

    def node_batches(self) -> Iterator[list[Node]]:
        for batch in self.store.iter_nodes(BATCH):
            yield [n for n in batch if self.window.admits(n)] if self.window.active else batch

    def edge_batches(self) -> Iterator[list[Edge]]:
        for batch in self.store.iter_edges(BATCH):
            if not self.window.active:
                yield batch
                continue
            ends = self.store.get_many(list({e.src for e in batch} | {e.dst for e in batch}))
            kept = {n.id for n in ends if self.window.admits(n)}
            yield [e for e in batch if e.src in kept and e.dst in kept]


def select(store: LineageStore, selection: Selection) -> FactSource:
    """The facts a selection names: a lineage walk from its start node, or the whole store for ``all``."""
    window = _Window(selection.since, selection.until)
    if selection.since and selection.until and selection.since > selection.until:
        raise ExportError(f"--since {selection.since} is after --until {selection.until}")
    if not 0 <= selection.depth <= MAX_DEPTH:
        raise ExportError(f"--depth must be 0 to {MAX_DEPTH}, got {selection.depth}")
    if not 1 <= selection.limit <= MAX_LIMIT:
        raise ExportError(f"--limit must be 1 to {MAX_LIMIT}, got {selection.limit}")
    start = resolve_start(store, selection)
    if start is None:
        return StoreSource(store, window)
    sub: Subgraph = store.lineage(start, selection.direction, selection.depth, limit=selection.limit)
    nodes = sorted((n for n in sub.nodes if not window.active or window.admits(n)), key=lambda n: n.id)
    kept = {n.id for n in nodes}
    edges = sorted((e for e in sub.edges if e.src in kept and e.dst in kept), key=lambda e: e.key)
    return SubgraphSource(nodes, edges, start, sub.truncated, store)


# --------------------------------------------------------------------------- writers


@dataclass(slots=True)
class ExportMeta:
    """Where a bundle came from: written into json/jsonl/zip exports so the evidence explains itself."""

    query: dict[str, Any]
    store: str
    generated_at: str = field(default_factory=lambda: iso_utc(datetime.now(UTC)))
    version: str = field(default_factory=liubai_version)

    @classmethod
    def of(cls, selection: Selection, source: FactSource, store_url: str) -> ExportMeta:
        query = selection.to_dict(source.start)
        query["truncated"] = source.truncated
        return cls(query=query, store=redact_url(store_url))


def node_dict(n: Node, prov: Provenance | None = None) -> dict[str, Any]:
    """A node as exports write it; with ``prov``, its writer and, where there are any, the keys other
    writers added and the claims kept beside its facts."""
    out: dict[str, Any] = {"id": n.id, "kind": n.kind.value, "placeholder": n.placeholder, "props": n.props}
    if prov is not None:
        out["writer"] = prov.writer
        if prov.owners:
            out["owners"] = prov.owners
        if prov.claims:
            out["claims"] = [{"key": c.key, "writer": c.writer, "value": c.value} for c in prov.claims]
    return out


def _node_dicts(source: FactSource, nodes: Sequence[Node]) -> list[dict[str, Any]]:
    found = source.provenance(nodes)
    return [node_dict(n, found.get(n.id)) for n in nodes]


def edge_dict(e: Edge) -> dict[str, Any]:
    return {"src": e.src, "kind": e.kind.value, "dst": e.dst, "props": e.props}


def _tick(progress: Progress | None, n: int) -> None:
    if progress is not None and n:
        progress(n)


def render(
    source: FactSource, fmt: str, meta: ExportMeta, progress: Progress | None = None
) -> Iterator[bytes]:
    """Byte chunks of ``source`` in ``fmt`` (``csv`` gives a zip of nodes.csv, edges.csv and query.json)."""
    writers: dict[str, Callable[[FactSource, ExportMeta, Progress | None], Iterator[bytes]]] = {
        "json": _json_bundle,
        "jsonl": _jsonl,
        "csv": _csv_zip,
        "graphml": _graphml,
        "dot": _dot,
    }
    writer = writers.get(fmt)
    if writer is None:
        raise ExportError(f"unknown format {clip(fmt)!r}; use one of: {', '.join(FORMATS)} (or slsa for a run)")
    return writer(source, meta, progress)


def _json_bundle(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    """``{"bundle": {...}, "sha256": hex}``; the digest covers the canonical bytes of ``bundle``.

    Keys are emitted in sorted order while nodes and edges stream, so the bytes written equal
    ``canonical_json(bundle)`` and anyone can recompute the digest with any JSON parser and sha256.
    Sorted order also puts edges before nodes: stores add an edge's ends with the edge and never remove
    nodes, so a whole-store bundle stays consistent even while ingestion runs beside the export.
    """
    digest = hashlib.sha256()
    counts = {"nodes": 0, "edges": 0}

    def streamed(kind: str) -> Iterator[bytes]:
        yield b"["
        first = True
        batches: Iterator[Sequence[Node | Edge]] = (
            source.node_batches() if kind == "nodes" else source.edge_batches()
        )
        for batch in batches:
            items = (
                _node_dicts(source, [x for x in batch if isinstance(x, Node)])
                if kind == "nodes"
                else [edge_dict(x) for x in batch if isinstance(x, Edge)]
            )
            if not items:
                continue
            chunk = b",".join(canonical_json(i) for i in items)
            yield chunk if first else b"," + chunk
            first = False
            counts[kind] += len(items)
            _tick(progress, len(items))
        yield b"]"

    fixed: dict[str, Callable[[], Any]] = {
        "format": lambda: BUNDLE_FORMAT,
        "generated_at": lambda: meta.generated_at,
        "liubai_version": lambda: meta.version,
        "query": lambda: meta.query,
        "store": lambda: meta.store,
        "summary": lambda: {
            "nodes": counts["nodes"],
            "edges": counts["edges"],
            "truncated": source.truncated,
        },
    }
    yield b'{"bundle":'
    sep = b"{"
    for key in sorted([*fixed, "nodes", "edges"]):
        head = sep + canonical_json(key) + b":"
        digest.update(head)
        yield head
        sep = b","
        if key in ("nodes", "edges"):
            for chunk in streamed(key):
                digest.update(chunk)
                yield chunk
        else:
            chunk = canonical_json(fixed[key]())
            digest.update(chunk)
            yield chunk
    digest.update(b"}")
    yield b"}"
    yield b',"sha256":' + canonical_json(digest.hexdigest()) + b"}\n"


def _jsonl(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    """One canonical JSON object per line: a header, every node, every edge, a summary."""
    header = {
        "type": "header",
        "format": "liubai.jsonl/v1",
        "query": meta.query,
        "store": meta.store,
        "generated_at": meta.generated_at,
        "liubai_version": meta.version,
    }
    yield canonical_json(header) + b"\n"
    n_nodes = n_edges = 0
    for nodes in source.node_batches():
        yield b"".join(canonical_json({"type": "node", **d}) + b"\n" for d in _node_dicts(source, nodes))
        n_nodes += len(nodes)
        _tick(progress, len(nodes))
    for edges in source.edge_batches():
        yield b"".join(canonical_json({"type": "edge", **edge_dict(e)}) + b"\n" for e in edges)
        n_edges += len(edges)
        _tick(progress, len(edges))
    yield (
        canonical_json({"type": "summary", "nodes": n_nodes, "edges": n_edges, "truncated": source.truncated})
        + b"\n"
    )


NODE_COLUMNS = ("id", "kind", "placeholder", "props")
EDGE_COLUMNS = ("src", "kind", "dst", "props")


def _csv_rows(header: Sequence[str], rows: Iterator[list[list[str]]]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for batch in rows:
        writer.writerows(batch)
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def render_csv_nodes(source: FactSource, progress: Progress | None = None) -> Iterator[bytes]:
    """nodes.csv: id, kind, placeholder (true/false), props (canonical JSON, as properties differ by kind)."""

    def rows() -> Iterator[list[list[str]]]:
        for nodes in source.node_batches():
            yield [
                [n.id, n.kind.value, "true" if n.placeholder else "false", canonical_json(n.props).decode()]
                for n in nodes
            ]
            _tick(progress, len(nodes))

    yield from _csv_rows(NODE_COLUMNS, rows())


def render_csv_edges(source: FactSource, progress: Progress | None = None) -> Iterator[bytes]:
    """edges.csv: src, kind, dst, props (canonical JSON)."""

    def rows() -> Iterator[list[list[str]]]:
        for edges in source.edge_batches():
            yield [[e.src, e.kind.value, e.dst, canonical_json(e.props).decode()] for e in edges]
            _tick(progress, len(edges))

    yield from _csv_rows(EDGE_COLUMNS, rows())


class _Drain(io.RawIOBase):
    """A write-only sink that zipfile streams into; its contents are handed on and dropped as they come."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.parts.append(data)
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _csv_zip(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    sink = _Drain()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "query.json",
            canonical_json(
                {
                    "query": meta.query,
                    "store": meta.store,
                    "generated_at": meta.generated_at,
                    "liubai_version": meta.version,
                }
            ),
        )
        yield sink.take()
        for name, chunks in (
            ("nodes.csv", render_csv_nodes(source, progress)),
            ("edges.csv", render_csv_edges(source, progress)),
        ):
            info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
                    if data := sink.take():
                        yield data
            yield sink.take()
    yield sink.take()


# GraphML ------------------------------------------------------------------------------------------

_XML_BAD = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CR = {"\r": "&#13;"}  # a bare CR in XML text would be normalised away by every parser
NODE_META = {"liubai.kind": "string", "liubai.placeholder": "boolean"}
EDGE_META = {"liubai.kind": "string"}


def _xml_text(value: str) -> str:
    """XML 1.0 cannot carry control characters at all; they are written as visible \\xNN escapes."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _type_tag(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "string"


def _graphml_type(tags: set[str]) -> str:
    if len(tags) == 1:
        return next(iter(tags))
    if tags <= {"long", "double"}:
        return "double"
    return "string"


def _graphml_value(value: Any, typ: str) -> str:
    if typ == "boolean":
        return "true" if value else "false"
    if typ in ("long", "double") and not isinstance(value, bool) and isinstance(value, int | float):
        return repr(float(value)) if typ == "double" else str(value)
    if isinstance(value, str):
        return value
    return canonical_json(value).decode()


def _prop_types(source: FactSource) -> tuple[dict[str, str], dict[str, str]]:
    """A pre-pass over the facts: GraphML declares every attribute and its type before the graph."""
    node_tags: dict[str, set[str]] = {}
    edge_tags: dict[str, set[str]] = {}
    for nodes in source.node_batches():
        for n in nodes:
            for k, v in n.props.items():
                if v is not None:
                    node_tags.setdefault(k, set()).add(_type_tag(v))
    for edges in source.edge_batches():
        for e in edges:
            for k, v in e.props.items():
                if v is not None:
                    edge_tags.setdefault(k, set()).add(_type_tag(v))
    return (
        {k: _graphml_type(t) for k, t in sorted(node_tags.items())},
        {k: _graphml_type(t) for k, t in sorted(edge_tags.items())},
    )


def _graphml(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    """GraphML for networkx, Gephi and yEd: every property becomes a typed attribute (lists/maps as JSON).

    Node and edge kinds are the attributes ``liubai.kind`` (a Workload also has its own ``kind`` property).
    """
    node_types, edge_types = _prop_types(source)
    node_keys: dict[str, tuple[str, str]] = {}
    edge_keys: dict[str, tuple[str, str]] = {}
    for domain, types, meta_attrs, keys in (
        ("node", node_types, NODE_META, node_keys),
        ("edge", edge_types, EDGE_META, edge_keys),
    ):
        for name, typ in {**meta_attrs, **{k: t for k, t in types.items() if k not in meta_attrs}}.items():
            keys[name] = (f"{domain[0]}{len(keys)}", typ)
    about = {"query": meta.query, "store": meta.store, "generated_at": meta.generated_at}
    out = io.StringIO()
    out.write(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
    )
    out.write(f"  <desc>{escape(_xml_text(canonical_json(about).decode()))}</desc>\n")
    for domain, keys in (("node", node_keys), ("edge", edge_keys)):
        for name, (kid, typ) in keys.items():
            out.write(
                f'  <key id="{kid}" for="{domain}" attr.name={quoteattr(_xml_text(name))} attr.type="{typ}"/>\n'
            )
    out.write('  <graph id="lineage" edgedefault="directed">\n')
    yield out.getvalue().encode()

    def data(keys: dict[str, tuple[str, str]], values: Mapping[str, Any]) -> str:
        parts = []
        for name, value in values.items():
            if value is None or name not in keys:
                continue
            kid, typ = keys[name]
            parts.append(f'<data key="{kid}">{escape(_xml_text(_graphml_value(value, typ)), _CR)}</data>')
        return "".join(parts)

    for nodes in source.node_batches():
        lines = []
        for n in nodes:
            attrs = {
                "liubai.kind": n.kind.value,
                "liubai.placeholder": n.placeholder,
                **{k: v for k, v in n.props.items() if k not in NODE_META},
            }
            lines.append(f"    <node id={quoteattr(_xml_text(n.id))}>{data(node_keys, attrs)}</node>\n")
        yield "".join(lines).encode()
        _tick(progress, len(nodes))
    count = 0
    for edges in source.edge_batches():
        lines = []
        for e in edges:
            attrs = {"liubai.kind": e.kind.value, **{k: v for k, v in e.props.items() if k not in EDGE_META}}
            lines.append(
                f'    <edge id="e{count}" source={quoteattr(_xml_text(e.src))} '
                f"target={quoteattr(_xml_text(e.dst))}>{data(edge_keys, attrs)}</edge>\n"
            )
            count += 1
        yield "".join(lines).encode()
        _tick(progress, len(edges))
    yield b"  </graph>\n</graphml>\n"


# DOT ----------------------------------------------------------------------------------------------

_DOT_COLOURS = {
    NodeKind.REPO: "#d9d9d9",
    NodeKind.COMMIT: "#9ecae1",
    NodeKind.WORKLOAD: "#c6dbef",
    NodeKind.AUDIT_RECORD: "#fdd0a2",
    NodeKind.TRACE: "#dadaeb",
    NodeKind.LOG_EVENT: "#efedf5",
    NodeKind.PIPELINE_RUN: "#a1d99b",
    NodeKind.PROCESS: "#c7e9c0",
    NodeKind.FILE: "#fff7bc",
}


_PLACEHOLDER_STYLE = ', style="rounded,filled,dashed"'


def _dot_quote(text: str) -> str:
    """A DOT double-quoted string; untrusted text cannot end the string or inject statements."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n") + '"'


def _dot_label(n: Node) -> str:
    key = n.id.partition(":")[2]
    if n.kind is NodeKind.COMMIT:
        key = key[:12] + (f" {n.props['subject']}" if isinstance(n.props.get("subject"), str) else "")
    if len(key) > 60:
        key = key[:28] + "…" + key[-28:]
    return f"{n.kind.value}\n{key}"


def _dot(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    """Graphviz DOT (``dot -Tsvg``): one box per node coloured by kind, edges labelled with their kind."""
    yield (
        "digraph lineage {\n"
        '  graph [rankdir=LR, charset="UTF-8", label='
        + _dot_quote(f"liubai export {meta.generated_at}")
        + "];\n"
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];\n'
        '  edge [fontname="Helvetica", fontsize=8];\n'
    ).encode()
    for nodes in source.node_batches():
        yield "".join(
            f"  {_dot_quote(n.id)} [label={_dot_quote(_dot_label(n))}, tooltip={_dot_quote(n.id)}, "
            f'fillcolor="{_DOT_COLOURS[n.kind]}"{_PLACEHOLDER_STYLE if n.placeholder else ""}];\n'
            for n in nodes
        ).encode()
        _tick(progress, len(nodes))
    for edges in source.edge_batches():
        yield "".join(
            f"  {_dot_quote(e.src)} -> {_dot_quote(e.dst)} [label={_dot_quote(e.kind.value)}];\n"
            for e in edges
        ).encode()
        _tick(progress, len(edges))
    yield b"}\n"


# --------------------------------------------------------------------------- checking a bundle


@dataclass(slots=True)
class BundleCheck:
    """The outcome of checking an audit bundle; ``problems`` empty means digest and structure hold."""

    digest: str | None = None
    nodes: int = 0
    edges: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_bundle(doc: Any) -> BundleCheck:
    """Recompute the digest and check that the bundle is whole: known kinds, unique ids, every edge's ends
    present, and counts as the summary states (so a dropped isolated node is caught too)."""
    out = BundleCheck()
    if not isinstance(doc, dict) or set(doc) != {"bundle", "sha256"}:
        out.problems.append('not a liubai audit bundle: want a JSON object {"bundle": ..., "sha256": ...}')
        return out
    bundle, stated = doc["bundle"], doc["sha256"]
    actual = hashlib.sha256(canonical_json(bundle)).hexdigest()
    out.digest = actual
    if stated != actual:
        out.problems.append(f"digest mismatch: bundle states sha256 {stated}, content hashes to {actual}")
    if not isinstance(bundle, dict):
        out.problems.append("bundle is not a JSON object")
        return out
    if bundle.get("format") != BUNDLE_FORMAT:
        out.problems.append(f"unknown bundle format {bundle.get('format')!r} (want {BUNDLE_FORMAT!r})")
    nodes, edges = bundle.get("nodes"), bundle.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        out.problems.append("bundle lacks its nodes or edges list")
        return out
    ids: set[str] = set()
    for i, n in enumerate(nodes):
        nid = n.get("id") if isinstance(n, dict) else None
        if not isinstance(nid, str):
            out.problems.append(f"node #{i} has no id")
            continue
        if nid in ids:
            out.problems.append(f"node {nid!r} appears twice")
        ids.add(nid)
        try:
            if node_kind_of(nid).value != n.get("kind"):
                out.problems.append(
                    f"node {nid!r} has kind {n.get('kind')!r}, its id says {node_kind_of(nid).value!r}"
                )
        except ValueError as exc:
            out.problems.append(str(exc))
    kinds = {k.value for k in EdgeKind}
    for i, e in enumerate(edges):
        if not isinstance(e, dict):
            out.problems.append(f"edge #{i} is not an object")
            continue
        # a hostile bundle may put lists or objects anywhere: only strings are looked up in the sets
        kind = e.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            out.problems.append(f"edge #{i} has unknown kind {kind!r}")
        for end in ("src", "dst"):
            value = e.get(end)
            if not isinstance(value, str) or value not in ids:
                out.problems.append(
                    f"edge {e.get('src')!r} -{e.get('kind')}-> {e.get('dst')!r}: its {end} node is not in the bundle"
                )
    out.nodes, out.edges = len(nodes), len(edges)
    summary = bundle.get("summary")
    if (
        not isinstance(summary, dict)
        or summary.get("nodes") != len(nodes)
        or summary.get("edges") != len(edges)
    ):
        stated_n = summary.get("nodes") if isinstance(summary, dict) else None
        stated_e = summary.get("edges") if isinstance(summary, dict) else None
        out.problems.append(
            f"summary states {stated_n} nodes and {stated_e} edges, bundle holds {len(nodes)} and {len(edges)}"
        )
    if len(out.problems) > 20:
        out.problems[20:] = [f"... and {len(out.problems) - 20} more problems"]
    return out
