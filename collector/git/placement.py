"""The namespace a rendered object is deployed into.

Flux ``targetNamespace`` moves every namespaced object there. Argo CD ``destination.namespace`` only
fills objects that set no ``metadata.namespace`` ("The namespace will only be set for namespace-scoped
resources that have not set a value for .metadata.namespace", Argo CD's Application spec): an object a
kustomize overlay or a chart wrote into ``default`` on purpose stays there. The manifest parser reads an
absent namespace as ``default``, so the objects that write ``namespace: default`` themselves are told
apart here, from the rendered text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from liubai.collector.git.deployers import Deployer
from liubai.collector.manifests.parse import split
from liubai.collector.manifests.scope import is_cluster_scoped
from liubai.collector.manifests.yaml_load import UNREADABLE, Loader
from liubai.lineage.records import ManifestObjectRecord

__all__ = ["explicitly_default", "place"]

# a cheap test first: most renders never write the default namespace out
_WRITES_DEFAULT = re.compile(r"""^[ \t]+namespace:[ \t]*["']?default["']?[ \t]*(#.*)?$""", re.MULTILINE)


def _objects(doc: Any) -> list[Any]:
    kind = doc.get("kind") if isinstance(doc, Mapping) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(doc.get("items"), list):
        return list(doc["items"])
    return [doc]


def explicitly_default(text: str) -> set[tuple[str, str]]:
    """(kind, name) of the objects in ``text`` whose ``metadata.namespace`` is written as ``default``.
    A piece that does not load is left out (its objects count as naming none; the parser rejects it)."""
    if not _WRITES_DEFAULT.search(text):
        return set()
    found: set[tuple[str, str]] = set()
    for piece in split(text):
        try:
            docs = list(yaml.load_all(piece, Loader=Loader))
        except UNREADABLE:
            continue
        for doc in docs:
            for obj in _objects(doc):
                meta = obj.get("metadata") if isinstance(obj, Mapping) else None
                if isinstance(meta, Mapping) and meta.get("namespace") == "default":
                    kind, name = obj.get("kind"), meta.get("name")
                    if isinstance(kind, str) and isinstance(name, str):
                        found.add((kind.strip(), name.strip()))
    return found


def place(item: ManifestObjectRecord, d: Deployer, explicit: set[tuple[str, str]]) -> None:
    """Set ``item``'s namespace to where ``d`` deploys it; ``explicit`` from ``explicitly_default``."""
    if is_cluster_scoped(item.kind):
        return
    if d.target_namespace:
        item.namespace = d.target_namespace
    elif d.default_namespace and item.namespace == "default" and (item.kind, item.name) not in explicit:
        item.namespace = d.default_namespace
