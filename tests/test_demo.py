"""The README's first command: ``liubai demo`` builds, ingests, traces (or replays) and serves the chain."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from liubai.api.demo_cluster import FLUX_USER, cluster_problems
from liubai.api.demo_node import node_problems
from liubai.api.demo_repo import DEMO_TRACE
from liubai.lineage.model import (
    Direction,
    EdgeKind,
    NodeKind,
    audit_node_id,
    commit_node_id,
    parse_audit_id,
    pod_node_id,
)
from liubai.lineage.store import open_store
from tests._real import missing
from tests.serving import free_port

LINEAGE = """query($id: ID!) { lineage(from: $id, direction: DOWNSTREAM, depth: 4) {
  nodes { id kind label } edges { source kind target } } }"""


def _kinds_downstream(db: Path, commit: str) -> set[NodeKind]:
    store = open_store(f"sqlite:///{db}")
    try:
        return {n.kind for n in store.lineage(f"commit:{commit}", Direction.DOWNSTREAM, 4).nodes}
    finally:
        store.close()


def test_demo_serves_graphiql_answering_lineage_of_the_demo_commit(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "liubai.api.cli.main",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "300", "LIUBAI_STORE": ""},
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        graphiql = None
        while time.monotonic() < deadline and graphiql is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"GraphiQL\s+(http://\S+/graphql)", line)
            if m:
                graphiql = m.group(1)
        assert graphiql == f"http://127.0.0.1:{port}/graphql", "".join(lines)
        commit = re.search(r"node=commit%3A([0-9a-f]{40})", "".join(lines))
        assert commit, "".join(lines)
        answer = None
        while time.monotonic() < deadline:
            try:
                page = httpx.get(graphiql, headers={"Accept": "text/html"}, timeout=5)
                answer = httpx.post(
                    graphiql,
                    json={"query": LINEAGE, "variables": {"id": f"commit:{commit.group(1)}"}},
                    timeout=30,
                )
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answer is not None and answer.status_code == 200, "".join(lines)
        assert page.status_code == 200 and "graphiql" in page.text.lower()
        data = answer.json()["data"]["lineage"]
        kinds = {n["kind"] for n in data["nodes"]}
        assert {
            "Commit",
            "AuditRecord",
            "Workload",
            "Trace",
            "LogEvent",
            "PipelineRun",
            "Process",
            "File",
            "Pod",
        } <= kinds
        labels = " ".join(n["label"] for n in data["nodes"])
        assert "payments" in labels
        _check_deploy_step("".join(lines), tmp_path / "demo" / "lineage.db")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


STAMPED = re.compile(
    r"stamped on Deployment shop/payments: x-gitops-audit-id: (git-sha1:([0-9a-f]{40})\|trace:(\w+))"
)


def _check_deploy_step(output: str, db: Path) -> None:
    """Where a cluster runs, the demo deployed through the webhook: the id on the live Deployment names the
    HEAD commit Flux applied and the pipeline's trace, and the admission record names Flux's controller."""
    problems = cluster_problems()
    if problems:
        missing("kube", "the demo's deploy step replayed: " + "; ".join(problems))
    stamped = STAMPED.search(output)
    assert stamped, output
    audit_id, commit, trace = stamped.groups()
    head = re.search(r"main@sha1:([0-9a-f]{12})", output)
    assert head and commit.startswith(head.group(1)), output
    assert trace == DEMO_TRACE
    store = open_store(f"sqlite:///{db}")
    try:
        admissions = [n for page in store.iter_nodes() for n in page if n.kind is NodeKind.ADMISSION]
        pods = store.lineage(audit_node_id(parse_audit_id(audit_id)), Direction.DOWNSTREAM, 3).nodes
    finally:
        store.close()
    payments = [a.props for a in admissions if a.props.get("name") == "payments"]
    assert payments and all(p.get("username") == FLUX_USER for p in payments), [a.props for a in admissions]
    assert sum(1 for n in pods if n.kind is NodeKind.POD) == 2  # the Deployment's two replicas
    _check_payments_container(output, db, audit_id)


RAN = re.compile(r"Pod shop/(payments-\S+) \(uid ([0-9a-f-]{36})\) ran container ([0-9a-f]{12}) with runc")


def _check_payments_container(output: str, db: Path, audit_id: str) -> None:
    """Where runc and eBPF work, one payments Pod ran its container under ``liubai agent --ebpf``: the Pod
    holds the container, its processes and the files they touched, in the container's view, and the
    environment's audit id (set from the stamped annotation) links those processes to the deploy."""
    problems = node_problems()
    if problems:
        missing("runc", "the demo's payments container did not run: " + "; ".join(problems))
    ran = RAN.search(output)
    assert ran, output
    pod_uid, container = ran.group(2), ran.group(3)
    store = open_store(f"sqlite:///{db}")
    try:
        below = store.lineage(pod_node_id(pod_uid), Direction.DOWNSTREAM, 3)
        stamped = store.lineage(audit_node_id(parse_audit_id(audit_id)), Direction.DOWNSTREAM, 1)
    finally:
        store.close()
    kinds = {n.kind for n in below.nodes}
    assert {NodeKind.CONTAINER, NodeKind.PROCESS, NodeKind.FILE} <= kinds, kinds
    containers = [n for n in below.nodes if n.kind is NodeKind.CONTAINER]
    assert [n.id.split(":", 1)[1][:12] for n in containers] == [container]
    assert containers[0].props.get("image"), containers[0].props  # from the status the demo wrote back
    read = {n.props.get("path") for n in below.nodes if n.kind is NodeKind.FILE}
    assert {"/data/config.txt", "/tmp/ledger"} <= read, read
    processes = {n.id for n in below.nodes if n.kind is NodeKind.PROCESS}
    annotated = {e.dst for e in stamped.edges if e.kind is EdgeKind.ANNOTATES}
    assert processes & annotated, "the environment's audit id links the container's processes"


def test_demo_replay_links_the_recorded_run_to_the_demo_commit(tmp_path: Path) -> None:
    for _ in range(2):  # ``make demo`` runs again into the directory it made: the demo recreates it
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "liubai.api.cli.main",
                "demo",
                "--dir",
                str(tmp_path / "d"),
                "--no-serve",
                "--replay",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "300", "LIUBAI_STORE": ""},
            timeout=240,
        )
        assert out.returncode == 0, out.stdout + out.stderr
    assert "replaying a run recorded" in out.stdout
    commit = re.search(r"node=commit%3A([0-9a-f]{40})", out.stdout)
    assert commit
    kinds = _kinds_downstream(tmp_path / "d" / "lineage.db", commit.group(1))
    assert {
        NodeKind.PIPELINE_RUN,
        NodeKind.PROCESS,
        NodeKind.FILE,
        NodeKind.LOG_EVENT,
        NodeKind.WORKLOAD,
        NodeKind.POD,
    } <= kinds
    assert "replaying the objects a real API server held" in out.stdout
    assert "replaying the journal the node agent wrote" in out.stdout
    pod = re.search(r"node=pod%3A([0-9a-f-]{36})", out.stdout)
    assert pod, out.stdout
    store = open_store(f"sqlite:///{tmp_path / 'd' / 'lineage.db'}")
    try:
        reasons = [r.reason for r in store.rejected().records]
        below_nodes = store.lineage(pod_node_id(pod.group(1)), Direction.DOWNSTREAM, 3).nodes
        below = {n.kind for n in below_nodes}
        otel = [n for n in below_nodes if n.props.get("source") == "payments-otel"]
        built = store.lineage(commit_node_id(commit.group(1)), Direction.DOWNSTREAM, 4).edges
    finally:
        store.close()
    # the recorded build's outputs carry the digests taken at their writers' last close, and the .pyc
    # that compileall wrote aside and renamed into place carries its content under its final name
    wrote = {e.dst.rsplit("/", 1)[1]: e.props for e in built if e.kind is EdgeKind.WROTE}
    assert re.fullmatch(r"[0-9a-f]{64}", wrote["payments.bundle"].get("sha256") or ""), wrote
    aside = next(v for k, v in wrote.items() if k.startswith("__init__.cpython-311.pyc."))
    assert wrote["__init__.cpython-311.pyc"]["via"] == "rename"
    assert wrote["__init__.cpython-311.pyc"]["sha256"] == aside["sha256"] is not None
    assert {NodeKind.CONTAINER, NodeKind.PROCESS, NodeKind.FILE} <= below  # the recorded container run
    # what the service's OpenTelemetry SDK exported names only its Pod, in its resource
    assert {NodeKind.RESOURCE, NodeKind.SPAN, NodeKind.LOG_EVENT} <= below
    spans = [n for n in otel if n.kind is NodeKind.SPAN]
    assert {(n.props["name"], n.props["status"]) for n in spans} == {
        ("POST /charge", "ERROR"),
        ("ledger.debit", "ERROR"),
    }
    assert any("invalid YAML" in r for r in reasons) and any("malformed audit id" in r for r in reasons)
    _run_the_printed_cli_commands(out.stdout, commit.group(1), pod.group(1))


def _run_the_printed_cli_commands(stdout: str, commit: str, pod: str) -> None:
    """The demo ends by saying how to point the CLI at its store: the variable and two commands with its
    real ids, which run as printed."""
    lines = [line.strip() for line in stdout.splitlines()]
    export = next(line for line in lines if line.startswith("export LIUBAI_STORE="))
    store = shlex.split(export.partition("#")[0])[1].partition("=")[2]
    commands = [line for line in lines if line.startswith("liubai ")]
    assert commands == [
        f"liubai show commit:{commit}",
        f"liubai lineage pod:{pod} --direction upstream --depth 4 --json",
    ]
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "liubai.api.cli.main", *shlex.split(command)[1:]],
            capture_output=True,
            text=True,
            env={**os.environ, "LIUBAI_STORE": store},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert commit_node_id(commit) in {n["id"] for n in json.loads(done.stdout)["nodes"]}


def test_demo_checks_its_port_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "liubai.api.cli.main",
                "demo",
                "--dir",
                str(tmp_path / "d"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "LIUBAI_STORE": ""},
            timeout=60,
        )
    assert out.returncode == 3, out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "make demo PORT=" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
    assert not (tmp_path / "d").exists()  # nothing built or ingested


def test_make_demo_passes_port_to_the_demo() -> None:
    done = subprocess.run(
        ["make", "-n", "demo", "PORT=8123"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "liubai demo --dir .demo --port 8123" in done.stdout


@pytest.mark.parametrize("flag", ["--help"])
def test_demo_help_shows_an_example(flag: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "liubai.api.cli.main", "demo", flag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "Example: liubai demo" in out.stdout


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    """The demo recreates its --dir: ``--dir .`` in a project must not delete the project."""
    (tmp_path / "notes.txt").write_text("mine")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "liubai.api.cli.main",
            "demo",
            "--dir",
            str(tmp_path),
            "--no-serve",
            "--replay",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "not a demo directory (it holds notes.txt)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"
