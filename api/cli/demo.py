"""``liubai demo``: the whole chain on a fresh machine, commit -> run -> processes -> files -> deployment (stamped
by the webhook) -> Pods -> the payments container's processes and files (``liubai agent --ebpf``) -> logs.

Each step runs the same ``liubai`` command a user would type, and prints it first, so the demo doubles as
a walkthrough. It ends by serving the UI on the demo's store (unless ``--no-serve``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer
from platformdirs import user_data_dir
from rich.text import Text

from liubai.api.cli.common import check_listen, console, fail, printable, say, state
from liubai.api.demo_cluster import (
    NAMESPACE,
    RECORDED_CLUSTER,
    DeployFailed,
    cluster_problems,
    deploy_demo,
    record_cluster,
    recorded_audit_id,
    recorded_pods_created,
    running_cluster,
)
from liubai.api.demo_node import RECORDED_NODE, node_problems, recorded_pod_uid, run_payments_pod
from liubai.api.demo_repo import DemoRepo, build_demo_repo, write_demo_logs, write_demo_otlp
from liubai.lineage.urls import redact_url

__all__ = ["register", "RECORDED_RUN"]

RECORDED_RUN = Path(__file__).resolve().parent.parent / "demo_data" / "recorded_run.jsonl"


def _liubai(store_url: str, *args: str, cwd: Path | None = None, check: bool = True) -> int:
    """Run one ``liubai`` command as a user would, echoing it first."""
    shown = " ".join(a if " " not in a else f"'{a}'" for a in args)
    console.print(Text(f"$ liubai {printable(shown)}", style="bold cyan"))
    cmd = [sys.executable, "-m", "liubai.api.cli.main", "--store", store_url, *args]
    # the pipeline finds this installation's python3 first, not a version-manager shim
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    code = subprocess.run(cmd, cwd=cwd, env=env, check=False).returncode
    if check and code != 0:
        raise fail(f"demo step failed (exit {code}): liubai {shown}")
    return code


def _can_trace() -> list[str]:
    try:
        from liubai.ebpf.loader import preflight
    except ImportError as exc:
        return [f"eBPF support cannot load: {exc}"]
    return [str(p) for p in preflight()]


_DEMO_ENTRIES = frozenset(
    {
        "shop-gitops",
        "payments.jsonl",
        "payments-otlp.json",
        "kube",
        "lineage.db",
        "lineage.db-wal",
        "lineage.db-shm",
    }
)


def _deploy(
    store_url: str, work: Path, repo: DemoRepo, replay: bool, record_to: Path | None
) -> tuple[str, str | None, datetime]:
    """Deploy the demo repo's HEAD as Flux would, through the webhook, to a real API server and ingest what
    runs; else replay a recording of exactly that. Returns the audit id stamped on the payments Deployment,
    the uid of the payments Pod whose container ran (None: none ran) and when the service ran (its logs
    and spans are written from then on)."""
    problems = ["--replay given"] if replay else cluster_problems()
    if not problems:
        console.print(
            Text(
                "a real kube-apiserver and kube-controller-manager are available: applying as Flux's "
                "kustomize-controller, through liubai webhook",
                style="green",
            )
        )
        work.mkdir(exist_ok=True)
        try:
            with running_cluster() as cluster:
                say(
                    f"API server {cluster.server}; Kustomization flux-system/apps at main@sha1:{repo.head[:12]}"
                )
                deployed = deploy_demo(
                    store_url,
                    cluster,
                    work,
                    f"file://{repo.path}",
                    repo.head,
                    list(repo.manifests),
                    repo.traceparents(),
                )
                for name, audit_id in sorted(deployed.audit_ids.items()):
                    say(f"stamped on Deployment shop/{name}: x-gitops-audit-id: {audit_id}")
                say(f"{deployed.pods} Pods created by the controllers (no kubelet runs here)")
                pod_uid = _run_payments(store_url, cluster.kubeconfig, work, record_to)
                _liubai(store_url, "ingest", "k8s", "--kubeconfig", cluster.kubeconfig)
                if record_to is not None:
                    record_cluster(cluster.kubeconfig, record_to / RECORDED_CLUSTER.name)
                    say(f"recorded the cluster's objects to {record_to}")
            return deployed.audit_ids["payments"], pod_uid, datetime.now(UTC)
        except (DeployFailed, KeyError, OSError, ValueError, subprocess.SubprocessError) as exc:
            problems = [f"the live deploy failed: {exc}"]
    console.print(Text("a live cluster is not available here (" + "; ".join(problems) + ")", style="yellow"))
    console.print(
        Text(
            f"replaying the objects a real API server held after this deploy: {RECORDED_CLUSTER.name} "
            "(admission records need the live cluster)",
            style="yellow",
        )
    )
    _liubai(store_url, "ingest", "k8s", "--from-file", str(RECORDED_CLUSTER))
    console.print(
        Text(
            f"replaying the journal the node agent wrote while the payments Pod ran: {RECORDED_NODE.name}",
            style="yellow",
        )
    )
    _liubai(store_url, "ingest", "node", str(RECORDED_NODE))
    audit_id = recorded_audit_id(RECORDED_CLUSTER, "payments")
    if repo.head not in audit_id:
        say(
            f"warning: the recording names another revision than this demo's HEAD {repo.head[:12]}: {audit_id}"
        )
    return audit_id, recorded_pod_uid(RECORDED_NODE), recorded_pods_created(RECORDED_CLUSTER)


def _run_payments(store_url: str, kubeconfig: str, work: Path, record_to: Path | None) -> str | None:
    """The payments Pod's container, run with runc and traced by ``liubai agent --ebpf``, where it can be."""
    problems = node_problems()
    if not problems:
        try:
            journal_copy = record_to / RECORDED_NODE.name if record_to else None
            run = run_payments_pod(store_url, kubeconfig, work, journal_copy)
        except (DeployFailed, OSError, subprocess.SubprocessError) as exc:
            problems = [f"the container run failed: {exc}"]
        else:
            say(
                f"Pod {NAMESPACE}/{run.pod} (uid {run.pod_uid}) ran container {run.container_id[:12]} with runc"
            )
            say(f"its output: {run.output}")
            ran = _pod_processes(store_url, run.pod_uid)
            if ran:
                say(f"liubai agent --ebpf traced it: {ran} of its processes are in the store, under the Pod")
            else:
                console.print(
                    Text(
                        "liubai agent --ebpf shipped no process of it (the container ended before the agent "
                        "saw it start): the Pod has no processes in this store",
                        style="yellow",
                    )
                )
            return run.pod_uid
    console.print(
        Text(
            "the payments container cannot run and be traced here (" + "; ".join(problems) + "): "
            "its Pods stay Pending",
            style="yellow",
        )
    )
    return None


def _pod_processes(store_url: str, pod_uid: str) -> int:
    """How many processes the store holds under the Pod: what the demo may claim the agent traced."""
    from liubai.lineage.model import Direction, NodeKind, pod_node_id
    from liubai.lineage.store import open_store

    store = open_store(store_url)
    try:
        sub = store.lineage(pod_node_id(pod_uid), Direction.DOWNSTREAM, 2, None, 10_000)
    finally:
        store.close()
    return sum(1 for n in sub.nodes if n.kind == NodeKind.PROCESS and n.props.get("pod_uid") == pod_uid)


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where the demo repo, logs and store go (recreated on each run)."),
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the UI and API at the end.")
    ] = True,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="Port to serve on.")] = 8000,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay",
            help="Replay the shipped recorded trace and cluster even where eBPF tracing and a cluster work.",
        ),
    ] = False,
    record_to: Annotated[
        Path | None,
        typer.Option(
            "--record",
            hidden=True,
            help="Write the live cluster's objects and the node journal into this folder (for replays).",
        ),
    ] = None,
) -> None:
    """Build a demo GitOps repo, ingest it, trace its build pipeline, deploy it through the audit webhook to a
    real API server (or replay a recording), ingest its logs, then serve the UI.

    Example: liubai demo --dir ./.demo --port 8000
    """
    if serve:  # before anything is built or ingested: a busy port found at the end wastes the whole run
        check_listen(
            host,
            port,
            f"port {port} is taken: stop what holds it, or pick a free port (make demo PORT=8001, "
            "or liubai demo --port 8001)",
        )
    root = (directory or Path(user_data_dir("liubai")) / "demo").resolve()
    explicit_store = ctx.find_root().params.get("store") or os.environ.get("LIUBAI_STORE")
    store_url = state(ctx).store_url if explicit_store else f"sqlite:///{root / 'lineage.db'}"
    if root.exists():
        if not root.is_dir():
            raise fail(f"{root} is a file; the demo needs a directory of its own for --dir")
        others = sorted(p.name for p in root.iterdir() if p.name not in _DEMO_ENTRIES)
        if others:  # the demo deletes its --dir: never one that holds anything the demo did not write
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise fail(
                f"{root} is not a demo directory (it holds {shown}); the demo recreates its --dir, "
                "so give it a new or empty one"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True)

    console.rule("1. a GitOps repository (real git)")
    repo = build_demo_repo(root / "shop-gitops")
    say(f"{repo.path}: build commit {repo.build_commit[:12]}, deploy commit {repo.deploy_commit[:12]}")
    say(f"build pipeline audit id {repo.audit_id}; no manifest carries one (the webhook stamps it)")
    _liubai(store_url, "ingest", "git", str(repo.path))

    console.rule("2. the build pipeline of the build commit, traced in the kernel")
    problems = [] if not replay else ["--replay given"]
    problems = problems or _can_trace()
    if not problems:
        console.print(Text("eBPF tracing is available: tracing the real build step", style="green"))
        _liubai(
            store_url,
            "trace",
            "--commit",
            repo.build_commit,
            "--audit-id",
            repo.audit_id,
            "--",
            "sh",
            "build.sh",
            cwd=repo.path / "services" / "payments",
        )
    else:
        console.print(
            Text("eBPF tracing is not available here (" + "; ".join(problems) + ")", style="yellow")
        )
        console.print(
            Text(
                f"replaying a run recorded by a real 'liubai trace --record': {RECORDED_RUN.name}",
                style="yellow",
            )
        )
        _liubai(
            store_url,
            "ingest",
            "events",
            str(RECORDED_RUN),
            "--commit",
            repo.build_commit,
            "--audit-id",
            repo.audit_id,
        )

    console.rule("3. deployed as Flux would, the audit id stamped by the webhook, read back from the cluster")
    deployed_id, pod_uid, ran_at = _deploy(store_url, root / "kube", repo, replay, record_to)

    console.rule("4. the service's logs, carrying the trace and the stamped audit id")
    logs = write_demo_logs(root / "payments.jsonl", repo, deployed_id, ran_at)
    _liubai(store_url, "ingest", "logs", str(logs))
    say(
        "and what its OpenTelemetry SDK exported: spans and a log line linked only by their resource (its Pod)"
    )
    otlp = write_demo_otlp(root / "payments-otlp.json", pod_uid, ran_at)
    _liubai(store_url, "ingest", "logs", str(otlp), "--format", "otlp", "--source", "payments-otel")

    console.rule("5. the chain, from the build commit downstream")
    _liubai(store_url, "lineage", f"commit:{repo.build_commit}", "--depth", "2", "--direction", "downstream")

    base = f"http://{host}:{port}"
    node = quote(f"commit:{repo.build_commit}", safe="")
    console.rule("6. explore")
    console.print(Text(f"web UI     {base}/#node={node}&depth=3&direction=downstream", style="bold"))
    deployed = quote(f"commit:{repo.head}", safe="")
    console.print(Text(f"deployed   {base}/#node={deployed}&depth=4&direction=downstream", style="bold"))
    if pod_uid:
        pod = quote(f"pod:{pod_uid}", safe="")
        console.print(Text(f"pod        {base}/#node={pod}&depth=3&direction=both", style="bold"))
    console.print(
        Text(
            "timeline   on the deployed commit: Timeline (its admissions, Pods, processes, spans and logs on one axis)"
        )
    )
    console.print(Text(f"GraphiQL   {base}/graphql", style="bold"))
    console.print(
        Text(
            f'try        {{ lineage(from: "commit:{repo.build_commit}", depth: 3) {{ nodes {{ id kind label }} edges {{ source kind target }} }} }}'
        )
    )
    say(f"store      {redact_url(store_url)}")
    _cli_hints(store_url, repo, pod_uid)
    if serve:
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "liubai.api.cli.main",
                "--store",
                store_url,
                "serve",
                "--host",
                host,
                "--port",
                str(port),
            ],
        )


def _cli_hints(store_url: str, repo: DemoRepo, pod_uid: str | None) -> None:
    """How to ask the demo's store from a shell: the variable to set and two commands with its real ids."""
    console.rule("7. the same store from the command line")
    say(f"export LIUBAI_STORE={shlex.quote(redact_url(store_url))}   # or: liubai --store ... <command>")
    say(f"liubai show commit:{repo.build_commit}")
    start = f"pod:{pod_uid}" if pod_uid else f"commit:{repo.head}"
    say(f"liubai lineage {start} --direction upstream --depth 4 --json")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
