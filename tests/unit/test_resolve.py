"""``lineage.resolve``: each rule for reading what a user names, once, against a small store; and that
GraphQL, the CLI and export now read the references they used to read differently the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liubai.lineage.errors import Ambiguous, BadInput, ErrorCode, NotFound
from liubai.lineage.export import ExportError, Selection, Selector, resolve_start
from liubai.lineage.model import AuditIdError, GraphBatch, Node, NodeKind, commit_node_id
from liubai.lineage.resolve import find_commit, reference_id, resolve_reference
from liubai.lineage.store import LineageStore, open_store

SHA = "a1b2c3d4" + "0" * 32
TWIN_A = "beef0001" + "1" * 32
TWIN_B = "beef0002" + "2" * 32
TRACE = "0af7651916cd43dd8448eb211c80319c"
AUDIT_RAW = f"trace:{TRACE}|git-sha1:{SHA}"
AUDIT_NODE = f"audit:git-sha1:{SHA}|trace:{TRACE}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LineageStore]:
    s = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    nodes = [Node(commit_node_id(sha), NodeKind.COMMIT, {"sha": sha}) for sha in (SHA, TWIN_A, TWIN_B)]
    nodes += [
        Node(f"trace:{TRACE}", NodeKind.TRACE, {}),
        Node(AUDIT_NODE, NodeKind.AUDIT_RECORD, {}),
        Node("run:r1", NodeKind.PIPELINE_RUN, {}),
    ]
    s.upsert(GraphBatch(nodes=nodes))
    yield s
    s.close()


def test_empty_is_bad_input(store: LineageStore) -> None:
    with pytest.raises(BadInput):
        reference_id(store, "  ")


def test_audit_ids_in_any_spelling_name_one_node(store: LineageStore) -> None:
    assert reference_id(store, AUDIT_RAW) == AUDIT_NODE
    assert reference_id(store, f"audit:{AUDIT_RAW}") == AUDIT_NODE  # was passed on unparsed
    with pytest.raises(AuditIdError) as bad:
        reference_id(store, "git-sha1:nothex")
    assert bad.value.code is ErrorCode.BAD_AUDIT_ID and bad.value.detail["reason"]


def test_commit_by_sha_or_prefix_in_any_case(store: LineageStore) -> None:
    assert reference_id(store, SHA.upper()) == commit_node_id(SHA)
    assert reference_id(store, SHA[:6]) == commit_node_id(SHA)
    assert reference_id(store, f"commit:{SHA[:6].upper()}") == commit_node_id(SHA)  # was taken as an id
    with pytest.raises(Ambiguous) as many:
        reference_id(store, "beef")
    assert set(many.value.detail["candidates"]) == {commit_node_id(TWIN_A), commit_node_id(TWIN_B)}
    with pytest.raises(NotFound, match="no commit starting with 'dddd'"):
        reference_id(store, "DDDD")
    with pytest.raises(BadInput):
        reference_id(store, "commit:zz")
    with pytest.raises(BadInput):
        find_commit(store, "abc")


def test_bare_trace_id_names_the_trace_when_no_commit_does(store: LineageStore) -> None:
    assert reference_id(store, TRACE.upper()) == f"trace:{TRACE}"  # was "no commit starting with"
    with pytest.raises(NotFound):
        reference_id(store, "f" * 32)


def test_trace_node_id_is_lower_cased(store: LineageStore) -> None:
    assert reference_id(store, f"trace:{TRACE.upper()}") == f"trace:{TRACE}"  # was kept as typed


def test_other_node_ids_as_written_and_anything_else_is_bad_input(store: LineageStore) -> None:
    assert reference_id(store, "workload:Deployment/ns/x") == "workload:Deployment/ns/x"
    with pytest.raises(BadInput, match="neither a node id"):
        reference_id(store, "nonsense")


def test_resolve_reference_needs_the_node_stored(store: LineageStore) -> None:
    assert resolve_reference(store, "run:r1").kind is NodeKind.PIPELINE_RUN
    with pytest.raises(NotFound, match="no node 'run:r2' in the lineage store"):
        resolve_reference(store, "run:r2")


@pytest.mark.parametrize(
    ("selector", "value", "ref"),
    [
        (Selector.TRACE, TRACE.upper(), f"trace:{TRACE.upper()}"),
        (Selector.COMMIT, SHA[:6].upper(), f"commit:{SHA[:6].upper()}"),
        (Selector.AUDIT_ID, AUDIT_RAW, f"audit:{AUDIT_RAW}"),
        (Selector.NODE, "run:r1", "run:r1"),
    ],
)
def test_export_and_query_name_the_same_node(
    store: LineageStore, selector: Selector, value: str, ref: str
) -> None:
    assert resolve_start(store, Selection(selector, value)) == resolve_reference(store, ref).id


def test_export_keeps_the_resolver_code(store: LineageStore) -> None:
    with pytest.raises(ExportError) as many:
        resolve_start(store, Selection(Selector.COMMIT, "beef"))
    assert many.value.code is ErrorCode.AMBIGUOUS and "matches several commits" in many.value.message
    with pytest.raises(ExportError) as none:
        resolve_start(store, Selection(Selector.RUN, "r2"))
    assert none.value.code is ErrorCode.NOT_FOUND


def test_whole_sha_names_its_node_stored_or_not(store: LineageStore) -> None:
    gone = "e" * 40
    assert reference_id(store, gone.upper()) == commit_node_id(gone)
    assert reference_id(store, f"commit:{gone}") == commit_node_id(gone)
    with pytest.raises(NotFound, match=f"no node 'commit:{gone}'"):
        resolve_reference(store, gone)
