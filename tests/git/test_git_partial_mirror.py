"""A partial mirror: blobs missing from the object store. Each missing manifest blob is one reject for
that file, the rest of the history lands, and a missing non-manifest blob (an image renamed with a
change) is not read at all."""

from __future__ import annotations

from pathlib import Path

from liubai.lineage.declared import declared_at
from liubai.lineage.model import NodeKind
from liubai.lineage.store import LineageStore
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
