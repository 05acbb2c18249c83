"""How nodes read to people; shared by the GraphQL API and the CLI.

How people name nodes (ids, commit prefixes, audit ids) is ``liubai.lineage.resolve``, shared with export.
"""

from __future__ import annotations

from typing import Any

from liubai.lineage.model import (
    Node,
    NodeKind,
)

__all__ = ["node_json", "node_label", "node_time"]

# A Pod's ``created_at`` comes before ``first_seen``: a collector may list a Pod long after it was created.
_TIME_KEYS = ("committed_at", "time", "started_at", "created_at", "first_seen")


def node_time(node: Node) -> str | None:
    """The node's main time: when it was committed, logged, started, created, or first seen."""
    for key in _TIME_KEYS:
        value = node.props.get(key)
        if value:
            return str(value)
    return None


def node_label(node: Node) -> str:
    """Short human text for a node (UI boxes, CLI trees)."""
    p: dict[str, Any] = node.props
    key = node.id.partition(":")[2]
    match node.kind:
        case NodeKind.COMMIT:
            sha = str(p.get("sha") or key)[:12]
            subject = p.get("subject")
            return f"{sha} {subject}" if subject else sha
        case NodeKind.WORKLOAD:
            return key
        case NodeKind.PROCESS:
            comm, pid = p.get("comm"), p.get("pid")
            return f"{comm} {pid}" if comm else f"pid {pid if pid is not None else key}"
        case NodeKind.FILE:
            return str(p.get("path") or key)
        case NodeKind.LOG_EVENT:
            level = p.get("level")
            message = str(p.get("message") or "")[:80]
            return f"{level} {message}" if level else message or key
        case NodeKind.TRACE:
            return str(p.get("trace_id") or key)
        case NodeKind.AUDIT_RECORD:
            return str(p.get("canonical") or key)
        case NodeKind.PIPELINE_RUN:
            command = p.get("command")
            if isinstance(command, list) and command:
                return " ".join(map(str, command))
            return str(command or key)
        case NodeKind.REPO:
            return str(p.get("url") or key)
        case NodeKind.POD:
            name, ns = p.get("name"), p.get("namespace")
            return f"{ns}/{name}" if name else key
        case NodeKind.ADMISSION:
            user, decision = p.get("username"), p.get("decision")
            what = "/".join(str(p.get(k)) for k in ("kind", "namespace", "name") if p.get(k))
            return f"{decision} {what} by {user}" if user else key
        case NodeKind.CONTAINER:
            name, cid = p.get("name"), str(p.get("container_id") or key)
            return f"{name} {cid[:12]}" if name else f"container {cid[:12]}"
        case NodeKind.RESOURCE:
            attrs = p.get("attributes")
            attrs = attrs if isinstance(attrs, dict) else {}
            who = attrs.get("k8s.pod.name") or attrs.get("service.instance.id") or attrs.get("host.name")
            service = p.get("service") or "resource"
            return f"{service} {who}" if who else str(service)
        case NodeKind.SPAN:
            name, service, status = p.get("name"), p.get("service"), p.get("status")
            text = f"{service} {name}" if service else str(name or key)
            return f"{text} ({status})" if status == "ERROR" else text
    return key  # pragma: no cover - every kind is matched above


def node_json(node: Node) -> dict[str, Any]:
    """A node as the API's ``compact`` answer and the CLI's ``--json`` write it, with the field names of
    GraphQL's ``Node``."""
    return {
        "id": node.id,
        "kind": node.kind.value,
        "placeholder": node.placeholder,
        "label": node_label(node),
        "time": node_time(node),
        "properties": node.props,
    }
