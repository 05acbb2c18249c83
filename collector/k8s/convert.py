"""Kubernetes objects (JSON as the API server sends them) -> the typed records the join takes.

Times come from the object, never from the clock that read it: ``observed_at`` is the latest write the
API server recorded on it (``managedFields[].time``, else its creation or deletion time). So two
collectors that read the same object versions write the same graph, however their reads were cut into
lists, watches and restarts. An object that vanished while nobody watched has no such time: it is
marked deleted at the time the list that missed it ran.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from liubai.collector.k8s.resources import Resource
from liubai.lineage.model import AUDIT_ID_ANNOTATION
from liubai.lineage.records import ClusterObjectRecord, ContainerStatus, PodRecord, iso_utc

__all__ = ["commit_of_revision", "observed_at", "to_record"]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# Flux: "main@sha1:<hex>", "sha1:<hex>", older "main/<hex>"; Argo CD: the bare hex.
_COMMIT = re.compile(r"(?:^|[@:/])([0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?)$")

Obj = Mapping[str, Any]


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> str | None:
    """An RFC 3339 time of the API (``2026-01-02T03:04:05Z``) in the store's ISO form; None if not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return iso_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def observed_at(obj: Obj, fallback: str) -> str:
    """The object's latest recorded write (see the module docstring); ``fallback`` if it records none."""
    meta = _map(obj.get("metadata"))
    times = [_time(meta.get("creationTimestamp")), _time(meta.get("deletionTimestamp"))]
    times.extend(_time(_map(f).get("time")) for f in _list(meta.get("managedFields")))
    found = [t for t in times if t]
    return max(found) if found else fallback


def commit_of_revision(revision: str | None) -> str | None:
    """The commit sha in a GitOps controller's revision string, lower-cased; None if it names none."""
    if not revision:
        return None
    found = _COMMIT.search(revision.strip())
    return found.group(1).lower() if found else None


def _controller(meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    refs = [_map(r) for r in _list(meta.get("ownerReferences"))]
    ref = next((r for r in refs if r.get("controller") is True), refs[0] if refs else None)
    if ref is None:
        return None, None
    return _str(ref.get("kind")), _str(ref.get("name"))


def _pod_template(kind: str, spec: Mapping[str, Any]) -> Mapping[str, Any]:
    if kind == "CronJob":
        return _map(_map(_map(spec.get("jobTemplate")).get("spec")).get("template"))
    return _map(spec.get("template"))


def _images(template: Mapping[str, Any]) -> tuple[str, ...]:
    spec = _map(template.get("spec"))
    containers = _list(spec.get("initContainers")) + _list(spec.get("containers"))
    return tuple(i for i in (_str(_map(c).get("image")) for c in containers) if i)


def _audit_id(meta: Mapping[str, Any], template: Mapping[str, Any]) -> str | None:
    """The object's own audit id, else its pod template's (where a webhook stamped both, they agree)."""
    own = _str(_map(meta.get("annotations")).get(AUDIT_ID_ANNOTATION))
    return own or _str(_map(_map(template.get("metadata")).get("annotations")).get(AUDIT_ID_ANNOTATION))


def _gitops(
    kind: str,
    namespace: str,
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    sources: Mapping[str, str],
) -> dict[str, Any]:
    """Revision, commit, source URL and path of a Flux or Argo CD object. ``sources`` maps a Flux
    ``GitRepository`` (``namespace/name``) to its URL, for the objects that point at one; a ``sourceRef``
    without a namespace names one in the object's own namespace, as Flux reads it."""
    out: dict[str, Any] = {}
    if kind == "Application":
        sync = _map(status.get("sync"))
        revision = _str(sync.get("revision")) or next(iter(_list(sync.get("revisions"))), None)
        source = _map(spec.get("source")) or _map(next(iter(_list(spec.get("sources"))), None))
        out.update(
            revision=_str(revision),
            source_url=_str(source.get("repoURL")),
            source_path=_str(source.get("path")),
        )
    elif kind == "GitRepository":
        revision = _str(_map(status.get("artifact")).get("revision"))
        out.update(revision=revision, source_url=_str(spec.get("url")))
    else:  # Kustomization, HelmRelease
        revision = _str(status.get("lastAppliedRevision")) or _str(status.get("lastAttemptedRevision"))
        if kind == "HelmRelease":
            chart = _map(_map(spec.get("chart")).get("spec"))
            ref, path = _map(chart.get("sourceRef")), _str(chart.get("chart"))
        else:
            ref, path = _map(spec.get("sourceRef")), _str(spec.get("path"))
        key = f"{ref.get('namespace') or namespace}/{ref.get('name') or ''}"
        out.update(revision=revision, source_url=sources.get(key), source_path=path)
    out["commit"] = commit_of_revision(out.get("revision"))
    return out


def to_record(
    resource: Resource,
    obj: Obj,
    cluster: str | None,
    *,
    deleted: bool = False,
    now: str = "",
    sources: Mapping[str, str] | None = None,
) -> ClusterObjectRecord | PodRecord | None:
    """The record of one object of ``resource``; None when it lacks a name or uid (not an object).
    ``now`` is the fallback time for an object that records none."""
    meta = _map(obj.get("metadata"))
    name, uid = _str(meta.get("name")), _str(meta.get("uid"))
    if name is None or uid is None:
        return None
    namespace = str(meta.get("namespace") or "") if resource.namespaced else ""
    at = observed_at(obj, now)
    owner_kind, owner_name = _controller(meta)
    spec, status = _map(obj.get("spec")), _map(obj.get("status"))
    if resource.kind == "Pod":
        return _pod(
            obj, meta, spec, status, cluster, namespace, name, uid, at, owner_kind, owner_name, deleted
        )
    template = _pod_template(resource.kind, spec)
    annotations = _map(meta.get("annotations"))
    record = ClusterObjectRecord(
        cluster=cluster,
        api_version=_str(obj.get("apiVersion")) or resource.api_version,
        kind=resource.kind,
        namespace=namespace,
        name=name,
        uid=uid,
        observed_at=at,
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=_int(meta.get("generation")),
        audit_id=_audit_id(meta, template),
        owner_kind=owner_kind,
        owner_name=owner_name,
        revision=_str(annotations.get(REVISION_ANNOTATION)),
        replicas=_int(spec.get("replicas")),
        ready_replicas=_int(status.get("readyReplicas")),
        images=_images(template),
        deleted=deleted,
    )
    if resource.group.endswith("fluxcd.io") or resource.group == "argoproj.io":
        found = _gitops(resource.kind, namespace, spec, status, sources or {})
        record.revision = found.get("revision")
        record.commit = found.get("commit")
        record.source_url = found.get("source_url")
        record.source_path = found.get("source_path")
    return record


def _pod(
    obj: Obj,
    meta: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    cluster: str | None,
    namespace: str,
    name: str,
    uid: str,
    at: str,
    owner_kind: str | None,
    owner_name: str | None,
    deleted: bool,
) -> PodRecord:
    statuses = {
        _str(_map(s).get("name")): _map(s)
        for s in _list(status.get("initContainerStatuses")) + _list(status.get("containerStatuses"))
    }
    containers = []
    for c in _list(spec.get("initContainers")) + _list(spec.get("containers")):
        c = _map(c)
        cname = _str(c.get("name"))
        if cname is None:
            continue
        s = statuses.get(cname, {})
        containers.append(
            ContainerStatus(
                name=cname,
                image=_str(c.get("image")) or _str(s.get("image")) or "",
                image_id=_str(s.get("imageID")),
                container_id=_str(s.get("containerID")),
                ready=s.get("ready") is True,
                restart_count=_int(s.get("restartCount")) or 0,
            )
        )
    return PodRecord(
        cluster=cluster,
        namespace=namespace,
        name=name,
        uid=uid,
        observed_at=at,
        node_name=_str(spec.get("nodeName")),
        phase=_str(status.get("phase")),
        owner_kind=owner_kind,
        owner_name=owner_name,
        audit_id=_str(_map(meta.get("annotations")).get(AUDIT_ID_ANNOTATION)),
        created_at=_time(meta.get("creationTimestamp")),
        containers=tuple(containers),
        deleted=deleted,
    )
