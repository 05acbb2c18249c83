"""Declared, changed, removed: objects are compared by identity (kind, namespace, name) across a whole
commit, so an apiVersion bump or a move between files is no removal, and a file that stops parsing
removes nothing. Each class is reproduced on a generated repository and the exact graph is asserted."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.lineage.declared import declared_at, resolve_at
from liubai.lineage.model import Direction, Edge, EdgeKind, commit_node_id
from liubai.lineage.store import LineageStore
from tests.git.conftest import run_ingest
from tests.gitrepo import GitRepoBuilder


def _doc(kind: str, name: str, api: str = "v1", namespace: str | None = "apps") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}{ns}\n"


def _declares(store: LineageStore, sha: str) -> dict[str, tuple[str, bool]]:
    page = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=1000)
    return {e.dst: (str(e.props["path"]), bool(e.props["deleted"])) for e in page.edges}


def _declared(store: LineageStore, sha: str) -> dict[str, str]:
    view = declared_at(store, sha)
    assert view.complete
    return {o.node.id: o.path for o in view.objects}


WEB = "workload:Deployment/apps/web"
CONF = "workload:ConfigMap/apps/conf"
SVC = "workload:Service/apps/web"


def test_api_version_bump_is_a_change_not_a_removal(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1beta2"))
    first = repo.commit("web on v1beta2")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    bump = repo.commit("web on apps/v1")
    run_ingest(store, repo.path)
    assert _declares(store, first) == {WEB: ("web.yaml", False)}
    assert _declares(store, bump) == {WEB: ("web.yaml", False)}
    node = store.get(WEB)
    assert node is not None and node.props["api_version"] == "apps/v1"
    assert _declared(store, bump) == {WEB: "web.yaml"}


def test_object_moved_between_files_in_one_commit_stays_declared(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("all.yaml", _doc("Deployment", "web", "apps/v1") + "---\n" + _doc("Service", "web"))
    first = repo.commit("web and its service")
    repo.write("all.yaml", _doc("Service", "web"))
    repo.write("deploy/web.yaml", _doc("Deployment", "web", "apps/v1"))
    move = repo.commit("web to its own file")
    repo.remove("deploy/web.yaml")
    gone = repo.commit("web retired")
    run_ingest(store, repo.path)
    assert _declares(store, first) == {WEB: ("all.yaml", False), SVC: ("all.yaml", False)}
    assert _declares(store, move) == {WEB: ("deploy/web.yaml", False), SVC: ("all.yaml", False)}
    assert _declared(store, move) == {WEB: "deploy/web.yaml", SVC: "all.yaml"}
    assert _declares(store, gone) == {WEB: ("deploy/web.yaml", True)}
    assert _declared(store, gone) == {SVC: "all.yaml"}
    assert _declared(store, first) == {WEB: "all.yaml", SVC: "all.yaml"}


def test_file_renamed_and_split_keeps_every_object(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("old.yaml", _doc("ConfigMap", "conf") + "---\n" + _doc("Service", "web"))
    repo.commit("two objects")
    repo.remove("old.yaml")
    repo.write("a.yml", _doc("ConfigMap", "conf"))
    repo.write("b.yml", _doc("Service", "web"))
    split = repo.commit("one object per file")
    run_ingest(store, repo.path)
    assert _declares(store, split) == {CONF: ("a.yml", False), SVC: ("b.yml", False)}
    assert _declared(store, split) == {CONF: "a.yml", SVC: "b.yml"}


def test_parse_failure_removes_nothing_and_is_rejected(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("all.yaml", _doc("ConfigMap", "conf") + "---\n" + _doc("Service", "web"))
    first = repo.commit("two objects")
    repo.write("all.yaml", _doc("ConfigMap", "conf") + "---\nkind: Service\nmetadata: {name: [web\n")
    broken = repo.commit("a typo")
    repo.write("all.yaml", _doc("ConfigMap", "conf"))
    fixed = repo.commit("service dropped, file fixed")
    run_ingest(store, repo.path)
    assert _declares(store, broken) == {CONF: ("all.yaml", False)}, "the broken file deletes nothing"
    assert _declared(store, broken) == {CONF: "all.yaml", SVC: "all.yaml"}
    rejects = store.rejected(f"git:{repo.path.resolve()}").records
    assert [r.location for r in rejects] == [f"{broken[:12]}:all.yaml#1"]
    assert "invalid YAML" in rejects[0].reason
    assert _declares(store, first) == {CONF: ("all.yaml", False), SVC: ("all.yaml", False)}
    # the fix compares with the last readable version: the service it dropped is removed there
    assert _declares(store, fixed) == {CONF: ("all.yaml", False), SVC: ("all.yaml", True)}
    assert _declared(store, fixed) == {CONF: "all.yaml"}


def test_whole_file_unreadable_keeps_its_objects(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("all.yaml", _doc("ConfigMap", "conf") + "---\n" + _doc("Service", "web"))
    repo.commit("two objects")
    repo.write("all.yaml", "\tkind: [\n")
    broken = repo.commit("garbage")
    run_ingest(store, repo.path)
    assert _declares(store, broken) == {}
    assert _declared(store, broken) == {CONF: "all.yaml", SVC: "all.yaml"}


def test_declared_cli_and_removals_in_lineage(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    repo.write("conf.yaml", _doc("ConfigMap", "conf"))
    first = repo.commit("web and conf")
    repo.remove("conf.yaml")
    gone = repo.commit("conf retired")
    db = f"sqlite:///{tmp_path / 'l.db'}"
    runner = CliRunner()
    out = runner.invoke(app, ["--store", db, "ingest", "git", str(repo.path)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["--store", db, "declared", "--json"])
    assert out.exit_code == 0, out.output
    import json

    doc = json.loads(out.output)
    assert doc["commit"] == gone and doc["complete"] is True
    assert [(o["id"], o["path"], o["since"]) for o in doc["objects"]] == [(WEB, "web.yaml", first)]
    out = runner.invoke(app, ["--store", db, "declared", "--at", first[:10], "--json"])
    assert [o["id"] for o in json.loads(out.output)["objects"]] == [CONF, WEB]
    out = runner.invoke(app, ["--store", db, "declared", "--at", "main", "--json"])
    assert [o["id"] for o in json.loads(out.output)["objects"]] == [WEB]
    out = runner.invoke(app, ["--store", db, "declared", "--at", "nosuchref"])
    assert out.exit_code != 0 and "neither a stored commit nor an ingested ref" in out.output
    out = runner.invoke(app, ["--store", db, "lineage", gone, "--depth", "1"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "-DECLARES (removed)-> Workload" in out.output
    out = runner.invoke(app, ["--store", db, "lineage", first, "--depth", "1"], env={"COLUMNS": "200"})
    assert "(removed)" not in out.output and out.output.count("-DECLARES->") == 2


def test_resolve_at_names_the_only_tip(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    tip = repo.commit("web")
    run_ingest(store, repo.path)
    assert resolve_at(store, None) == tip
    assert resolve_at(store, "refs/heads/main") == tip
    assert resolve_at(store, tip[:8]) == tip


def test_declared_graphql_field(tmp_path: Path, store: LineageStore) -> None:
    from fastapi.testclient import TestClient

    from liubai.api.app import create_app

    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    repo.write("conf.yaml", _doc("ConfigMap", "conf"))
    first = repo.commit("web and conf")
    repo.remove("conf.yaml")
    repo.commit("conf retired")
    run_ingest(store, repo.path)
    query = "query($at: String) { declared(at: $at) { commit complete objects { node { id } path since } } }"
    with TestClient(create_app(store=store)) as client:
        body = client.post("/graphql", json={"query": query, "variables": {"at": first[:8]}}).json()
        assert "errors" not in body, body
        assert body["data"]["declared"] == {
            "commit": first,
            "complete": True,
            "objects": [
                {"node": {"id": CONF}, "path": "conf.yaml", "since": first},
                {"node": {"id": WEB}, "path": "web.yaml", "since": first},
            ],
        }
        body = client.post("/graphql", json={"query": query, "variables": {"at": "nope"}}).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"


def test_cluster_scoped_objects_have_no_namespace(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("ns.yaml", _doc("Namespace", "podinfo", namespace=None))
    repo.write("rbac.yaml", _doc("ClusterRole", "reader", "rbac.authorization.k8s.io/v1", namespace="stray"))
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1", namespace=None))
    sha = repo.commit("namespace, role, web")
    run_ingest(store, repo.path)
    assert set(_declares(store, sha)) == {
        "workload:Namespace//podinfo",
        "workload:ClusterRole//reader",
        "workload:Deployment/default/web",
    }
    node = store.get("workload:ClusterRole//reader")
    assert node is not None and node.props["namespace"] == ""


def test_repositories_of_different_clusters_never_merge(tmp_path: Path, store: LineageStore) -> None:
    a = GitRepoBuilder(tmp_path / "a")
    a.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    sha_a = a.commit("web for a")
    b = GitRepoBuilder(tmp_path / "b")
    b.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    b.write("ns.yaml", _doc("Namespace", "apps", namespace=None))
    sha_b = b.commit("web for b")
    run_ingest(store, a.path, cluster="prod-a")
    run_ingest(store, b.path, cluster="prod-b")
    assert _declares(store, sha_a) == {"workload:prod-a:Deployment/apps/web": ("web.yaml", False)}
    assert set(_declares(store, sha_b)) == {
        "workload:prod-b:Deployment/apps/web",
        "workload:prod-b:Namespace//apps",
    }
    for repo, sha in ((a, sha_a), (b, sha_b)):
        assert set(_repos(store, sha).values()) == {str(repo.path.resolve())}
    assert store.get("workload:Deployment/apps/web") is None


def _repos(store: LineageStore, sha: str) -> dict[str, str]:
    """The repository each object a commit declares was declared by (the DECLARES edge's ``repo``)."""
    page = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=1000)
    return {e.dst: str(e.props["repo"]) for e in page.edges}


def test_two_repositories_declaring_one_object_both_keep_their_declaration(
    tmp_path: Path, any_store: LineageStore
) -> None:
    """Without --cluster, two repositories that declare one object share its node; which repository
    declared it is on each commit's DECLARES edge, so the second ingest never overwrites the first
    (a ``repo`` on the node would: node properties merge by "new values win", on every store)."""
    a = GitRepoBuilder(tmp_path / "a")
    a.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    sha_a = a.commit("web in a")
    b = GitRepoBuilder(tmp_path / "b")
    b.write("deploy/web.yaml", _doc("Deployment", "web", "apps/v1"))
    sha_b = b.commit("web in b")
    run_ingest(any_store, a.path)
    run_ingest(any_store, b.path)
    run_ingest(any_store, a.path)  # a re-run changes nothing either
    assert _repos(any_store, sha_a) == {WEB: str(a.path.resolve())}
    assert _repos(any_store, sha_b) == {WEB: str(b.path.resolve())}
    assert _declares(any_store, sha_a) == {WEB: ("web.yaml", False)}
    assert _declares(any_store, sha_b) == {WEB: ("deploy/web.yaml", False)}
    node = any_store.get(WEB)
    assert node is not None and "repo" not in node.props
    assert sorted(e.src for e in _incoming(any_store, WEB)) == sorted(
        [commit_node_id(sha_a), commit_node_id(sha_b)]
    )
    # a now deploys to a named cluster: its objects move, the one b still declares is not superseded
    run_ingest(any_store, a.path, cluster="prod")
    assert _repos(any_store, sha_a) == {
        WEB: str(a.path.resolve()),
        "workload:prod:Deployment/apps/web": str(a.path.resolve()),
    }
    node = any_store.get(WEB)
    assert node is not None and "superseded_by" not in node.props
    assert set(_declared(any_store, sha_b)) == {WEB}


def _incoming(store: LineageStore, wid: str) -> list[Edge]:
    return list(store.neighbors(wid, Direction.UPSTREAM, [EdgeKind.DECLARES], first=100).edges)


def test_old_ids_are_re_read_and_marked_superseded(tmp_path: Path, store: LineageStore) -> None:
    """A store written before cluster-scoped objects lost their namespace: the next run re-reads the
    history, writes the new ids and marks the old nodes superseded (the declared view drops them)."""
    from liubai.lineage.model import GraphBatch

    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("ns.yaml", _doc("Namespace", "podinfo", namespace=None))
    sha = repo.commit("namespace")
    run_ingest(store, repo.path)
    repo_id = str(repo.path.resolve())
    legacy = "workload:Namespace/default/podinfo"
    old = GraphBatch()
    old.add_node(legacy, {"kind": "Namespace", "namespace": "default", "name": "podinfo", "repo": repo_id})
    old.add_edge(commit_node_id(sha), EdgeKind.DECLARES, legacy, {"path": "ns.yaml", "deleted": False})
    old.checkpoints[(f"git:{repo_id}", "identity")] = "1"
    store.upsert(old)
    assert set(_declared(store, sha)) == {legacy, "workload:Namespace//podinfo"}
    summary = run_ingest(store, repo.path)
    assert [n.location for n in summary.notices] == ["identity"]
    node = store.get(legacy)
    assert node is not None and node.props["superseded_by"] == "workload:Namespace//podinfo"
    assert set(_declared(store, sha)) == {"workload:Namespace//podinfo"}
    again = run_ingest(store, repo.path)
    assert again.commits == 0 and not again.notices


def test_naming_the_cluster_later_re_reads_under_the_cluster(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("web.yaml", _doc("Deployment", "web", "apps/v1"))
    sha = repo.commit("web")
    run_ingest(store, repo.path)
    summary = run_ingest(store, repo.path, cluster="prod")
    assert summary.commits == 1
    assert set(_declared(store, sha)) == {"workload:prod:Deployment/apps/web"}
    old = store.get(WEB)
    assert old is not None and old.props["superseded_by"] == "workload:prod:Deployment/apps/web"


def test_real_repository_noise_is_counted_not_rejected(tmp_path: Path, store: LineageStore) -> None:
    """A chart, a JSON patch and a skaffold config beside a HelmRelease written with a repeated anchor:
    the release stays declared, nothing is rejected, the rest is counted as skipped."""
    repo = GitRepoBuilder(tmp_path / "r")
    release = (
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: podinfo\n"
        "  namespace: apps\nspec:\n  values:\n    a: &v {x: 1}\n    b: &v {x: 2}\n    c: *v\n"
    )
    repo.write("release.yaml", _doc("HelmRelease", "podinfo", "helm.toolkit.fluxcd.io/v2"))
    repo.write("chart/Chart.yaml", "apiVersion: v2\nname: podinfo\nversion: 1.0.0\n")
    repo.commit("release and chart")
    repo.write("release.yaml", release)
    repo.write("chart/Chart.yaml", "apiVersion: v2\nname: podinfo\nversion: 1.0.1\n")
    repo.write("patch.yaml", "- op: replace\n  path: /spec/replicas\n  value: 3\n")
    repo.write("skaffold.yaml", "apiVersion: skaffold/v4beta6\nkind: Config\nmetadata: {name: podinfo}\n")
    sha = repo.commit("values with a repeated anchor")
    summary = run_ingest(store, repo.path)
    assert summary.rejected == 0
    assert summary.count("SkippedRecord") == 4  # Chart.yaml twice, the patch, skaffold
    hr = "workload:HelmRelease/apps/podinfo"
    assert _declares(store, sha) == {hr: ("release.yaml", False)}
    assert _declared(store, sha) == {hr: "release.yaml"}
