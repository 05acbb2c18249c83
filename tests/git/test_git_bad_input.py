"""Hostile or odd repository content: one bad manifest or name is kept as a reject or as escaped text,
and everything around it still lands in the store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from liubai.lineage.model import Direction, EdgeKind, commit_node_id
from liubai.lineage.store import LineageStore
from tests.git.conftest import run_ingest
from tests.gitrepo import GitRepoBuilder, deployment, trace_for

AUDIT = f"git-sha256:{'cd' * 20}|trace:{trace_for('aliased')}"

# 9 ** 8 (43 million) "lol"s once the aliases are written out, from about 400 bytes of text.
_LAUGHS = "\n".join(
    ['x: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [
        f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]"
        for prev, cur in zip("abcdefg", "bcdefgh", strict=True)
    ]
    + ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: *h}", ""]
)

# Deployment whose pod template shares the object's labels and audit annotation through aliases.
_ALIASED = f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: shared
  labels: &labels
    app: shared
  annotations: &audit
    x-gitops-audit-id: "{AUDIT}"
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
      annotations: *audit
"""


def _declared(store: LineageStore, sha: str) -> dict[str, dict[str, object]]:
    page = store.neighbors(commit_node_id(sha), Direction.DOWNSTREAM, [EdgeKind.DECLARES], first=100)
    return {e.dst: e.props for e in page.edges}


def test_billion_laughs_manifest_is_one_reject_and_the_rest_lands(
    tmp_path: Path, store: LineageStore
) -> None:
    g = GitRepoBuilder(tmp_path / "repo")
    g.write("apps/bomb.yaml", _LAUGHS + "---\n" + deployment("after-bomb", "img:1"))
    g.write("apps/shared.yaml", _ALIASED)
    sha = g.commit("a manifest that expands to billions of nodes")

    summary = run_ingest(store, g.path)

    assert (summary.commits, summary.workloads, summary.audit_records) == (1, 2, 1)
    assert set(_declared(store, sha)) == {
        "workload:Deployment/default/after-bomb",
        "workload:Deployment/default/shared",
    }
    audit = store.get(f"audit:{AUDIT}")
    assert audit is not None and audit.props["commit"] == "cd" * 20
    (reject,) = store.rejected(f"git:{g.path.resolve()}").records
    assert summary.rejected == 1
    assert reject.location == f"{sha[:12]}:apps/bomb.yaml#0"
    assert "excessive aliasing" in reject.reason and "\n" not in reject.reason
    assert reject.raw.startswith("x: &a [") and "metadata: {name: *h}" in reject.raw


def test_file_name_that_is_not_utf8_lands_as_escaped_text(tmp_path: Path, store: LineageStore) -> None:
    g = GitRepoBuilder(tmp_path / "repo")
    odd = os.path.join(os.fsencode(g.path), b"apps", b"bad\xffname.yaml")
    os.makedirs(os.path.dirname(odd))
    with open(odd, "wb") as fh:
        fh.write(deployment("web", "img:1").encode())
    g.git("add", "-A")
    g.write("apps/api.yaml", deployment("api", "img:1"))
    sha = g.commit("a file name git stores as raw bytes")

    summary = run_ingest(store, g.path)

    assert (summary.commits, summary.workloads, summary.rejected) == (1, 2, 0)
    commit = store.get(commit_node_id(sha))
    assert commit is not None and commit.props["changed_paths"] == 2
    assert {w: p["path"] for w, p in _declared(store, sha).items()} == {
        "workload:Deployment/default/web": "apps/bad\\xffname.yaml",
        "workload:Deployment/default/api": "apps/api.yaml",
    }
    web = store.get("workload:Deployment/default/web")
    assert web is not None and web.props["manifest_path"] == "apps/bad\\xffname.yaml"


def test_ref_name_and_commit_text_that_are_not_utf8_land_as_escaped_text(
    tmp_path: Path, store: LineageStore
) -> None:
    g = GitRepoBuilder(tmp_path / "repo")
    g.write("apps/api.yaml", deployment("api", "img:1"))
    first = g.commit("deploy api")
    tree = g.git("write-tree")
    raw = (
        f"tree {tree}\nparent {first}\n".encode()
        + b"author Jos\xe9 <jose@example.com> 1767229200 +0000\n"
        + b"committer Jos\xe9 <jose@example.com> 1767229200 +0000\n\ncaf\xe9 \xff fix\n"
    )
    sha = (
        subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
            cwd=g.path,
            input=raw,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    subprocess.run(["git", "branch", b"feat\xfe", sha], cwd=g.path, check=True)

    summary = run_ingest(store, g.path, all_refs=True)

    assert summary.commits == 2
    odd = store.get(commit_node_id(sha))
    assert odd is not None
    assert odd.props["author"] == "Jos\\xe9" and odd.props["subject"] == "caf\\xe9 \\xff fix"
    assert set(_declared(store, first)) == {"workload:Deployment/default/api"}
    source = f"git:{g.path.resolve()}"
    assert store.checkpoints(source)[(source, "ref:refs/heads/feat\\xfe")] == sha
