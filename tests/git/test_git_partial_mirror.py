"""A partial mirror: blobs missing from the object store. Each missing manifest blob is one reject for
that file, the rest of the history lands, and a missing non-manifest blob (an image renamed with a
change) is not read at all. A render that needs a missing blob is one notice for that deployer at that
commit."""

from __future__ import annotations

import shutil
from pathlib import Path

from liubai.lineage.declared import declared_at
from liubai.lineage.model import Direction, EdgeKind, NodeKind, commit_node_id
from liubai.lineage.store import LineageStore
from tests._real import missing
from tests.git.conftest import run_ingest
from tests.gitrepo import GitRepoBuilder


def _drop_blob(repo: GitRepoBuilder, rev: str) -> str:
    blob = repo.rev_parse(rev)
    (repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    return blob


def _cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: apps\n"


def test_missing_blobs_are_one_reject_each_and_the_rest_lands(tmp_path: Path, store: LineageStore) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("a.yaml", _cm("a"))
    (repo.path / "logo.png").write_bytes(bytes(range(256)) * 12)
    repo.git("add", "logo.png")
    repo.commit("a and a logo")
    repo.write("b.yaml", _cm("b"))
    with_b = repo.commit("b")
    repo.remove("logo.png")
    (repo.path / "img" / "logo.png").parent.mkdir()
    (repo.path / "img" / "logo.png").write_bytes(bytes(range(256)) * 12 + b"!")
    repo.git("add", "img/logo.png")
    repo.write("c.yaml", _cm("c"))
    tip = repo.commit("logo moved and touched, c")
    missing = _drop_blob(repo, f"{with_b}:b.yaml")
    _drop_blob(repo, "HEAD~2:logo.png")
    summary = run_ingest(store, repo.path)
    assert summary.commits == 3
    rejects = store.rejected(f"git:{repo.path.resolve()}").records
    assert [(r.location, r.reason) for r in rejects] == [
        (f"{with_b[:12]}:b.yaml", f"blob {missing[:12]} is missing from the repository")
    ]
    workloads = {n.id for chunk in store.iter_nodes() for n in chunk if n.kind == NodeKind.WORKLOAD}
    assert workloads == {"workload:ConfigMap/apps/a", "workload:ConfigMap/apps/c"}
    view = declared_at(store, tip)
    assert [o.node.id for o in view.objects] == ["workload:ConfigMap/apps/a", "workload:ConfigMap/apps/c"]
    again = run_ingest(store, repo.path)
    assert again.commits == 0 and again.rejected == 0


FLUX = """apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  path: ./apps
  targetNamespace: shop
  sourceRef: {kind: GitRepository, name: flux-system}
"""


def test_render_of_a_missing_blob_is_one_notice_and_the_rest_lands(
    tmp_path: Path, store: LineageStore
) -> None:
    """A deployer whose input has a blob missing cannot be rendered at that commit: one notice for it
    there, its objects stay as last rendered, and the commits before and after land (rendered)."""
    if shutil.which("kubectl") is None:
        missing("kubectl", "kubectl is not installed: overlays cannot be rendered (scripts/setup-system)")
    repo = GitRepoBuilder(tmp_path / "r")
    repo.write("apps/kustomization.yaml", "resources: [web.yaml]\n")
    repo.write("apps/web.yaml", _cm("web").replace("  namespace: apps\n", "") + "data: {v: '1'}\n")
    repo.write("clusters/apps.yaml", FLUX)
    first = repo.commit("web through flux")
    repo.write("apps/web.yaml", _cm("web").replace("  namespace: apps\n", "") + "data: {v: '2'}\n")
    broken = repo.commit("web v2")
    repo.write("apps/kustomization.yaml", "resources: [web.yaml, jobs.yaml]\n")
    repo.write("apps/web.yaml", _cm("web").replace("  namespace: apps\n", "") + "data: {v: '3'}\n")
    repo.write("apps/jobs.yaml", _cm("jobs").replace("  namespace: apps\n", ""))
    repo.write("raw.yaml", _cm("raw"))
    tip = repo.commit("web v3, jobs, and a raw manifest")
    _drop_blob(repo, f"{broken}:apps/web.yaml")
    summary = run_ingest(store, repo.path, render=True)
    assert summary.commits == 3
    assert [n.location for n in summary.notices] == [f"{broken[:12]}:clusters/apps.yaml"]
    assert "cannot render Kustomization/flux-system/apps: cannot read apps" in summary.notices[0].message
    by = "Kustomization/flux-system/apps"
    flux = "workload:Kustomization/flux-system/apps"
    assert _edges(store, first) == {"workload:ConfigMap/shop/web": by, flux: ""}
    assert _edges(store, broken) == {}
    assert _edges(store, tip) == {
        "workload:ConfigMap/shop/web": by,
        "workload:ConfigMap/shop/jobs": by,
        "workload:ConfigMap/apps/raw": "",
    }
    view = declared_at(store, tip)
    assert sorted(o.node.id for o in view.objects) == [
        "workload:ConfigMap/apps/raw",
        "workload:ConfigMap/shop/jobs",
        "workload:ConfigMap/shop/web",
        flux,
    ]


def _edges(store: LineageStore, sha: str) -> dict[str, str]:
    page = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=100)
    return {e.dst: str(e.props.get("rendered_by") or "") for e in page.edges if not e.props["deleted"]}
