"""The audit bundle: canonical JSON with its own sha256, the provenance of an export, and the check
anyone can run on a bundle without liubai's store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from liubai.lineage.canonical import canonical_json
from liubai.lineage.export.facts import FactSource, Progress, edge_dict, node_dicts, tick
from liubai.lineage.export.selection import Selection
from liubai.lineage.model import Edge, EdgeKind, Node, node_kind_of
from liubai.lineage.records import iso_utc
from liubai.lineage.urls import redact_url

__all__ = [
    "BUNDLE_FORMAT",
    "BundleCheck",
    "ExportMeta",
    "canonical_json",
    "check_bundle",
    "json_bundle",
    "liubai_version",
]

BUNDLE_FORMAT = "liubai.audit-bundle/v1"


def liubai_version() -> str:
    try:
        return metadata.version("liubai")
    except metadata.PackageNotFoundError:
        return "0+unknown"


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


def json_bundle(source: FactSource, meta: ExportMeta, progress: Progress | None) -> Iterator[bytes]:
    """``{"bundle": {...}, "sha256": hex}``; the digest covers the canonical bytes of ``bundle``.

    Keys are emitted in sorted order while nodes and edges stream, so the bytes written equal
    ``canonical_json(bundle)`` (RFC 8785) and anyone can recompute the digest with any JCS library and sha256.
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
                node_dicts(source, [x for x in batch if isinstance(x, Node)])
                if kind == "nodes"
                else [edge_dict(x) for x in batch if isinstance(x, Edge)]
            )
            if not items:
                continue
            chunk = b",".join(canonical_json(i) for i in items)
            yield chunk if first else b"," + chunk
            first = False
            counts[kind] += len(items)
            tick(progress, len(items))
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


def _pre_jcs_form(bundle: Any) -> bytes:
    """The sorted compact JSON bundles were hashed over before RFC 8785 (code point key order, Python's
    float form, integers beyond 2**53 as numbers): read only, so that evidence exported then still checks."""
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


@dataclass(slots=True)
class BundleCheck:
    """The outcome of checking an audit bundle; ``problems`` empty means digest and structure hold."""

    digest: str | None = None
    legacy_form: bool = False  # the digest matched the form bundles had before RFC 8785 (see check_bundle)
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
    if stated != actual and stated == hashlib.sha256(_pre_jcs_form(bundle)).hexdigest():
        out.digest, out.legacy_form = stated, True
    elif stated != actual:
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
