"""``liubai drift``: running workloads Git does not account for (no audit id, or a commit that never
declared them), listed rather than hidden."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, printable, say, store_session
from liubai.lineage.drift import find_drift

__all__ = ["register"]


def drift_cmd(
    ctx: typer.Context,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="Only this named cluster (as given to ingest k8s --cluster)."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON array of drift items (node_id, kind, namespace, name, cluster, reason, "
            "detail, audit_id, commit); [] when there is none.",
        ),
    ] = False,
) -> None:
    """List running workloads (and bare Pods) that carry no audit id, a malformed one, or one whose commit
    Git never declared for them; exits 0 either way (drift is an answer, not an error).

    Example: liubai drift --cluster prod --json
    """
    with store_session(ctx, create=False) as store:
        found = find_drift(store, cluster, every_cluster=cluster is None)
    if as_json:
        emit_json([asdict(d) for d in found])
        return
    if not found:
        say("no drift: every running workload carries an audit id whose commit declares it")
        return
    table = Table(title=f"drift ({len(found)})", show_header=True, header_style="bold")
    for column in ("workload", "reason", "detail"):
        table.add_column(column)
    for d in found:
        where = f"{d.cluster + ':' if d.cluster else ''}{d.kind}/{d.namespace}/{d.name}"
        table.add_row(Text(printable(where)), Text(d.reason.value), Text(printable(d.detail)))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("drift")(drift_cmd)
