"""Objects saved from an API server, read as the cluster collector reads them live.

For an audit of a cluster liubai cannot reach (an air-gapped one, or evidence handed over as files) and for
the demo's replay: ``kubectl get deployments,replicasets,pods,... -A -o json`` output (a ``List``), one such
document per line, or single objects. Each object goes through the same conversion as a live read
(``to_record``), so the graph is the one ``ingest k8s`` would have written from those object versions.
A document or object that cannot be used becomes a notice (a rejected record) naming where it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from liubai.collector.ingest import Item, Notice
from liubai.collector.k8s.convert import to_record
from liubai.collector.k8s.resources import BUILTIN, GITOPS, Resource
from liubai.lineage.records import iso_utc

__all__ = ["snapshot_items"]

SOURCE = "k8s-snapshot"
_BY_TYPE = {(r.api_version, r.kind): r for r in (*BUILTIN, *GITOPS)}
_ORDER = {r.kind: i for i, r in enumerate((*BUILTIN[:1], *GITOPS, *BUILTIN[1:]))}


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, parsed document): the whole file as one JSON document, else one per line."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        yield str(path), json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{path}:{number}", exc


def _objects(location: str, doc: Any) -> Iterator[tuple[str, Any]]:
    if (
        isinstance(doc, Mapping)
        and isinstance(doc.get("items"), list)
        and str(doc.get("kind", "")).endswith("List")
    ):
        for i, obj in enumerate(doc["items"]):
            yield f"{location}#items[{i}]", obj
    else:
        yield location, doc


def snapshot_items(path: Path, cluster: str | None) -> Iterator[Item]:
    """The records of every object saved in ``path``; sources (Flux GitRepositories) before their users."""
    found: list[tuple[str, Resource, Mapping[str, Any]]] = []
    for location, doc in _documents(path):
        if isinstance(doc, Exception):
            yield Notice(SOURCE, location, f"not JSON: {doc}")
            continue
        for where, obj in _objects(location, doc):
            if not isinstance(obj, Mapping):
                yield Notice(
                    SOURCE, where, "not a Kubernetes object (a JSON object with apiVersion and kind)"
                )
                continue
            resource = _BY_TYPE.get((str(obj.get("apiVersion", "")), str(obj.get("kind", ""))))
            if resource is None:
                shown = f"{obj.get('apiVersion')!s}/{obj.get('kind')!s}"
                yield Notice(
                    SOURCE, where, f"{shown[:80]} is not a type liubai reads from a cluster; skipped"
                )
                continue
            found.append((where, resource, obj))
    found.sort(key=lambda f: _ORDER[f[1].kind])
    # an object that records no write time was current when the file was saved
    saved = iso_utc(datetime.fromtimestamp(path.stat().st_mtime, UTC))
    sources: dict[str, str] = {}
    for where, resource, obj in found:
        meta = obj.get("metadata") or {}
        if resource.kind == "GitRepository" and isinstance((obj.get("spec") or {}).get("url"), str):
            sources[f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"] = obj["spec"]["url"]
        record = to_record(resource, obj, cluster, now=saved, sources=sources)
        if record is None:
            yield Notice(SOURCE, where, f"{resource.kind} without metadata.name or metadata.uid; skipped")
        else:
            yield record
