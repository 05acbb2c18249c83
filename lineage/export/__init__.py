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

The package is split at its seams: ``selection`` (what to export), ``formats`` (how it is written),
``bundle`` (canonical JSON, digest, provenance of the export and its check) and ``facts`` (what they share).
Every public name stays importable from ``liubai.lineage.export``.
"""

from liubai.lineage.export.bundle import (
    BUNDLE_FORMAT,
    BundleCheck,
    ExportMeta,
    canonical_json,
    check_bundle,
    liubai_version,
)
from liubai.lineage.export.facts import ExportError, FactSource, Progress, edge_dict, node_dict
from liubai.lineage.export.formats import (
    FILE_SUFFIX,
    FORMATS,
    MEDIA_TYPES,
    render,
    render_csv_edges,
    render_csv_nodes,
)
from liubai.lineage.export.selection import (
    BATCH,
    MAX_DEPTH,
    MAX_LIMIT,
    Selection,
    Selector,
    StoreSource,
    SubgraphSource,
    parse_time_bound,
    resolve_start,
    select,
)

__all__ = [
    "BATCH",
    "BUNDLE_FORMAT",
    "FILE_SUFFIX",
    "FORMATS",
    "MAX_DEPTH",
    "MAX_LIMIT",
    "MEDIA_TYPES",
    "BundleCheck",
    "ExportError",
    "ExportMeta",
    "FactSource",
    "Progress",
    "Selection",
    "Selector",
    "StoreSource",
    "SubgraphSource",
    "canonical_json",
    "check_bundle",
    "edge_dict",
    "liubai_version",
    "node_dict",
    "parse_time_bound",
    "render",
    "render_csv_edges",
    "render_csv_nodes",
    "resolve_start",
    "select",
]
