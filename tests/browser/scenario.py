"""The lineage the browser tests look at, built the way collectors build it: records -> join -> upsert.

Its chains share one store:

* the *release* chain: commit (with hostile text in its message) -> audit id -> two workloads, one of
  them running a Pod (stamped with the audit id) with one container; the commit triggered a run whose
  processes (one with a privilege change, one with hostile argv) opened files - one process 800 of
  them - and log lines (one hostile) carry the audit id and trace;
* the release's *rollout*: the webhook's admission decisions stamping the audit id on both Deployments
  (and a Pod), their ReplicaSets and three Pods (created before the collector listed them), the
  containers the kubelet reported, one of them watched by the node agent with two processes, and what
  the api Pod emitted - two spans and 1,000 log lines joined by their resource (``k8s.pod.uid``) alone,
  four hops below the commit;
* the *bulk* chain: a commit whose run has 40 processes of 49 files each, a lineage of about 2,000 nodes
  that opens as a summary (its 40 processes one aggregate, their 1,960 files below it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from liubai.lineage.join import join_records
from liubai.lineage.model import (
    admission_node_id,
    audit_node_id,
    commit_node_id,
    container_node_id,
    file_node_id,
    log_node_id,
    parse_audit_id,
    pod_node_id,
    process_node_id,
    span_node_id,
)
from liubai.lineage.records import (
    AdmissionRecord,
    ClusterObjectRecord,
    CommitRecord,
    ContainerRecord,
    ContainerStatus,
    FileAccessRecord,
    LogRecord,
    ManifestObjectRecord,
    PodRecord,
    ProcessRecord,
    Record,
    RunRecord,
    SpanRecord,
)
from liubai.lineage.store.base import LineageStore

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(1)</script>"

HOST = "ci-runner-7"
REPO = "https://git.example.com/platform/gitops.git"
RELEASE_SHA = "3f9a2c41d0b7e65a8c1f2e3d4b5a69788796a5b4"
PARENT_SHA = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
BULK_SHA = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a291807"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
BULK_TRACE = "0af7651916cd43dd8448eb211c80319c"
POD_UID = "5a1f0c2e-7d9f-4b3a-9c8d-2e4f6a8b0c1d"
CONTAINER_ID = "c0ffee" * 10 + "0a0b"
FANOUT_FILES = 800
BULK_PROCESSES = 40
BULK_FILES_EACH = 49
NODE = "node-a"
FLUX = "system:serviceaccount:flux-system:kustomize-controller"
SERVICE_TRACE = "5c1e0b7a9d2f4e6a8b3c7d1e9f0a2b4c"
POD_LOGS = 1000
# (Pod name, uid, owner ReplicaSet, created at second) of the release's rollout
PODS = (
    ("api-5d8f-a", "6f1c2a3b-0001-4a5b-8c9d-0e1f2a3b4c5d", "api-5d8f", 93),
    ("api-5d8f-b", "6f1c2a3b-0002-4a5b-8c9d-0e1f2a3b4c5d", "api-5d8f", 94),
    ("worker-6c7b-a", "6f1c2a3b-0003-4a5b-8c9d-0e1f2a3b4c5d", "worker-6c7b", 95),
)


@dataclass(frozen=True)
class Scenario:
    """Ids the tests navigate by."""

    release_commit: str = commit_node_id(RELEASE_SHA)
    release_audit: str = audit_node_id(parse_audit_id(f"git-sha256:{RELEASE_SHA}|trace:{TRACE}"))
    bulk_commit: str = commit_node_id(BULK_SHA)
    workloads: tuple[str, ...] = ("workload:Deployment/prod/api", "workload:Deployment/prod/worker")
    pod: str = pod_node_id(POD_UID)
    container: str = container_node_id(CONTAINER_ID)
    release_run: str = f"run:{HOST}:4100:1000000"
    fanout_process: str = process_node_id(HOST, 4103, 1000300)
    privileged_process: str = process_node_id(HOST, 4102, 1000200)
    hostile_file: str = file_node_id(HOST, f"/tmp/{XSS_IMG}.txt")
    error_log: str = log_node_id("app-logs", "rec-0003")
    hostile_log: str = log_node_id("app-logs", "rec-0004")
    hostile_texts: tuple[str, ...] = field(default=(XSS_IMG, XSS_SCRIPT))
    admissions: tuple[str, ...] = tuple(admission_node_id(f"adm-{i}") for i in range(3))
    pods: tuple[str, ...] = tuple(pod_node_id(uid) for _, uid, _, _ in PODS)
    pod_process: str = process_node_id(NODE, 1, 5_000_000)
    error_span: str = span_node_id(SERVICE_TRACE, "00f067aa0ba902b8")


SCENARIO = Scenario()


def _ts(second: float) -> str:
    whole, micros = divmod(round(second * 1_000_000), 1_000_000)
    return f"2026-03-01T10:{whole // 60:02d}:{whole % 60:02d}.{micros:06d}Z"


def _container_id(n: int) -> str:
    return f"{n:02d}" * 32


def _commit(sha: str, parents: tuple[str, ...], subject: str, message: str, second: int) -> CommitRecord:
    return CommitRecord(
        repo=REPO,
        sha=sha,
        parents=parents,
        author_name="Mei Lin",
        author_email="mei@example.com",
        authored_at=_ts(second),
        committer_name="Mei Lin",
        committer_email="mei@example.com",
        committed_at=_ts(second),
        subject=subject,
        message=message,
        changed_paths=("apps/api.yaml",),
        branch="main",
    )


def release_records() -> list[Record]:
    audit = f"git-sha256:{RELEASE_SHA}|trace:{TRACE}"
    recs: list[Record] = [
        _commit(PARENT_SHA, (), "Initial platform manifests", "Initial platform manifests", 0),
        _commit(
            RELEASE_SHA,
            (PARENT_SHA,),
            f"Release api 2.4 {XSS_IMG}",
            f"Release api 2.4 {XSS_IMG}\n\nBody with {XSS_SCRIPT} inside.",
            10,
        ),
    ]
    for i, name in enumerate(("api", "worker")):
        recs.append(
            ManifestObjectRecord(
                repo=REPO,
                commit=RELEASE_SHA,
                path=f"apps/{name}.yaml",
                api_version="apps/v1",
                kind="Deployment",
                namespace="prod",
                name=name,
                audit_ids=(audit,),
                document_index=i,
            )
        )
    recs.append(
        PodRecord(
            cluster=None,
            namespace="prod",
            name="api-7d9f-x2k4q",
            uid=POD_UID,
            observed_at=_ts(40),
            node_name="node-1",
            phase="Running",
            owner_kind="Deployment",
            owner_name="api",
            audit_id=audit,
            created_at=_ts(35),
            containers=(
                ContainerStatus(
                    name="api",
                    image="registry.example.com/api:2.4",
                    container_id=f"containerd://{CONTAINER_ID}",
                    ready=True,
                ),
            ),
        )
    )
    recs.append(
        RunRecord(
            host=HOST,
            root_pid=4100,
            start_ns=1_000_000,
            command=("make", "release"),
            started_at=_ts(20),
            ended_at=_ts(80),
            exit_code=0,
            commit=RELEASE_SHA,
            audit_id=audit,
            trace_id=TRACE,
            repo=REPO,
        )
    )

    def proc(
        pid: int, start: int, comm: str, argv: tuple[str, ...], uid: int, parent_uid: int
    ) -> ProcessRecord:
        return ProcessRecord(
            host=HOST,
            pid=pid,
            start_ns=start,
            run_pid=4100,
            run_start_ns=1_000_000,
            ppid=4100,
            parent_start_ns=1_000_000,
            uid=uid,
            parent_uid=parent_uid,
            comm=comm,
            binary=f"/usr/bin/{comm}",
            argv=argv,
            cwd="/src/app",
            started_at=_ts(21 + (start - 1_000_000) // 100),
            ended_at=_ts(70),
            exit_code=0,
        )

    recs += [
        ProcessRecord(
            host=HOST,
            pid=4100,
            start_ns=1_000_000,
            run_pid=4100,
            run_start_ns=1_000_000,
            uid=1000,
            comm="make",
            binary="/usr/bin/make",
            argv=("make", "release"),
            cwd="/src/app",
            started_at=_ts(20),
            exit_code=0,
        ),
        proc(4101, 1_000_100, "sh", ("sh", "-c", f"echo {XSS_SCRIPT}"), 1000, 1000),
        proc(4102, 1_000_200, "sudo", ("sudo", "install", "-m755", "app", "/usr/local/bin/app"), 0, 1000),
        proc(4103, 1_000_300, "python3", ("python3", "-m", "build"), 1000, 1000),
    ]
    recs += [
        FileAccessRecord(
            host=HOST, pid=4103, start_ns=1_000_300, path=f"/src/app/pkg/module_{i:03d}.py", mode="read"
        )
        for i in range(FANOUT_FILES)
    ]
    recs += [
        FileAccessRecord(host=HOST, pid=4103, start_ns=1_000_300, path="/src/app/dist/app.tar", mode="write"),
        FileAccessRecord(host=HOST, pid=4101, start_ns=1_000_100, path=f"/tmp/{XSS_IMG}.txt", mode="write"),
        FileAccessRecord(host=HOST, pid=4102, start_ns=1_000_200, path="/usr/local/bin/app", mode="write"),
    ]
    messages = [
        ("INFO", "release started"),
        ("INFO", "image pushed registry.example.com/api:2.4"),
        ("WARN", "slow rollout: 1/3 pods ready"),
        ("ERROR", "readiness probe failed on api-7d9f"),
        ("INFO", f"user comment {XSS_IMG} {XSS_SCRIPT}"),
    ]
    for i, (level, message) in enumerate(messages):
        recs.append(
            LogRecord(
                source="app-logs",
                record_id=f"rec-{i:04d}",
                time=_ts(30 + i),
                level=level,
                service="api",
                message=message,
                trace_id=TRACE,
                audit_id=audit,
            )
        )
    return recs


def rollout_records() -> list[Record]:
    """The release deployed: the webhook's decisions, the live objects, the api Pod's container and what it
    emitted. The Pods were listed by the cluster collector at 10:10, minutes after they were created."""
    audit = f"git-sha256:{RELEASE_SHA}|trace:{TRACE}"
    listed = _ts(600)
    recs: list[Record] = [
        AdmissionRecord(
            f"adm-{i}",
            None,
            _ts(90 + i),
            FLUX,
            "CREATE",
            kind,
            "prod",
            name,
            "patched",
            audit,
            "flux-kustomization",
            "new",
        )
        for i, (kind, name) in enumerate((("Deployment", "api"), ("Deployment", "worker"), ("Pod", "api")))
    ]
    for name, rs in (("api", "api-5d8f"), ("worker", "worker-6c7b")):
        recs += [
            ClusterObjectRecord(
                None,
                "apps/v1",
                "Deployment",
                "prod",
                name,
                f"uid-{name}",
                _ts(92),
                audit_id=audit,
                replicas=2,
            ),
            ClusterObjectRecord(
                None,
                "apps/v1",
                "ReplicaSet",
                "prod",
                rs,
                f"uid-{rs}",
                _ts(92),
                audit_id=audit,
                owner_kind="Deployment",
                owner_name=name,
                revision="1",
            ),
        ]
    for i, (name, uid, rs, second) in enumerate(PODS):
        recs.append(
            PodRecord(
                None,
                "prod",
                name,
                uid,
                listed,
                node_name=NODE,
                phase="Running",
                owner_kind="ReplicaSet",
                owner_name=rs,
                audit_id=audit,
                created_at=_ts(second),
                containers=(
                    ContainerStatus(
                        rs.split("-")[0],
                        f"registry.example.com/{rs.split('-')[0]}:2.4",
                        container_id=f"containerd://{_container_id(i + 1)}",
                        ready=True,
                    ),
                ),
            )
        )
    api_uid, api_container = PODS[0][1], _container_id(1)
    recs.append(
        ContainerRecord(
            NODE,
            api_container,
            "containerd",
            f"/kubepods/pod{api_uid}/{api_container}",
            api_uid,
            _ts(96),
            _ts(300),
            namespace="prod",
            running=1,
            processes=2,
        )
    )
    recs += [
        ProcessRecord(
            NODE,
            1,
            5_000_000,
            0,
            0,
            uid=1000,
            comm="api",
            binary="/app/api",
            argv=("/app/api", "--port=8080"),
            started_at=_ts(97),
            container_id=api_container,
            pod_uid=api_uid,
            container_top=True,
            audit_id=audit,
        ),
        ProcessRecord(
            NODE,
            12,
            9_000_000,
            0,
            0,
            ppid=1,
            parent_start_ns=5_000_000,
            uid=1000,
            parent_uid=1000,
            comm="sh",
            binary="/bin/sh",
            argv=("sh", "-c", "healthcheck"),
            started_at=_ts(150),
            ended_at=_ts(150.2),
            exit_code=0,
            container_id=api_container,
            pod_uid=api_uid,
        ),
    ]
    emitter = {"k8s.pod.uid": api_uid, "service.name": "api"}
    recs += [
        SpanRecord(
            "api-otel",
            SERVICE_TRACE,
            "b7ad6b7169203331",
            name="GET /orders",
            kind="SERVER",
            service="api",
            start=_ts(120),
            end=_ts(120.9),
            status="ERROR",
            status_message="upstream timeout",
            resource=emitter,
        ),
        SpanRecord(
            "api-otel",
            SERVICE_TRACE,
            "00f067aa0ba902b8",
            parent_span_id="b7ad6b7169203331",
            name="SELECT orders",
            kind="CLIENT",
            service="api",
            start=_ts(120.1),
            end=_ts(120.8),
            status="ERROR",
            status_message="timeout",
            resource=emitter,
        ),
    ]
    recs += [
        LogRecord(
            "api-stdout",
            f"pod-{i:05d}",
            time=_ts(100 + i * 0.2),
            level="INFO",
            service="api",
            message=f"GET /orders/{i} 200",
            resource=emitter,
        )
        for i in range(POD_LOGS)
    ]
    return recs


def bulk_records() -> list[Record]:
    audit = f"git-sha256:{BULK_SHA}|trace:{BULK_TRACE}"
    recs: list[Record] = [
        _commit(BULK_SHA, (), "Rebuild every service", "Rebuild every service", 100),
        RunRecord(
            host=HOST,
            root_pid=5000,
            start_ns=2_000_000,
            command=("make", "all"),
            started_at=_ts(110),
            ended_at=_ts(300),
            exit_code=0,
            commit=BULK_SHA,
            audit_id=audit,
            trace_id=BULK_TRACE,
        ),
    ]
    for p in range(BULK_PROCESSES):
        pid, start = 5001 + p, 2_000_100 + p
        recs.append(
            ProcessRecord(
                host=HOST,
                pid=pid,
                start_ns=start,
                run_pid=5000,
                run_start_ns=2_000_000,
                uid=1000,
                parent_uid=1000,
                comm="cc",
                binary="/usr/bin/cc",
                argv=("cc", "-c", f"svc{p:02d}.c"),
                started_at=_ts(120 + p),
            )
        )
        recs += [
            FileAccessRecord(
                host=HOST, pid=pid, start_ns=start, path=f"/src/svc{p:02d}/src_{f:02d}.c", mode="read"
            )
            for f in range(BULK_FILES_EACH)
        ]
    return recs


def load(store: LineageStore) -> Scenario:
    """Fill ``store`` with both chains; raises if any record was rejected (the scenario is all good data)."""
    batch = join_records([*release_records(), *rollout_records(), *bulk_records()])
    if batch.rejected:
        raise AssertionError(f"scenario records rejected: {batch.rejected}")
    store.upsert(batch)
    return SCENARIO
