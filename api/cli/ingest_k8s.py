"""``liubai ingest k8s``: what a Kubernetes cluster runs (workloads, ReplicaSets, Pods, GitOps objects)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.table import Table

from liubai.api.cli.common import (
    console,
    emit_json,
    fail_error,
    printable,
    say,
    spinner,
    state,
    store_session,
)
from liubai.api.cli.ingest import ingest_app
from liubai.api.cli.ingest_logs import RejectPrinter
from liubai.collector.ingest import IngestSummary, Notice, ingest_records
from liubai.collector.k8s import ClusterCollector, KubeError, connect, ingest_cluster
from liubai.collector.k8s.snapshot import snapshot_items
from liubai.collector.retry import RetryPolicy
from liubai.lineage.provenance import K8S_WRITER
from liubai.lineage.urls import redact_url

__all__ = ["register"]


def k8s(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, else in-cluster)."
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubeconfig context (default: the current one).")
    ] = None,
    in_cluster: Annotated[
        bool, typer.Option("--in-cluster", help="Use the service account of the Pod this runs in.")
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Name the cluster in workload ids, so objects of different clusters never merge (default: "
            "none, the ids Git ingest writes, so live and declared objects meet).",
        ),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep watching after the first sync, until interrupted (Ctrl-C or SIGTERM)."
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Records per store transaction.")
    ] = 2000,
    deadline: Annotated[
        float,
        typer.Option(
            "--retry-deadline", min=0.0, help="Give up on an unreachable API server after this long."
        ),
    ] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON line.")] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            exists=True,
            dir_okay=False,
            help="Read objects saved with 'kubectl get ... -o json' (a List, or one per line) instead of a "
            "live API server: an audit of a cluster liubai cannot reach.",
        ),
    ] = None,
) -> None:
    """Read Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods, Namespaces and, where
    their CRDs exist, Flux Kustomizations/HelmReleases/GitRepositories and Argo CD Applications.

    Live objects join the workloads Git declared; Pods link to their owners and to the audit id
    (x-gitops-audit-id) stamped on them. A resourceVersion checkpoint per resource type is stored with the
    data it covers, so a --watch that is stopped (or killed) resumes where it stopped.

    Example: liubai ingest k8s --kubeconfig ~/.kube/config --context prod --cluster prod --watch
    """
    if from_file is not None:
        _ingest_snapshot(ctx, from_file, cluster, batch_size, as_json)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    printer = RejectPrinter()

    def notice(n: Notice) -> None:
        say(f"warning: {n.message}", err=True)

    try:
        api = connect(kubeconfig, context, in_cluster=in_cluster)
    except KubeError as exc:
        raise fail_error(exc) from None
    previous: dict[int, Any] = {}
    try:
        with (
            store_session(ctx, create=True) as store,
            spinner(disable=as_json) as bar,
        ):
            collector = ClusterCollector(
                api, store, cluster=cluster, retry=RetryPolicy.from_env(deadline=deadline), on_notice=notice
            )

            def on_signal(signum: int, frame: FrameType | None) -> None:
                collector.stop.set()  # the batch in flight is stored, with its checkpoints

            previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
            if watch:  # from here a stop request is honoured: what is read gets stored
                say(f"watching {api.server}: stop with Ctrl-C or SIGTERM", err=True)
            task = bar.add_task(f"reading {api.server}", total=None)

            def show(s: IngestSummary) -> None:
                bar.update(
                    task,
                    description=f"{sum(s.records.values()):,} objects, {s.rejected:,} rejected "
                    f"({'watching' if watch else 'listing'} {api.server})",
                )

            try:
                summary = ingest_cluster(
                    store, collector, watch=watch, batch_size=batch_size, progress=show, on_reject=printer
                )
            except KubeError as exc:  # batches stored before it stay, with their checkpoints
                printer.finish()
                raise fail_error(exc) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        api.close()
    printer.finish()
    stats = collector.stats
    report = {
        "server": api.server,
        "cluster": cluster,
        "objects": stats.objects,
        "workloads": summary.count("ClusterObjectRecord"),
        "pods": summary.count("PodRecord"),
        "deleted_while_unwatched": stats.vanished,
        "relists": stats.relists,
        "forbidden": stats.forbidden,
        "rejected": summary.rejected,
        "nodes_created": summary.nodes_created,
        "edges_created": summary.edges_created,
    }
    if as_json:
        emit_json(report)
        return
    table = Table(title=f"k8s ingest ({api.server})", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, key in (
        ("object records", "workloads"),
        ("pod records", "pods"),
        ("deleted while unwatched", "deleted_while_unwatched"),
        ("relists (410 Gone)", "relists"),
        ("rejected", "rejected"),
        ("new nodes", "nodes_created"),
        ("new edges", "edges_created"),
    ):
        table.add_row(label, str(report[key]))
    table.add_row("resources refused (RBAC)", str(len(stats.forbidden)))
    console.print(table)
    say(f"into {redact_url(state(ctx).store_url)}")


def _ingest_snapshot(
    ctx: typer.Context, path: Path, cluster: str | None, batch_size: int, as_json: bool
) -> None:
    printer = RejectPrinter()
    with store_session(ctx, create=True) as store:
        summary = ingest_records(
            store,
            snapshot_items(path, cluster),
            batch_size=batch_size,
            on_reject=printer,
            writer=K8S_WRITER,
        )
    printer.finish()
    for n in summary.notices:  # documents that are no objects liubai reads: kept in the rejected trail
        say(f"rejected {printable(n.location)}: {printable(n.message)}", err=True)
    report = {
        "file": str(path),
        "cluster": cluster,
        "workloads": summary.count("ClusterObjectRecord"),
        "pods": summary.count("PodRecord"),
        "rejected": summary.rejected + len(summary.notices),
        "nodes_created": summary.nodes_created,
        "edges_created": summary.edges_created,
    }
    if as_json:
        emit_json(report)
        return
    say(
        f"{report['workloads']} object and {report['pods']} pod records from {printable(str(path))} "
        f"({report['rejected']} rejected) into {redact_url(state(ctx).store_url)}"
    )


def register(app: typer.Typer) -> None:
    ingest_app.command("k8s")(k8s)
