"""The span join and the resource-attribute join: spans hang in their trace under their parent, log lines
under their span, and both under the Pod, Container, Workload and Commit their resource names."""

from __future__ import annotations

from liubai.lineage.join import join_records
from liubai.lineage.model import (
    EdgeKind,
    GraphBatch,
    NodeKind,
    audit_node_id,
    commit_node_id,
    container_node_id,
    log_node_id,
    parse_audit_id,
    pod_node_id,
    span_node_id,
    trace_node_id,
    workload_node_id,
)
from liubai.lineage.records import LogRecord, SpanRecord

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT, CHILD = "00f067aa0ba902b7", "1111111111111111"
SHA = "c" * 40
CONTAINER = "d" * 64
AT = "2026-12-01T00:00:00.000000Z"
LATER = "2026-12-01T00:00:01.000000Z"


def _edges(batch: GraphBatch) -> set[tuple[str, EdgeKind, str]]:
    return {(e.src, e.kind, e.dst) for e in batch.edges}


def _node(batch: GraphBatch, node_id: str) -> dict[str, object]:
    return next(n.props for n in batch.nodes if n.id == node_id)


def _spans() -> list[SpanRecord]:
    return [
        SpanRecord("otlp", TRACE, ROOT, name="GET /cart", kind="SERVER", service="cart", start=AT, end=LATER),
        SpanRecord(
            "otlp",
            TRACE,
            CHILD,
            parent_span_id=ROOT,
            name="SELECT carts",
            kind="CLIENT",
            service="cart",
            start=AT,
            end=LATER,
            status="ERROR",
            status_message="deadlock",
        ),
    ]


def test_spans_are_nodes_in_their_trace_under_their_parent() -> None:
    batch = join_records(_spans())
    root, child = span_node_id(TRACE, ROOT), span_node_id(TRACE, CHILD)
    assert {n.id for n in batch.nodes if n.kind is NodeKind.SPAN} == {root, child}
    assert {
        (root, EdgeKind.IN_TRACE, trace_node_id(TRACE)),
        (child, EdgeKind.IN_TRACE, trace_node_id(TRACE)),
        (child, EdgeKind.CHILD_OF, root),
    } <= _edges(batch)
    assert _node(batch, root)["root"] is True and "root" not in _node(batch, child)
    assert _node(batch, child)["status"] == "ERROR" and _node(batch, child)["status_message"] == "deadlock"
    assert _node(batch, trace_node_id(TRACE))["first_seen"] == AT


def test_reingesting_spans_writes_the_same_facts() -> None:
    first, again = join_records(_spans()), join_records(_spans())
    assert [(n.id, n.props) for n in first.nodes] == [(n.id, n.props) for n in again.nodes]
    assert _edges(first) == _edges(again)


def test_a_log_line_links_to_the_span_it_was_written_in() -> None:
    log = LogRecord("app", "1", time=AT, message="deadlock", trace_id=TRACE, span_id=CHILD)
    edges = _edges(join_records([log]))
    assert (log_node_id("app", "1"), EdgeKind.IN_SPAN, span_node_id(TRACE, CHILD)) in edges
    assert (log_node_id("app", "1"), EdgeKind.IN_TRACE, trace_node_id(TRACE)) in edges


def test_a_span_id_without_its_trace_is_kept_but_not_linked() -> None:
    batch = join_records([LogRecord("app", "1", message="x", span_id=CHILD)])
    assert _node(batch, log_node_id("app", "1"))["span_id"] == CHILD
    assert not batch.edges


def _resource_of(batch: GraphBatch, record_id: str) -> str:
    (rid,) = [e.src for e in batch.edges if e.kind is EdgeKind.EMITTED and e.dst == record_id]
    return rid


RESOURCE = {
    "service.name": "cart",
    "k8s.pod.uid": "pod-uid-1",
    "k8s.namespace.name": "shop",
    "k8s.deployment.name": "cart",
    "k8s.cluster.name": "prod",
    "container.id": CONTAINER,
    "vcs.ref.head.revision": SHA.upper(),
    "deployment.environment.name": "production",
    "service.version": "1.4.2",
}


def test_resource_attributes_link_pod_container_workload_and_commit_once_per_resource() -> None:
    span = SpanRecord("otlp", TRACE, ROOT, name="GET /cart", start=AT, resource=RESOURCE)
    log = LogRecord("app", "1", time=LATER, message="hi", resource=dict(reversed(RESOURCE.items())))
    batch = join_records([span, log])
    rid = _resource_of(batch, span_node_id(TRACE, ROOT))
    assert rid == _resource_of(batch, log_node_id("app", "1")), "one node per attribute set, in any order"
    assert {
        (pod_node_id("pod-uid-1"), EdgeKind.RAN, rid),
        (container_node_id(CONTAINER), EdgeKind.RAN, rid),
        (rid, EdgeKind.INSTANCE_OF, workload_node_id("Deployment", "shop", "cart", "prod")),
        (rid, EdgeKind.FOR_COMMIT, commit_node_id(SHA)),
    } <= _edges(batch)
    resource = _node(batch, rid)
    assert resource["attributes"] == RESOURCE and resource["service"] == "cart"
    assert (resource["first_seen"], resource["last_seen"]) == (AT, LATER)
    for record in (span_node_id(TRACE, ROOT), log_node_id("app", "1")):
        props = _node(batch, record)
        assert (props["service_version"], props["environment"]) == ("1.4.2", "production")
        assert "pod_link" not in props
    # the emitters are edge ends only: the cluster collector writes their properties, not a log line
    ids = {n.id for n in batch.nodes}
    assert pod_node_id("pod-uid-1") not in ids and container_node_id(CONTAINER) not in ids
    assert not any(n.kind is NodeKind.WORKLOAD for n in batch.nodes)
    assert _node(batch, commit_node_id(SHA)) == {"sha": SHA}


def test_another_attribute_set_is_another_resource() -> None:
    other = RESOURCE | {"vcs.ref.head.revision": "e" * 40}
    batch = join_records(
        [
            LogRecord("app", "1", message="x", resource=RESOURCE),
            LogRecord("app", "2", message="x", resource=other),
        ]
    )
    assert _resource_of(batch, log_node_id("app", "1")) != _resource_of(batch, log_node_id("app", "2"))


def test_workloads_of_an_unnamed_cluster_meet_the_ids_git_ingest_writes() -> None:
    resource = {"k8s.namespace.name": "batch", "k8s.cronjob.name": "nightly", "k8s.job.name": "nightly-29"}
    batch = join_records([LogRecord("app", "1", message="x", resource=resource)])
    rid = _resource_of(batch, log_node_id("app", "1"))
    assert {
        (rid, EdgeKind.INSTANCE_OF, workload_node_id("CronJob", "batch", "nightly")),
        (rid, EdgeKind.INSTANCE_OF, workload_node_id("Job", "batch", "nightly-29")),
    } == {e for e in _edges(batch) if e[1] is EdgeKind.INSTANCE_OF}


def test_a_workload_name_without_its_namespace_links_nothing() -> None:
    batch = join_records([LogRecord("app", "1", message="x", resource={"k8s.deployment.name": "cart"})])
    assert {e.kind for e in batch.edges} == {EdgeKind.EMITTED}


def test_only_a_full_hex_revision_names_a_commit() -> None:
    for revision in ("c" * 12, "main", "v1.4.2", "g" * 40, "c" * 41):
        for key in ("vcs.ref.head.revision", "vcs.repository.ref.revision", "service.version"):
            batch = join_records([LogRecord("app", "1", message="x", resource={key: revision})])
            assert not any(n.kind is NodeKind.COMMIT for n in batch.nodes), (key, revision)
            assert _node(batch, _resource_of(batch, log_node_id("app", "1")))["attributes"] == {key: revision}
    sha256 = "e" * 64
    for key, value in (("vcs.repository.ref.revision", SHA), ("service.version", sha256)):
        batch = join_records([LogRecord("app", "1", message="x", resource={key: value})])
        rid = _resource_of(batch, log_node_id("app", "1"))
        assert (rid, EdgeKind.FOR_COMMIT, commit_node_id(value)) in _edges(batch)


def test_a_resource_audit_id_links_like_a_record_level_one() -> None:
    raw = f"git-sha1:{SHA}"
    audit = audit_node_id(parse_audit_id(raw))
    for key in ("gitops.audit_id", "x-gitops-audit-id"):
        batch = join_records([SpanRecord("otlp", TRACE, ROOT, start=AT, resource={key: raw})])
        rid = _resource_of(batch, span_node_id(TRACE, ROOT))
        assert (rid, EdgeKind.CARRIES, audit) in _edges(batch)
        assert (audit, EdgeKind.FOR_COMMIT, commit_node_id(SHA)) in _edges(batch)


def test_a_malformed_resource_audit_id_is_rejected_and_the_record_lands() -> None:
    batch = join_records([LogRecord("app", "1", message="x", resource={"gitops.audit_id": "git-sha1:zz"})])
    assert log_node_id("app", "1") in {n.id for n in batch.nodes}
    assert [r.reason.split(":")[0] for r in batch.rejected] == ["malformed audit id"]


def test_a_pod_named_without_its_uid_is_flagged_not_guessed() -> None:
    resource = {"k8s.pod.name": "cart-5d-x", "k8s.namespace.name": "shop", "k8s.container.name": "app"}
    batch = join_records([SpanRecord("otlp", TRACE, ROOT, start=AT, resource=resource)])
    rid = _resource_of(batch, span_node_id(TRACE, ROOT))
    assert _node(batch, span_node_id(TRACE, ROOT))["pod_link"] == "name only"
    assert _node(batch, rid)["pod_link"] == "name only"
    assert {e.kind for e in batch.edges if e.dst == rid or e.src == rid} == {EdgeKind.EMITTED}
    assert not any(n.kind is NodeKind.POD for n in batch.nodes)


def test_spans_and_resources_read_as_people_name_them() -> None:
    from liubai.api.nodes import node_label

    batch = join_records(_spans() + [SpanRecord("otlp", TRACE, "2" * 16, start=AT, resource=RESOURCE)])
    labels = {n.id: node_label(n) for n in batch.nodes}
    assert labels[span_node_id(TRACE, ROOT)] == "cart GET /cart"
    assert labels[span_node_id(TRACE, CHILD)] == "cart SELECT carts (ERROR)"
    assert labels[_resource_of(batch, span_node_id(TRACE, "2" * 16))] == "cart"
