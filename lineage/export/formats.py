"""The plain formats auditors' tools read: JSON lines, CSV (a zip), GraphML and Graphviz DOT, plus the
one entry point ``render`` that also serves the JSON audit bundle."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from liubai.lineage.export.bundle import ExportMeta, canonical_json, json_bundle
from liubai.lineage.export.facts import ExportError, FactSource, Progress, edge_dict, node_dicts, tick
from liubai.lineage.model import Node, NodeKind
from liubai.lineage.text import clip

__all__ = ["FILE_SUFFIX", "FORMATS", "MEDIA_TYPES", "render", "render_csv_edges", "render_csv_nodes"]

FORMATS = ("json", "jsonl", "csv", "graphml", "dot")
MEDIA_TYPES = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "application/zip",
    "graphml": "application/graphml+xml",
    "dot": "text/vnd.graphviz",
}
FILE_SUFFIX = {"json": ".json", "jsonl": ".jsonl", "csv": ".zip", "graphml": ".graphml", "dot": ".dot"}


def render(
    source: FactSource, fmt: str, meta: ExportMeta, progress: Progress | None = None
) -> Iterator[bytes]:
    """Byte chunks of ``source`` in ``fmt`` (``csv`` gives a zip of nodes.csv, edges.csv and query.json)."""
    writers: dict[str, Callable[[FactSource, ExportMeta, Progress | None], Iterator[bytes]]] = {
        "json": json_bundle,
        "jsonl": _jsonl,
        "csv": _csv_zip,
        "graphml": _graphml,
        "dot": _dot,
    }
    writer = writers.get(fmt)
    if writer is None:
        raise ExportError(
            f"unknown format {clip(fmt)!r}; use one of: {', '.join(FORMATS)} (or slsa for a run)"
        )
    return writer(source, meta, progress)


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
        yield b"".join(canonical_json({"type": "node", **d}) + b"\n" for d in node_dicts(source, nodes))
        n_nodes += len(nodes)
        tick(progress, len(nodes))
    for edges in source.edge_batches():
        yield b"".join(canonical_json({"type": "edge", **edge_dict(e)}) + b"\n" for e in edges)
        n_edges += len(edges)
        tick(progress, len(edges))
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
            tick(progress, len(nodes))

    yield from _csv_rows(NODE_COLUMNS, rows())


def render_csv_edges(source: FactSource, progress: Progress | None = None) -> Iterator[bytes]:
    """edges.csv: src, kind, dst, props (canonical JSON)."""

    def rows() -> Iterator[list[list[str]]]:
        for edges in source.edge_batches():
            yield [[e.src, e.kind.value, e.dst, canonical_json(e.props).decode()] for e in edges]
            tick(progress, len(edges))

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
        tick(progress, len(nodes))
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
        tick(progress, len(edges))
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
    NodeKind.POD: "#9ee0d6",
    NodeKind.ADMISSION: "#f4b6c2",
    NodeKind.CONTAINER: "#b5e3d9",
    NodeKind.SPAN: "#cbc9e2",
    NodeKind.RESOURCE: "#d4e8c9",
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
        tick(progress, len(nodes))
    for edges in source.edge_batches():
        yield "".join(
            f"  {_dot_quote(e.src)} -> {_dot_quote(e.dst)} [label={_dot_quote(e.kind.value)}];\n"
            for e in edges
        ).encode()
        tick(progress, len(edges))
    yield b"}\n"


# --------------------------------------------------------------------------- checking a bundle
