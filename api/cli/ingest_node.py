"""``liubai ingest node``: a node agent's journal into the graph, without the API in between.

The journal (``node-journal.jsonl`` in ``liubai agent --ebpf``'s state dir) is what the agent ships; reading
it directly serves a node cut off from the API, a copy taken for an investigation, and the demo's replay.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from liubai.api.cli.common import fail, say, spinner, state, store_session
from liubai.api.cli.ingest import ingest_app
from liubai.api.cli.ingest_logs import RejectPrinter
from liubai.collector.ingest import IngestSummary, ingest_records
from liubai.lineage.records import Record
from liubai.lineage.urls import redact_url

__all__ = ["node", "register"]


def _records(path: Path) -> Iterator[Record]:
    from liubai.collector.node_journal import NodeJournalSource

    source = NodeJournalSource(str(path))
    try:
        for unit in source.units(None):
            yield from unit.records
    finally:
        source.close()


def node(
    ctx: typer.Context,
    journal: Annotated[
        Path, typer.Argument(help="A node journal (node-journal.jsonl in the agent's --state-dir).")
    ],
) -> None:
    """Ingest a node agent's journal: pod containers, their processes and file accesses.

    Example: liubai ingest node /var/lib/liubai/agent/node-journal.jsonl
    """
    if not journal.is_file():
        raise fail(f"no such node journal: {journal}")
    printer = RejectPrinter()
    with store_session(ctx, create=True) as store, spinner() as bar:
        task = bar.add_task("reading the journal", total=None)

        def show(s: IngestSummary) -> None:
            bar.update(task, description=f"{sum(s.records.values()):,} records")

        summary = ingest_records(store, _records(journal), progress=show, on_reject=printer)
    printer.finish()
    say(
        f"ingested {summary.count('ContainerRecord'):,} containers, {summary.count('ProcessRecord'):,} "
        f"processes and {summary.count('FileAccessRecord'):,} file accesses from {journal}, "
        f"{summary.rejected:,} rejected, into {redact_url(state(ctx).store_url)}"
    )


def register(app: typer.Typer) -> None:
    ingest_app.command("node")(node)
