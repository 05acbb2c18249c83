"""Re-runs, new commits, force pushes, clone URLs and ref selection on real repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from liubai.collector.git import GitCollector, GitSourceError, checkpoints_of, ingest_git
from liubai.lineage.model import Direction, EdgeKind, NodeKind, commit_node_id, trace_node_id
from liubai.lineage.store import LineageStore
from tests.git.conftest import run_ingest
from tests.gitrepo import Scenario, deployment, trace_for


def _source(scen: Scenario) -> str:
    return f"git:{scen.path.resolve()}"


def test_second_ingest_adds_nothing(scenario: Scenario, store: LineageStore) -> None:
    first = run_ingest(store, scenario.path)
    before = store.counts()
    again = run_ingest(store, scenario.path)
    assert first.commits == scenario.commit_count
    assert (again.commits, again.nodes_created, again.edges_created, again.rejected) == (0, 0, 0, 0)
    assert store.counts() == before
    assert store.get_checkpoint(_source(scenario), "ref:refs/heads/main") == scenario.repo.head()


def test_new_commit_adds_just_it(scenario: Scenario, store: LineageStore) -> None:
    run_ingest(store, scenario.path)
    before = store.counts()
    g = scenario.repo
    built = g.rev_parse("HEAD~2")
    trace = trace_for("api-v3")
    raw = f"git-sha256:{built}|trace:{trace}"
    g.write("apps/api/deploy.yaml", deployment("api", "registry.local/api:v3", namespace="shop", audit=raw))
    sha = g.commit("deploy api v3")
    summary = run_ingest(store, scenario.path)
    assert summary.commits == 1
    after = store.counts()
    # one commit, one audit record, one trace; the workload and the built commit already existed
    assert after["Commit"] == before["Commit"] + 1
    assert after["AuditRecord"] == before["AuditRecord"] + 1
    assert after["Trace"] == before["Trace"] + 1
    assert after["Workload"] == before["Workload"]
    declared = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES]).edges
    assert {e.dst for e in declared} == {"workload:Deployment/shop/api", "workload:Service/shop/api"}
    audit = store.get(f"audit:{raw}")
    assert audit is not None and audit.props["trace"] == trace
    assert store.get(trace_node_id(trace)) is not None
    assert store.get_checkpoint(_source(scenario), "ref:refs/heads/main") == sha


def test_object_dropped_from_a_manifest_is_declared_deleted(scenario: Scenario, store: LineageStore) -> None:
    run_ingest(store, scenario.path)
    g = scenario.repo
    g.write("apps/api/deploy.yaml", deployment("api", "registry.local/api:v2", namespace="shop"))
    sha = g.commit("api: drop the service")
    run_ingest(store, scenario.path)
    edges = {
        e.dst: e.props
        for e in store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES]).edges
    }
    assert edges["workload:Service/shop/api"]["deleted"] is True
    assert edges["workload:Deployment/shop/api"]["deleted"] is False


def test_force_push_is_reported_not_crashed(scenario: Scenario, store: LineageStore) -> None:
    run_ingest(store, scenario.path)
    g = scenario.repo
    old_tip = g.head()
    g.reset_hard("HEAD~3")
    g.write("docs/rewritten.md", "rewritten\n")
    new_tip = g.commit("docs: rewritten history")
    summary = run_ingest(store, scenario.path)
    assert summary.commits == 1, "only the new commit: the common history is already stored"
    (notice,) = summary.rewritten
    assert old_tip[:12] in notice.message and new_tip[:12] in notice.message
    assert "merge-base" in notice.message
    trail = [r for r in store.rejected(_source(scenario)).records if r.reason.startswith("history rewritten")]
    assert len(trail) == 1 and trail[0].location == "ref:refs/heads/main" and trail[0].raw == old_tip
    assert store.get_checkpoint(_source(scenario), "ref:refs/heads/main") == new_tip
    assert run_ingest(store, scenario.path).rewritten == [], (
        "reported once, then the new tip is the checkpoint"
    )


def test_force_push_with_old_history_gone_rereads_the_ref(scenario: Scenario, store: LineageStore) -> None:
    run_ingest(store, scenario.path)
    g = scenario.repo
    g.git("checkout", "-q", "--orphan", "fresh")
    g.write("README.md", "# start over\n")
    g.commit("start over")
    g.git("branch", "-M", "fresh", "main")
    for ref in g.git("for-each-ref", "--format=%(refname)").split():
        if ref != "refs/heads/main":
            g.git("update-ref", "-d", ref)
    g.git("reflog", "expire", "--expire=now", "--all")
    g.git("gc", "-q", "--prune=now")
    summary = run_ingest(store, scenario.path)
    assert summary.commits == g.rev_list_count("main") == 1
    (notice,) = summary.rewritten
    assert "no common history" in notice.message


def test_clone_url_then_fetch_new_commits(scenario: Scenario, store: LineageStore, tmp_path: Path) -> None:
    url = scenario.path.resolve().as_uri()
    cache = tmp_path / "clones"
    with GitCollector(url, cache_dir=cache) as collector:
        assert collector.source == f"git:{url}"
        summary = ingest_git(store, collector)
    assert summary.commits == scenario.commit_count
    assert summary.workloads == len(scenario.workloads)
    assert len(list(cache.glob("*.git"))) == 1, "the clone is a mirror kept in the cache dir"
    scenario.repo.write("docs/after-clone.md", "x\n")
    sha = scenario.repo.commit("docs: after clone")
    with GitCollector(url, cache_dir=cache) as collector:
        again = ingest_git(store, collector)
    assert again.commits == 1
    assert store.get(commit_node_id(sha)) is not None
    assert store.get_checkpoint(f"git:{url}", "ref:refs/heads/main") == sha


def test_credentials_in_url_are_not_stored(tmp_path: Path) -> None:
    collector = GitCollector("https://user:s3cret@git.example.com/org/gitops.git", cache_dir=tmp_path)
    assert collector.repo_id == "https://git.example.com/org/gitops.git"
    assert "s3cret" not in collector.source


def test_all_refs_reads_every_branch(scenario: Scenario, store: LineageStore) -> None:
    summary = run_ingest(store, scenario.path, all_refs=True)
    assert summary.commits == scenario.all_commit_count == scenario.commit_count + 1
    workloads = {n.id for chunk in store.iter_nodes() for n in chunk if n.kind == NodeKind.WORKLOAD}
    assert workloads == scenario.workloads | scenario.side_workloads
    cps = checkpoints_of(store, _source(scenario))
    assert cps[f"ref:refs/heads/{scenario.side_branch}"] == scenario.repo.rev_parse(scenario.side_branch)
    assert cps["ref:refs/heads/main"] == scenario.repo.rev_parse("main")


def test_branch_option_then_main_reads_only_the_difference(scenario: Scenario, store: LineageStore) -> None:
    side = run_ingest(store, scenario.path, branch=scenario.side_branch)
    assert side.commits == scenario.repo.rev_list_count(scenario.side_branch)
    main = run_ingest(store, scenario.path, branch="main")
    assert main.commits == 0, "main is an ancestor of the side branch: already stored"
    canary = store.get(next(iter(scenario.side_workloads)))
    assert canary is not None


def test_unknown_branch_and_missing_path_fail_with_one_clear_error(
    scenario: Scenario, tmp_path: Path
) -> None:
    with pytest.raises(GitSourceError, match="no branch or tag named 'nope'"):
        GitCollector(str(scenario.path), branch="nope").refs()
    with pytest.raises(GitSourceError, match="no such directory"):
        GitCollector(str(tmp_path / "absent")).refs()
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitSourceError, match="not a git repository"):
        GitCollector(str(tmp_path / "plain")).refs()
    with pytest.raises(GitSourceError, match="cannot fetch"):
        GitCollector(
            (tmp_path / "absent").as_uri() + ".git", cache_dir=tmp_path / "c", clone_attempts=1
        ).refs()


def test_interrupted_ingest_resumes_from_its_checkpoint(scenario: Scenario, store: LineageStore) -> None:
    """A run that dies after some batches leaves a checkpoint matching what it stored; the rerun completes."""
    calls = 0

    class Boom(RuntimeError):
        pass

    def die_after_two_batches(summary: object) -> None:
        nonlocal calls
        calls += 1
        if getattr(summary, "batches", 0) >= 2:
            raise Boom

    with GitCollector(str(scenario.path)) as collector, pytest.raises(Boom):
        ingest_git(store, collector, batch_size=10, progress=die_after_two_batches)
    resume = store.get_checkpoint(_source(scenario), "resume")
    assert resume is not None
    assert store.get_checkpoint(_source(scenario), "ref:refs/heads/main") is None
    stored = store.counts()["Commit"] - store.counts()["placeholders"]
    assert 0 < stored < scenario.commit_count
    with GitCollector(str(scenario.path)) as collector:
        rest = ingest_git(store, collector)
    assert rest.commits < scenario.commit_count, "the rerun skipped what was stored"
    commits = [n for chunk in store.iter_nodes() for n in chunk if n.kind == NodeKind.COMMIT]
    assert len(commits) == scenario.commit_count and not [c for c in commits if c.placeholder]


def test_signed_commit_is_marked_unverified_unless_asked(scenario: Scenario, store: LineageStore) -> None:
    """Signature checking is opt-in: by default a signed commit says it carries a signature that was
    not checked (``signed`` unknown), never that it is signed."""
    g = scenario.repo
    g.enable_ssh_signing()
    g.write("docs/signed.md", "signed\n")
    sha = g.commit("docs: a signed change", sign=True)
    run_ingest(store, scenario.path)
    node = store.get(commit_node_id(sha))
    assert node is not None and node.props["signature"] == "unverified" and node.props.get("signed") is None
    parent = store.get(commit_node_id(g.rev_parse("HEAD~1")))
    assert parent is not None and parent.props["signed"] is False and parent.props["signature"] == "none"


def test_verified_signature_marks_the_commit_signed(
    scenario: Scenario, store: LineageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --verify-signatures a good signature makes the commit signed; one whose key this machine does
    not hold (git's ``E``, cannot check) is never called signed."""
    if shutil.which("gpg") is None:
        pytest.fail("gpg is not installed: a GPG signature cannot be made (apt-get install gnupg)")
    g = scenario.repo
    g.enable_ssh_signing()
    g.write("docs/signed.md", "signed\n")
    good = g.commit("docs: a signed change", sign=True)
    signer_home = tmp_path / "signer-gnupg"
    signer_home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(signer_home)}
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Signer <s@example.com>",
            "ed25519",
            "sign",
            "0",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    g.git("config", "gpg.format", "openpgp")
    g.git("config", "user.signingkey", "s@example.com")
    g.write("docs/signed.md", "signed by a key nobody here holds\n")
    monkeypatch.setenv("GNUPGHOME", str(signer_home))
    unknown = g.commit("docs: gpg-signed", sign=True)
    reader_home = tmp_path / "reader-gnupg"
    reader_home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(reader_home))  # the ingest's gpg holds no key
    run_ingest(store, scenario.path, verify_signatures=True)
    props = {s: store.get(commit_node_id(s)).props for s in (good, unknown)}  # type: ignore[union-attr]
    assert (props[good]["signature"], props[good]["signed"]) == ("good-unknown-validity", True)
    assert (props[unknown]["signature"], props[unknown]["signed"]) == ("cannot-check", False)


def test_branches_follow_the_refs_not_the_first_run(tmp_path: Path, store: LineageStore) -> None:
    """A commit first read from a feature branch lists main too once main contains it."""
    from tests.gitrepo import GitRepoBuilder

    g = GitRepoBuilder(tmp_path / "b")
    g.write("a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    base = g.commit("base")
    g.branch("feature")
    g.checkout("feature")
    g.write("b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    feat = g.commit("feature work")
    g.checkout("main")
    run_ingest(store, g.path, branch="feature")

    def branches(sha: str) -> object:
        node = store.get(commit_node_id(sha))
        assert node is not None
        return node.props.get("branches")

    assert (branches(base), branches(feat)) == (["feature"], ["feature"])
    merge = g.merge("feature", "Merge pull request #3 from dev/feature")
    run_ingest(store, g.path, branch="main")
    assert (branches(base), branches(feat), branches(merge)) == (
        ["feature", "main"],
        ["feature", "main"],
        ["main"],
    )
    g.write("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    tip = g.commit("more on main")
    run_ingest(store, g.path, all_refs=True)
    assert branches(tip) == ["main"] and branches(feat) == ["feature", "main"]
