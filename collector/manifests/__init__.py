"""Kubernetes objects out of (multi-document) YAML manifest text.

A manifest file is untrusted input: one broken document must not hide the good ones around it, and
every problem becomes a ``RejectedRecord`` that names commit, file, document and reason. Documents
that are plainly not Kubernetes objects (CI workflows, Helm values, kustomize configs) are skipped
quietly, because GitOps repositories are full of them.

Parts: ``yaml_load`` (the bounded, memoising loader), ``build`` (only the parts read are built),
``objects`` (what a document declares) and ``parse`` (files cut at ``---``, cached, into records).
"""

from liubai.collector.manifests.objects import ObjectKey, audit_ids_of
from liubai.collector.manifests.parse import (
    MANIFEST_SUFFIXES,
    MAX_MANIFEST_BYTES,
    ManifestCache,
    deleted_records,
    is_manifest_path,
    parse_manifest,
)
from liubai.collector.manifests.yaml_load import MAX_ALIAS_NODES

__all__ = [
    "MANIFEST_SUFFIXES",
    "MAX_ALIAS_NODES",
    "MAX_MANIFEST_BYTES",
    "ManifestCache",
    "ObjectKey",
    "audit_ids_of",
    "deleted_records",
    "is_manifest_path",
    "parse_manifest",
]
