"""``liubai annotate`` as a pipeline runs it: YAML or a KRM ResourceList on stdin, stamped on stdout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from liubai.lineage.model import AUDIT_ID_ANNOTATION, AUDIT_ID_ENV, parse_audit_id
from tests._real import missing
from tests.gitrepo import GitRepoBuilder

SHA = "c0" * 20
MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: web:1
        env:
        - {name: OTEL_RESOURCE_ATTRIBUTES, value: service.name=web}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: "job:1"}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data:
  released: "2026-01-02"
  enabled: "yes"
  octal: "0755"
  script: |
    set -e
    echo ready
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ARGOCD_APP_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA", "TRACEPARENT")
    }
    env.update(extra)
    return env


def annotate(
    *args: str, stdin: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", "annotate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env or clean_env(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def docs(text: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(text))


def test_workloads_are_stamped_and_everything_else_is_kept_as_it_means(tmp_path: Path) -> None:
    done = annotate("--commit", SHA, stdin=MANIFESTS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    deployment, cron, config = docs(done.stdout)
    audit = parse_audit_id(deployment["metadata"]["annotations"][AUDIT_ID_ANNOTATION])
    assert audit.commit == SHA and audit.commit_key == "git-sha1" and audit.trace and len(audit.trace) == 32
    assert deployment["metadata"]["annotations"]["liubai.dev/commit"] == SHA
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit.canonical
    env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
    assert env["OTEL_RESOURCE_ATTRIBUTES"]["value"] == (
        f"service.name=web,gitops.audit_id={audit.canonical},vcs.ref.head.revision={SHA}"
    )
    assert (
        env[AUDIT_ID_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.annotations['x-gitops-audit-id']"
    )
    job_template = cron["spec"]["jobTemplate"]["spec"]["template"]
    assert parse_audit_id(job_template["metadata"]["annotations"][AUDIT_ID_ANNOTATION]).commit == SHA
    assert config == docs(MANIFESTS)[2]  # the same strings: no date, bool or octal number made of them
    assert "    set -e\n    echo ready\n" in done.stdout  # a script stays a readable block
    assert "annotate: 2 stamps, 0 ids kept; commit c0c0c0c0c0c0 from --commit" in done.stderr


def test_the_same_render_gives_the_same_output_and_annotating_twice_changes_nothing(tmp_path: Path) -> None:
    first = annotate("--commit", SHA, stdin=MANIFESTS).stdout
    assert annotate("--commit", SHA, stdin=MANIFESTS).stdout == first
    assert annotate("--commit", "d1" * 20, stdin=first).stdout == first  # ids already there are kept
    changed = MANIFESTS.replace("image: web:1", "image: web:2")
    other = docs(annotate("--commit", SHA, stdin=changed).stdout)[0]
    trace = parse_audit_id(other["metadata"]["annotations"][AUDIT_ID_ANNOTATION]).trace
    assert trace != parse_audit_id(docs(first)[0]["metadata"]["annotations"][AUDIT_ID_ANNOTATION]).trace


def test_the_commit_comes_from_the_pipeline_environment_or_git(tmp_path: Path) -> None:
    for var in ("ARGOCD_APP_REVISION", "GITHUB_SHA", "CI_COMMIT_SHA"):
        done = annotate(stdin=MANIFESTS, env=clean_env(**{var: SHA}), cwd=tmp_path)
        assert done.returncode == 0 and f"from {var}" in done.stderr
    repo = GitRepoBuilder(tmp_path / "repo")
    repo.write("deploy.yaml", MANIFESTS)
    head = repo.commit("init")
    done = annotate(stdin=MANIFESTS, cwd=tmp_path / "repo")
    assert done.returncode == 0, done.stderr
    assert parse_audit_id(docs(done.stdout)[0]["metadata"]["annotations"][AUDIT_ID_ANNOTATION]).commit == head
    assert "from git rev-parse HEAD" in done.stderr
    done = annotate(stdin=MANIFESTS, env=clean_env(ARGOCD_APP_REVISION="1.4.2"), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr.strip()
        == "error: ARGOCD_APP_REVISION='1.4.2' is not a commit id (40 or 64 hex characters)"
    )
    done = annotate(stdin=MANIFESTS, cwd=tmp_path)  # no variable, not a git work tree
    assert done.returncode == 1 and done.stderr.startswith("error: no commit: give --commit or set")


def test_a_pipeline_traceparent_gives_every_stamp_its_trace() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    done = annotate("--commit", SHA, stdin=MANIFESTS, env=clean_env(TRACEPARENT=parent))
    for doc in docs(done.stdout)[:1]:
        assert (
            doc["metadata"]["annotations"][AUDIT_ID_ANNOTATION]
            == f"git-sha1:{SHA}|trace:4bf92f3577b34da6a3ce929d0e0e4736"
        )
    done = annotate("--commit", SHA, "--traceparent", "nope", stdin=MANIFESTS)
    assert done.returncode == 1 and "is not a W3C traceparent" in done.stderr


def test_commit_only_leaves_the_commit_for_the_webhook_and_nothing_in_the_template() -> None:
    done = annotate("--commit", SHA, "--commit-only", stdin=MANIFESTS)
    deployment = docs(done.stdout)[0]
    assert deployment["metadata"]["annotations"] == {"liubai.dev/commit": SHA}
    assert deployment["spec"] == docs(MANIFESTS)[0]["spec"]


def test_bad_yaml_is_one_line_with_line_and_column_and_nothing_written() -> None:
    broken = MANIFESTS.replace("  name: web\n", "  name: web\n   bad: [\n", 1)
    done = annotate("--commit", SHA, stdin=broken)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == ["error: stdin: line 5, column 7: mapping values are not allowed in this context"]


def test_a_malformed_existing_id_fails_the_render_or_is_left_with_a_warning() -> None:
    bad = MANIFESTS.replace(
        "  namespace: shop\nspec:\n  template:",
        f"  namespace: shop\n  annotations: {{{AUDIT_ID_ANNOTATION}: 'git-sha1:xyz'}}\nspec:\n  template:",
        1,
    )
    done = annotate("--commit", SHA, stdin=bad)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        "error: document 1 (Deployment shop/web): malformed audit id 'git-sha1:xyz'"
    )
    done = annotate("--commit", SHA, "--on-malformed", "warn", stdin=bad)
    assert done.returncode == 0
    deployment, cron, _ = docs(done.stdout)
    assert deployment["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == "git-sha1:xyz"
    assert AUDIT_ID_ANNOTATION in cron["metadata"]["annotations"]
    assert "warning: document 1 (Deployment shop/web): malformed audit id" in done.stderr


def resource_list(config: dict[str, Any] | None = None) -> str:
    items = [dict(d) for d in docs(MANIFESTS)]
    for i, item in enumerate(items):
        item["metadata"].setdefault("annotations", {})["config.kubernetes.io/index"] = str(i)
    body: dict[str, Any] = {"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": items}
    if config is not None:
        body["functionConfig"] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "stamp"},
            "data": config,
        }
    return yaml.safe_dump(body, sort_keys=False)


def test_a_krm_resource_list_round_trips_as_a_function_answer() -> None:
    done = annotate(stdin=resource_list({"commit": SHA}))
    assert done.returncode == 0, done.stderr
    (answer,) = docs(done.stdout)
    assert answer["kind"] == "ResourceList" and answer["apiVersion"] == "config.kubernetes.io/v1"
    assert answer["functionConfig"]["data"] == {"commit": SHA}
    deployment, cron, config = answer["items"]
    assert parse_audit_id(deployment["metadata"]["annotations"][AUDIT_ID_ANNOTATION]).commit == SHA
    assert deployment["metadata"]["annotations"]["config.kubernetes.io/index"] == "0"
    assert config["data"] == docs(MANIFESTS)[2]["data"]
    assert "from functionConfig" in done.stderr
    # the function's own answer fed back in is its answer again
    assert annotate(stdin=done.stdout).stdout == done.stdout
    done = annotate(stdin=resource_list({"commit": SHA, "commitOnly": "true"}))
    assert docs(done.stdout)[0]["items"][0]["metadata"]["annotations"]["liubai.dev/commit"] == SHA
    assert AUDIT_ID_ANNOTATION not in docs(done.stdout)[0]["items"][0]["metadata"]["annotations"]


def _kustomize() -> str:
    """The standalone kustomize (``scripts/kube/kustomize``): kubectl's built-in one runs no exec functions."""
    home = os.environ.get("LIUBAI_KUSTOMIZE_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "liubai" / "kustomize-v5.5.0"
    )
    found = shutil.which("kustomize") or (f"{home}/kustomize" if Path(home, "kustomize").is_file() else None)
    if found is None:
        missing("kube", "no standalone kustomize for KRM exec functions (run scripts/kube/kustomize)")
    return str(found)


def test_kustomize_runs_annotate_as_an_exec_krm_function(tmp_path: Path) -> None:
    kustomize = _kustomize()
    (tmp_path / "app.yaml").write_text(MANIFESTS)
    fn = tmp_path / "liubai-annotate"
    fn.write_text(f"#!/bin/sh\nexec {sys.executable} -m liubai.api.cli.main annotate --quiet\n")
    fn.chmod(0o755)
    (tmp_path / "stamp.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stamp\n  annotations:\n"
        "    config.kubernetes.io/function: |\n      exec:\n        path: ./liubai-annotate\n"
        f"data:\n  commit: {SHA}\n"
    )
    (tmp_path / "kustomization.yaml").write_text("resources: [app.yaml]\ntransformers: [stamp.yaml]\n")

    def build() -> str:
        done = subprocess.run(
            [kustomize, "build", "--enable-alpha-plugins", "--enable-exec", str(tmp_path)],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = build()
    by_kind = {d["kind"]: d for d in docs(out)}
    audit = parse_audit_id(by_kind["Deployment"]["metadata"]["annotations"][AUDIT_ID_ANNOTATION])
    assert audit.commit == SHA
    template = by_kind["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"][AUDIT_ID_ANNOTATION] == audit.canonical
    assert AUDIT_ID_ENV in {e["name"] for e in template["spec"]["containers"][0]["env"]}
    assert by_kind["ConfigMap"]["data"] == docs(MANIFESTS)[2]["data"]
    assert "config.kubernetes.io/index" not in str(by_kind)  # kustomize took back what it put in
    assert build() == out  # an Argo CD refresh renders again: the same manifests, no diff
