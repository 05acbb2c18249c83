"""The demo's GitOps repository and log lines: small, real, and covering the whole chain.

Commit A adds the payments service and its build script; its build is traced (or a recorded trace is
replayed) under the pipeline's audit id ``git-sha1:<A>|trace:<T>``; commit B declares its Deployment. No
manifest carries an audit id: a commit cannot hold its own sha, so the id is stamped at deploy time (the
demo's deploy step, through ``liubai webhook``), with the commit Flux applies and the pipeline's trace
``T``; the service's log lines carry that stamped id and trace. Everything is generated with real git,
deterministic dates and authors, so the shas are stable across machines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import git

__all__ = [
    "DEMO_TRACE",
    "OTEL_TRACE",
    "SECOND_TRACE",
    "DemoRepo",
    "build_demo_repo",
    "write_demo_logs",
    "write_demo_otlp",
]

DEMO_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECOND_TRACE = "0af7651916cd43dd8448eb211c80319c"
OTEL_TRACE = "5b8efff798038103d269b633813fc60c"  # a request the payments service traced itself


@dataclass(frozen=True, slots=True)
class DemoRepo:
    path: Path
    build_commit: str  # the commit whose build pipeline is traced
    deploy_commit: str  # the commit that declares the payments Deployment
    head: str  # the revision the GitOps controller applies
    audit_id: str  # the build pipeline's audit id
    trace_id: str  # the pipeline's trace, passed on to the deploy as a ``traceparent``
    manifests: tuple[Path, ...]  # the good manifests at ``head``, what the deploy step applies

    def traceparents(self) -> dict[str, str]:
        """Deployment name -> the W3C ``traceparent`` the delivery pipeline passes with it."""
        return {
            "payments": f"00-{self.trace_id}-00f067aa0ba902b7-01",
            "web": f"00-{SECOND_TRACE}-53995c3f42cd8ad8-01",
        }


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


def _deployment(name: str, image: str, replicas: int = 2) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
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
    w.write("apps/web/deployment.yaml", _deployment("web", "registry.example/web:1.0.0"))
    w.write("apps/web/service.yaml", _service("web"))
    w.commit("Bootstrap shop GitOps repository")

    w.write("services/payments/src/payments/__init__.py", _APP)
    w.write("services/payments/build.sh", _BUILD_SH)
    build = w.commit("payments: add service and build pipeline", "Ravi Iyer <ravi@example.com>")

    w.write(
        "apps/payments/payments.yaml",
        _deployment("payments", f"registry.example/payments:{build[:12]}") + "---\n" + _service("payments"),
    )
    deploy = w.commit("Deploy payments built from " + build[:12] + " (#7)")

    w.write("apps/web/deployment.yaml", _deployment("web", "registry.example/web:1.1.0", 3))
    w.commit("web: scale to 3 and bump to 1.1.0")

    w.write("apps/broken/config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n")
    w.commit("Add config (broken YAML, rejected by liubai with file and reason)")

    head = w.repo.head.commit.hexsha
    manifests = tuple(
        path / p for p in ("apps/web/deployment.yaml", "apps/web/service.yaml", "apps/payments/payments.yaml")
    )
    return DemoRepo(path, build, deploy, head, f"git-sha1:{build}|trace:{DEMO_TRACE}", DEMO_TRACE, manifests)


def _at(start: datetime, seconds: int) -> str:
    return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_demo_logs(path: Path, demo: DemoRepo, deployed_audit_id: str, start: datetime) -> Path:
    """JSON-lines logs of the payments service from ``start`` (when its Pod ran, so that a rollout's
    timeline reads in order): in the demo trace, carrying the audit id stamped on its Deployment (as the
    service reads it from ``X_GITOPS_AUDIT_ID``), plus two bad lines."""
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
            "time": _at(start, 10 * i),
            "level": level,
            "service": "payments",
            "message": msg,
            "trace_id": demo.trace_id,
        }
        if i % 2 == 0:
            record["x-gitops-audit-id"] = deployed_audit_id
        lines.append(json.dumps(record))
    lines.append(
        json.dumps({"time": _at(start, 90), "service": "web", "message": "web up", "traceId": SECOND_TRACE})
    )
    lines.append("this line is not JSON")
    lines.append(
        json.dumps({"time": _at(start, 100), "message": "bad anchor", "audit_id": "git-sha256:not-a-sha"})
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def _otlp_attributes(values: dict[str, str]) -> list[dict[str, object]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in values.items()]


def write_demo_otlp(path: Path, pod_uid: str | None, start: datetime) -> Path:
    """What the payments service's OpenTelemetry SDK exports for one failed charge: two spans and a log
    line, as an OTLP/JSON file (one document per line, as the Collector's file exporter writes). Nothing
    in them names a commit or an audit id; only their resource (the pod, the Deployment) links them."""
    resource = {"service.name": "payments", "k8s.namespace.name": "shop", "k8s.deployment.name": "payments"}
    if pod_uid:
        resource["k8s.pod.uid"] = pod_uid
    at = int((start + timedelta(seconds=25)).timestamp()) * 1_000_000_000  # during the charges logged
    server, client = "a1b2c3d4e5f60718", "0f1e2d3c4b5a6978"
    spans = [
        {
            "traceId": OTEL_TRACE,
            "spanId": server,
            "name": "POST /charge",
            "kind": 2,
            "startTimeUnixNano": str(at),
            "endTimeUnixNano": str(at + 840_000_000),
            "status": {"code": 2, "message": "charge failed"},
        },
        {
            "traceId": OTEL_TRACE,
            "spanId": client,
            "parentSpanId": server,
            "name": "ledger.debit",
            "kind": 3,
            "startTimeUnixNano": str(at + 20_000_000),
            "endTimeUnixNano": str(at + 812_000_000),
            "status": {"code": 2, "message": "card declined"},
        },
    ]
    log = {
        "timeUnixNano": str(at + 812_000_000),
        "severityNumber": 17,
        "severityText": "ERROR",
        "body": {"stringValue": "ledger refused the debit: card declined"},
        "traceId": OTEL_TRACE,
        "spanId": client,
    }
    res = {"attributes": _otlp_attributes(resource)}
    documents = [
        {
            "resourceSpans": [
                {"resource": res, "scopeSpans": [{"scope": {"name": "payments"}, "spans": spans}]}
            ]
        },
        {
            "resourceLogs": [
                {"resource": res, "scopeLogs": [{"scope": {"name": "payments"}, "logRecords": [log]}]}
            ]
        },
    ]
    path.write_text("".join(json.dumps(d) + "\n" for d in documents))
    return path
