"""One ingest of the GitOps scenario: the graph a user queries must hold exactly what the history declares."""

from __future__ import annotations

from liubai.lineage.model import Direction, EdgeKind, NodeKind, commit_node_id, trace_node_id
from liubai.lineage.store import LineageStore
from tests.gitrepo import Scenario

Ingested = tuple[Scenario, LineageStore, object]


def _out(store: LineageStore, node_id: str, kind: EdgeKind) -> dict[str, dict[str, object]]:
    page = store.neighbors(node_id, Direction.DOWNSTREAM, [kind], first=1000)
    assert page.end_cursor is None
    return {e.dst: e.props for e in page.edges}


def _all_ids(store: LineageStore, kind: NodeKind) -> set[str]:
    return {n.id for chunk in store.iter_nodes() for n in chunk if n.kind == kind and not n.placeholder}


def test_commit_count_equals_git_rev_list(ingested: Ingested) -> None:
    scen, store, summary = ingested
    expected = scen.commit_count
    assert expected >= 30
    assert summary.commits == expected  # type: ignore[attr-defined]
    commits = {n.id: n for chunk in store.iter_nodes() for n in chunk if n.kind == NodeKind.COMMIT}
    assert len(commits) == expected
    assert not [c for c in commits.values() if c.placeholder], "every parent/audit commit is a real commit"
    listed = set(scen.repo.git("rev-list", scen.branch).split())
    assert {commit_node_id(s) for s in listed} == set(commits)


def test_commit_properties(ingested: Ingested) -> None:
    scen, store, _ = ingested
    merge = store.get(commit_node_id(scen.merge_sha))
    assert merge is not None
    assert merge.props["pr"] == scen.merge_pr
    assert len(merge.props["parents"]) == 2
    assert merge.props["subject"].startswith("Merge pull request #7")
    squash = store.get(commit_node_id(scen.squash_sha))
    assert squash is not None and squash.props["pr"] == scen.squash_pr
    assert squash.props["author"] == "Bob Li" and squash.props["author_email"] == "bob@example.com"
    assert squash.props["committer"] == "GitOps Bot"
    assert squash.props["changed_paths"] == 2
    mr = store.get(commit_node_id(scen.mr_sha))
    assert mr is not None and mr.props["pr"] == scen.mr_pr
    date = scen.repo.git(
        "show", "-s", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%S", scen.squash_sha
    )
    assert squash.props["committed_at"].startswith(date)
    assert squash.props["signed"] is False
    plain = store.get(commit_node_id(scen.deleted[0]))
    assert plain is not None and plain.props["pr"] is None
    repo = store.get(f"repo:{scen.path.resolve()}")
    assert repo is not None
    assert len(_out(store, repo.id, EdgeKind.HAS_COMMIT)) == scen.commit_count


def test_workloads_and_declares_edges(ingested: Ingested) -> None:
    scen, store, _ = ingested
    assert _all_ids(store, NodeKind.WORKLOAD) == scen.workloads
    assert not scen.side_workloads & _all_ids(store, NodeKind.WORKLOAD), (
        "unmerged branch not read without --all"
    )
    for sha, wids in scen.declares.items():
        if wids & scen.side_workloads:
            continue
        assert set(_out(store, commit_node_id(sha), EdgeKind.DECLARES)) == wids, sha
    declaring = {sha for sha, w in scen.declares.items() if not w & scen.side_workloads}
    for chunk in store.iter_edges():
        for e in chunk:
            if e.kind == EdgeKind.DECLARES:
                assert e.src.removeprefix("commit:") in declaring, f"unexpected {e.src} -> {e.dst}"


def test_deleted_and_renamed_manifests(ingested: Ingested) -> None:
    scen, store, _ = ingested
    sha, path = scen.deleted
    (job,) = scen.deleted_workloads
    edges = _out(store, commit_node_id(sha), EdgeKind.DECLARES)
    assert edges == {
        job: {"path": path, "deleted": True, "with_render": False, "repo": str(scen.path.resolve())}
    }
    rsha, old, new = scen.renamed
    renamed = _out(store, commit_node_id(rsha), EdgeKind.DECLARES)
    assert [p["path"] for p in renamed.values()] == [new]
    assert all(p["deleted"] is False for p in renamed.values())
    web = store.get(next(iter(renamed)))
    assert web is not None and web.props["manifest_path"] == new != old


def test_audit_records_link_commit_workload_and_trace(ingested: Ingested) -> None:
    scen, store, summary = ingested
    assert summary.audit_records == len(scen.audits)  # type: ignore[attr-defined]
    for audit in scen.audits:
        node = store.get(f"audit:{audit.canonical}")
        assert node is not None, audit.raw
        assert node.props["commit"] == audit.commit and node.props["trace"] == audit.trace
        assert set(_out(store, node.id, EdgeKind.FOR_COMMIT)) == {commit_node_id(audit.commit)}
        assert set(_out(store, node.id, EdgeKind.CORRELATES)) == {trace_node_id(audit.trace)}
        assert set(_out(store, node.id, EdgeKind.ANNOTATES)) == set(audit.workloads)


def test_unknown_audit_key_is_kept(ingested: Ingested) -> None:
    scen, store, _ = ingested
    (with_extra,) = [a for a in scen.audits if a.extra]
    node = store.get(f"audit:{with_extra.canonical}")
    assert node is not None
    assert node.props["canonical"].endswith("|env:prod")
    assert node.props["x_env"] == "prod"


def test_lineage_of_a_build_commit_reaches_workload_and_trace(ingested: Ingested) -> None:
    """What a user asks: which workloads and traces came out of the commit that built an image?"""
    scen, store, _ = ingested
    audit = scen.audits[0]
    sub = store.lineage(commit_node_id(audit.commit), Direction.DOWNSTREAM, depth=2)
    reached = {n.id for n in sub.nodes}
    assert f"audit:{audit.canonical}" in reached
    assert trace_node_id(audit.trace) in reached
    assert set(audit.workloads) <= reached


def test_rejected_records_name_commit_file_and_reason(ingested: Ingested) -> None:
    scen, store, summary = ingested
    page = store.rejected(f"git:{scen.path.resolve()}", first=100)
    assert page.total == len(scen.rejects) == summary.rejected  # type: ignore[attr-defined]
    for expected in scen.rejects:
        hits = [r for r in page.records if r.location.startswith(f"{expected.commit[:12]}:{expected.path}")]
        assert len(hits) == 1, (expected, page.records)
        assert expected.reason_fragment in hits[0].reason.lower()
        assert expected.raw_fragment in hits[0].raw
    # the rest of each rejecting commit still landed
    for expected in scen.rejects:
        declared = _out(store, commit_node_id(expected.commit), EdgeKind.DECLARES)
        assert scen.declares[expected.commit] and set(declared) == scen.declares[expected.commit]
        assert all(p["deleted"] is False for p in declared.values())
