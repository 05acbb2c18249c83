"""The demo's GitOps repository and log lines: small, real, and covering the whole chain.

Commit A adds the payments service and its build script; commit B deploys it with the audit id
``git-sha256:<A>|trace:<T>``; the build of A is traced (or a recorded trace is replayed); the service's
log lines carry the same trace and audit id. Everything is generated with real git, deterministic dates
and authors, so the shas are stable across machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import git

__all__ = ["DemoRepo", "build_demo_repo", "write_demo_logs", "DEMO_TRACE"]

DEMO_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
_SECOND_TRACE = "0af7651916cd43dd8448eb211c80319c"


@dataclass(frozen=True, slots=True)
class DemoRepo:
    path: Path
    build_commit: str  # the commit whose build is traced and whose audit id the deployment carries
    deploy_commit: str
    head: str
    audit_id: str
    trace_id: str


_BUILD_SH = """#!/bin/sh
# Build step of the payments service: compile, package, fingerprint.
set -e
mkdir -p dist
python3 -m compileall -q src
cat src/payments/*.py > dist/payments.bundle
sha256sum dist/payments.bundle > dist/payments.bundle.sha256
echo "built $(cat dist/payments.bundle.sha256)"
"""

_APP = '''"""Payments service."""


def charge(amount_cents: int) -> str:
    return f"charged {amount_cents}"
'''


def _deployment(name: str, image: str, audit_id: str | None, replicas: int = 2) -> str:
    annotations = f'\n      annotations:\n        x-gitops-audit-id: "{audit_id}"' if audit_id else ""
    top = f'\n  annotations:\n    x-gitops-audit-id: "{audit_id}"' if audit_id else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop{top}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}{annotations}
    spec:
      containers:
        - name: {name}
          image: {image}
"""


def _service(name: str) -> str:
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: shop
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")
        self.tick = 0

    def write(self, rel: str, text: str) -> None:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, author: str = "Mei Lin <mei@example.com>") -> str:
        self.tick += 1
        when = f"2026-03-0{1 + self.tick // 10}T{9 + self.tick % 10:02d}:00:00+08:00"
        name, _, email = author.partition(" <")
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email.rstrip(">"),
            "GIT_COMMITTER_NAME": "GitOps Bot",
            "GIT_COMMITTER_EMAIL": "bot@example.com",
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_DATE": when,
        }
        self.repo.git.add("-A")
        self.repo.git.commit("-q", "--no-gpg-sign", "-m", message, env=env)
        return self.repo.head.commit.hexsha


def build_demo_repo(path: Path) -> DemoRepo:
    """Create the demo repository at ``path`` (which must not exist yet)."""
    w = _Writer(path)
    w.write("README.md", "# shop-gitops\n\nDeclarations of the shop's workloads.\n")
    w.write("apps/web/deployment.yaml", _deployment("web", "registry.example/web:1.0.0", None))
    w.write("apps/web/service.yaml", _service("web"))
    w.commit("Bootstrap shop GitOps repository")

    w.write("services/payments/src/payments/__init__.py", _APP)
    w.write("services/payments/build.sh", _BUILD_SH)
    build = w.commit("payments: add service and build pipeline", "Ravi Iyer <ravi@example.com>")

    audit_id = f"git-sha256:{build}|trace:{DEMO_TRACE}"
    w.write(
        "apps/payments/payments.yaml",
        _deployment("payments", f"registry.example/payments:{build[:12]}", audit_id)
        + "---\n"
        + _service("payments"),
    )
    deploy = w.commit("Deploy payments built from " + build[:12] + " (#7)")

    w.write(
        "apps/web/deployment.yaml",
        _deployment(
            "web", "registry.example/web:1.1.0", f"git-sha1:{deploy}|trace:{_SECOND_TRACE}|env:prod", 3
        ),
    )
    w.commit("web: scale to 3 and bump to 1.1.0")

    w.write("apps/broken/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n")
    w.commit("Add config (broken YAML, rejected by liubai with file and reason)")

    head = w.repo.head.commit.hexsha
    return DemoRepo(path, build, deploy, head, audit_id, DEMO_TRACE)


def write_demo_logs(path: Path, demo: DemoRepo) -> Path:
    """JSON-lines logs of the payments service: in the demo trace, carrying the audit id, plus two bad lines."""
    lines: list[str] = []
    for i, (level, msg) in enumerate(
        [
            ("INFO", "payments starting"),
            ("INFO", "connected to ledger"),
            ("WARN", "slow charge: 812ms"),
            ("ERROR", "charge failed: card declined <script>alert(1)</script>"),
            ("INFO", "charge ok"),
        ]
    ):
        record = {
            "time": f"2026-03-01T10:0{i}:00Z",
            "level": level,
            "service": "payments",
            "message": msg,
            "trace_id": demo.trace_id,
        }
        if i % 2 == 0:
            record["x-gitops-audit-id"] = demo.audit_id
        lines.append(json.dumps(record))
    lines.append(
        json.dumps(
            {"time": "2026-03-01T10:09:00Z", "service": "web", "message": "web up", "traceId": _SECOND_TRACE}
        )
    )
    lines.append("this line is not JSON")
    lines.append(
        json.dumps(
            {"time": "2026-03-01T10:10:00Z", "message": "bad anchor", "audit_id": "git-sha256:not-a-sha"}
        )
    )
    path.write_text("\n".join(lines) + "\n")
    return path
