"""One GraphQL object type per node kind (``Commit``, ``Process``, ...), each implementing ``Node``.

A kind's typed fields read the properties its join writes (``liubai.lineage.join*``). They are built from
the table below rather than written out, so one line says a field's name, the property it reads, its type
and what it means. A typed field is null when the property is absent *or* not of the declared type (a
value written by an older version, or by a remote writer): the raw value is never coerced into a guess,
and stays readable, as stored, in ``properties``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import strawberry
from strawberry.scalars import JSON

from liubai.lineage.kinds import NodeKind

__all__ = ["NODE_FIELDS", "PropField", "kind_types"]

Shape = Literal["text", "int", "bigint", "bool", "texts", "json"]
"""``bigint``: an integer beyond GraphQL's 32-bit ``Int`` (nanosecond clocks, capability masks), as
decimal text so no digit is lost."""

_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class PropField:
    """A typed field ``name`` (snake_case; GraphQL spells it camelCase) reading property ``key``."""

    name: str
    shape: Shape
    description: str
    key: str = ""

    @property
    def prop(self) -> str:
        return self.key or self.name


def _f(name: str, shape: Shape, description: str, key: str = "") -> PropField:
    return PropField(name, shape, description, key)


_SEEN = (
    _f("first_seen", "text", "When the node was first seen (ISO 8601)."),
    _f("last_seen", "text", "When the node was last seen (ISO 8601)."),
)
_K8S_OBJECT = (
    _f("namespace", "text", "Kubernetes namespace."),
    _f("name", "text", "Kubernetes object name."),
    _f("cluster", "text", "The cluster name given to `ingest k8s --cluster`."),
)

NODE_FIELDS: dict[NodeKind, tuple[PropField, ...]] = {
    NodeKind.REPO: (_f("url", "text", "The repository's URL as ingested."),),
    NodeKind.COMMIT: (
        _f("sha", "text", "Full commit sha, lower case."),
        _f("repo", "text", "URL of the repository the commit was read from."),
        _f("author", "text", "Author name."),
        _f("author_email", "text", "Author e-mail."),
        _f("authored_at", "text", "Author time (ISO 8601)."),
        _f("committer", "text", "Committer name."),
        _f("committer_email", "text", "Committer e-mail."),
        _f("committed_at", "text", "Commit time (ISO 8601)."),
        _f("subject", "text", "First line of the message."),
        _f("message", "text", "Whole commit message."),
        _f("parents", "texts", "Parent shas, in order."),
        _f("changed_path_count", "int", "How many paths the commit changed.", "changed_paths"),
        _f("pr", "int", "Pull/merge request number named in the message, if any."),
        _f("signed", "bool", "Whether the commit carries a signature; null if unknown."),
        _f("signature", "text", "Signature check result as git reported it (`none` if unsigned)."),
        _f("branch", "text", "The branch the commit was ingested from."),
        _f("branches", "texts", "Refs read that contain the commit (heads, remotes, tags)."),
        *_SEEN,
    ),
    NodeKind.WORKLOAD: (
        _f("api_version", "text", "Kubernetes apiVersion."),
        _f("object_kind", "text", "Kubernetes kind (`Deployment`, `ConfigMap`, ...).", "kind"),
        *_K8S_OBJECT,
        _f("manifest_path", "text", "Path of the manifest declaring it in Git."),
        _f("live", "bool", "True while the cluster reports it, false once deleted; null if never seen live."),
        _f("uid", "text", "Kubernetes uid of the live object."),
        _f("resource_version", "text", "Kubernetes resourceVersion last seen."),
        _f("generation", "int", "Kubernetes metadata.generation last seen."),
        _f("live_audit_id", "text", "The audit id the live object carries, as read."),
        _f("revision", "text", "GitOps revision the controller reports applying."),
        _f("applied_commit", "text", "Commit sha the GitOps controller reports applying."),
        _f("source_url", "text", "GitOps source URL."),
        _f("source_path", "text", "GitOps source path."),
        _f("replicas", "int", "Desired replicas."),
        _f("ready_replicas", "int", "Ready replicas last seen."),
        _f("images", "texts", "Container images of its Pod template."),
        _f("owner", "text", "`<kind>/<name>` of its owner."),
        _f("deleted_at", "text", "When it was seen deleted."),
        _f("generate_name", "bool", "True when the manifest names it by generateName only."),
        _f(
            "placeholders",
            "texts",
            "`${var}` placeholders left in name or namespace, filled in at deploy time.",
        ),
        *_SEEN,
    ),
    NodeKind.POD: (
        _f("uid", "text", "Kubernetes Pod uid."),
        *_K8S_OBJECT,
        _f("node_name", "text", "Kubernetes node the Pod runs on."),
        _f("phase", "text", "Pod phase (`Running`, ..., or `Deleted`)."),
        _f("audit_id", "text", "The audit id the Pod carries, as read."),
        _f("created_at", "text", "Pod creation time (ISO 8601)."),
        _f("deleted_at", "text", "When it was seen deleted."),
        _f("container_names", "texts", "Names of its containers.", "containers"),
        _f("images", "texts", "Images of its containers."),
        _f("image_ids", "texts", "Resolved image ids (digests) of its containers."),
        _f("container_ids", "texts", "Runtime container ids."),
        _f("restarts", "int", "Container restarts, summed."),
        _f("owner", "text", "`<kind>/<name>` of its owner."),
        *_SEEN,
    ),
    NodeKind.CONTAINER: (
        _f("container_id", "text", "Runtime container id."),
        _f("name", "text", "Container name in its Pod."),
        _f("image", "text", "Image as the Pod spec names it."),
        _f("image_id", "text", "Resolved image id (digest)."),
        _f("pod_uid", "text", "uid of its Pod."),
        _f("restart_count", "int", "Restarts the kubelet reported."),
        _f("host", "text", "Host the node agent saw it on."),
        _f("runtime", "text", "Container runtime."),
        _f("cgroup", "text", "Its cgroup path."),
        _f("qos", "text", "Pod QoS class."),
        _f("running", "int", "Its processes alive at the end of the last window."),
        _f("processes", "int", "Processes seen."),
        _f("folded_processes", "int", "Processes over the per-window cap: counted, not recorded."),
        _f("namespace", "text", "Kubernetes namespace of its Pod."),
        _f("folded_opens", "int", "Opens over the per-window distinct-path cap."),
        _f("excluded_opens", "int", "Opens under an excluded path prefix."),
        _f("excluded", "text", "Why none of its processes are recorded (a namespace filter)."),
        _f("excluded_events", "int", "Events left out for that reason."),
        _f("runtime_setup_processes", "int", "The runtime's own processes setting it up (left out)."),
        _f("runtime_setup_events", "int", "Their events, left out."),
        _f("gaps", "json", "Times the agent was not watching (`[{from, to}]`): unknown, not absent."),
        *_SEEN,
    ),
    NodeKind.ADMISSION: (
        _f("request_uid", "text", "Admission request uid."),
        _f("cluster", "text", "The cluster name given to the webhook."),
        _f("username", "text", "Who sent the request."),
        _f("groups", "texts", "The requester's groups."),
        _f("operation", "text", "CREATE, UPDATE, ..."),
        _f("object_kind", "text", "Kubernetes kind of the object admitted.", "kind"),
        _f("namespace", "text", "Kubernetes namespace."),
        _f("name", "text", "Kubernetes object name."),
        _f("decision", "text", "What the webhook did: patched, kept, passed, ..."),
        _f("audit_id", "text", "The audit id stamped or kept."),
        _f("commit_source", "text", "Where the commit of the audit id came from."),
        _f("trace_source", "text", "Where the trace of the audit id came from."),
        _f("reason", "text", "Why, in words."),
        *_SEEN,
    ),
    NodeKind.AUDIT_RECORD: (
        _f("raw", "text", "The audit id as first read."),
        _f("canonical", "text", "The audit id in canonical form."),
        _f("commit", "text", "Commit sha it names."),
        _f("trace", "text", "Trace id it names."),
        *_SEEN,
    ),
    NodeKind.TRACE: (_f("trace_id", "text", "W3C trace id (32 hex)."), *_SEEN),
    NodeKind.SPAN: (
        _f("source", "text", "Where the span was read from."),
        _f("trace_id", "text", "W3C trace id."),
        _f("span_id", "text", "Span id."),
        _f("parent_span_id", "text", "Parent span id; null for a root span."),
        _f("root", "bool", "True for a root span."),
        _f("name", "text", "Span name."),
        _f("span_kind", "text", "OpenTelemetry span kind.", "kind"),
        _f("service", "text", "service.name of its resource."),
        _f("start", "text", "Start time (ISO 8601)."),
        _f("end", "text", "End time (ISO 8601)."),
        _f("status", "text", "UNSET, OK or ERROR."),
        _f("status_message", "text", "Status message."),
        _f("attributes", "json", "Span attributes."),
        _f("audit_id", "text", "The audit id among its attributes, as read."),
        *_SEEN,
    ),
    NodeKind.RESOURCE: (
        _f("service", "text", "service.name."),
        _f("attributes", "json", "All resource attributes."),
        _f("pod_link", "text", "`name only` when it names a Pod by name but not uid (no Pod link made)."),
        *_SEEN,
    ),
    NodeKind.LOG_EVENT: (
        _f("source", "text", "Where the line was read from."),
        _f("level", "text", "Log level."),
        _f("service", "text", "Service that wrote it."),
        _f("message", "text", "Log message."),
        _f("trace_id", "text", "Trace id the line names."),
        _f("span_id", "text", "Span id the line names."),
        _f("audit_id", "text", "Audit id the line carries, as read."),
        _f("attributes", "json", "Other attributes of the line."),
        *_SEEN,
    ),
    NodeKind.PIPELINE_RUN: (
        _f("host", "text", "Host it ran on."),
        _f("root_pid", "int", "pid of the traced command."),
        _f("start_ns", "bigint", "Start of the root process, ns since boot."),
        _f("end_ns", "bigint", "End of the root process, ns since boot."),
        _f("command", "texts", "The traced command's argv."),
        _f("started_at", "text", "Start time (ISO 8601)."),
        _f("ended_at", "text", "End time (ISO 8601)."),
        _f("exit_code", "int", "Exit code of the traced command."),
        _f("commit", "text", "Commit the run built or deployed."),
        _f("audit_id", "text", "Audit id of the run."),
        _f("trace_id", "text", "Trace id of the run."),
        _f("repo", "text", "Repository of the commit."),
        _f("repo_url", "text", "The repository's remote URL (the provenance's source URI is built from it)."),
        _f("cwd", "text", "Working directory."),
        _f("lost_events", "int", "Kernel events lost while tracing."),
        _f("unresolved_opens", "int", "Opens whose path could not be known."),
        _f("lexical_paths", "int", "Opens whose path is known only lexically."),
        _f("unhashed_images", "int", "Execs whose image could not be hashed for sure."),
        _f("incomplete_processes", "int", "Processes whose file activity was partly invisible."),
        _f("partial_argv", "int", "Execs whose argv is truncated or unreadable."),
        _f("still_running", "int", "Processes alive when tracing stopped."),
        _f("cut_at", "text", "When tracing stopped with processes still running."),
        *_SEEN,
    ),
    NodeKind.PROCESS: (
        _f("host", "text", "Host it ran on."),
        _f("pid", "int", "Process id."),
        _f("ppid", "int", "Parent process id."),
        _f("user_id", "int", "User id at exec.", "uid"),
        _f("effective_user_id", "int", "Effective user id.", "euid"),
        _f("saved_user_id", "int", "Saved user id.", "suid"),
        _f("comm", "text", "Kernel command name."),
        _f("binary", "text", "Path of the executed image."),
        _f("binary_sha256", "text", "sha256 of the executed image; null with `hashNote` saying why."),
        _f("hash_note", "text", "Why `binarySha256` is null."),
        _f("argv", "texts", "Arguments as read."),
        _f("argv_status", "text", "complete, truncated, unreadable or unknown."),
        _f("cwd", "text", "Working directory."),
        _f("started_at", "text", "Start time (ISO 8601)."),
        _f("ended_at", "text", "End time (ISO 8601)."),
        _f("exit_code", "int", "Exit code."),
        _f("exec_failed", "bool", "True if its exec failed."),
        _f("cap_eff", "bigint", "Effective capability mask."),
        _f("privilege_change", "bool", "Its user id differs from its parent's."),
        _f("escalation", "bool", "The effective identity or capabilities rose during the process."),
        _f("privilege_drop", "bool", "They fell (and never rose)."),
        _f("execs", "json", "Every exec of the process, in order."),
        _f("file_activity_incomplete", "text", "Why some file activity was invisible (`io_uring`)."),
        _f("adopted", "bool", "Already running when the agent started: known from /proc, not its exec."),
        _f("container_id", "text", "Container it ran in."),
        _f("pod_uid", "text", "Pod it ran in."),
        _f("audit_id", "text", "X_GITOPS_AUDIT_ID of its environment, as read."),
        *_SEEN,
    ),
    NodeKind.FILE: (
        _f("host", "text", "Host of the file."),
        _f("path", "text", "Path as opened."),
        _f("container_id", "text", "Container whose filesystem it is in."),
    ),
}

_GRAPHQL_TYPE: dict[Shape, Any] = {
    "text": str | None,
    "int": int | None,
    "bigint": str | None,
    "bool": bool | None,
    "texts": list[str] | None,
    "json": JSON | None,
}


def _typed(shape: Shape, value: Any) -> Any:
    """``value`` if it has the field's type; else None (the caller still has it in ``properties``)."""
    match shape:
        case "text":
            return value if isinstance(value, str) else None
        case "int":
            ok = isinstance(value, int) and not isinstance(value, bool) and -_INT_MAX - 1 <= value <= _INT_MAX
            return value if ok else None
        case "bigint":
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else None
        case "bool":
            return value if isinstance(value, bool) else None
        case "texts":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            return value if ok else None
        case "json":
            return value


def _resolver(field: PropField) -> Callable[..., Any]:
    def resolve(root: Any) -> Any:
        return _typed(field.shape, root.properties.get(field.prop))

    resolve.__name__ = field.name
    return resolve


def _check_shapes() -> None:
    """A field name has one type in every kind, so ``... on Pod { uid } ... on Workload { uid }`` in one
    selection merges (GraphQL refuses same-named fields of different types side by side)."""
    shapes: dict[str, Shape] = {}
    for kind, fields in NODE_FIELDS.items():
        for f in fields:
            if shapes.setdefault(f.name, f.shape) != f.shape:
                raise ValueError(f"{kind.value}.{f.name} is {f.shape}, elsewhere {shapes[f.name]}")


def kind_types(base: type, doc: Callable[[NodeKind], str]) -> dict[NodeKind, type]:
    """The object type of every kind, each a subclass of the ``Node`` interface class ``base``."""
    _check_shapes()
    built: dict[NodeKind, type] = {}
    shared = set(base.__annotations__) | {n for n in vars(base) if not n.startswith("_")}
    for kind in NodeKind:
        clash = shared.intersection(f.name for f in NODE_FIELDS[kind])
        if clash:
            raise ValueError(f"{kind.value} fields {sorted(clash)} hide the Node interface's fields")
        namespace: dict[str, Any] = {
            f.name: strawberry.field(
                resolver=_resolver(f),
                graphql_type=_GRAPHQL_TYPE[f.shape],
                description=f"{f.description} Property `{f.prop}`.",
            )
            for f in NODE_FIELDS[kind]
        }
        cls = type(f"G{kind.value}", (base,), namespace)
        built[kind] = strawberry.type(cls, name=kind.value, description=doc(kind))
    return built
