"""``liubai migrate`` and ``liubai stats``: move a whole graph between stores (or upgrade one in place),
and see what a store holds.

Migration copies nodes (placeholders stay placeholders), then edges, then rejected records, and the
collectors' checkpoints last, so a target never claims progress for data it does not hold. Writes are
idempotent upserts: an interrupted migration is finished by running it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, err_console, fail, printable, say, state, store_session
from liubai.lineage.model import GraphBatch, NodeKind, RejectedRecord
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.store.base import StoreMissing, StoreReadOnly
from liubai.lineage.urls import redact_url

__all__ = ["copy_graph", "register"]

Tick = Callable[[str, int], None]


def _rejected_pages(store: LineageStore, size: int) -> Iterator[list[RejectedRecord]]:
    cursor: str | None = None
    while True:
        page = store.rejected(first=size, after=cursor)
        if page.records:
            yield page.records
        cursor = page.end_cursor
        if cursor is None:
            return


def copy_graph(
    source: LineageStore, target: LineageStore, batch_size: int = 5000, tick: Tick | None = None
) -> dict[str, int]:
    """Copy every node (with its writer, owners and claims), edge, rejected record and checkpoint of
    ``source`` into ``target``.

    ``tick(part, n)`` is called after each batch lands. Returns how many of each part were copied.
    """
    copied = {"nodes": 0, "edges": 0, "rejected": 0, "checkpoints": 0}
    for nodes in source.iter_nodes(batch_size):
        target.upsert(GraphBatch(nodes=nodes))
        target.restore_provenance(source.provenance([n.id for n in nodes]))
        copied["nodes"] += len(nodes)
        if tick:
            tick("nodes", len(nodes))
    for edges in source.iter_edges(batch_size):
        target.upsert(GraphBatch(edges=edges))
        copied["edges"] += len(edges)
        if tick:
            tick("edges", len(edges))
    for records in _rejected_pages(source, batch_size):
        target.upsert(GraphBatch(rejected=records))
        copied["rejected"] += len(records)
        if tick:
            tick("rejected", len(records))
    checkpoints = source.checkpoints()
    if checkpoints:
        target.upsert(GraphBatch(checkpoints=checkpoints))
    copied["checkpoints"] = len(checkpoints)
    return copied


def migrate(
    from_url: Annotated[
        str | None,
        typer.Option("--from", help="Store to read: sqlite:///a.db, neo4j://user:pass@host:7687, ..."),
    ] = None,
    to_url: Annotated[
        str | None, typer.Option("--to", help="Store to write (merged into what it already holds).")
    ] = None,
    upgrade_url: Annotated[
        str | None,
        typer.Option(
            "--upgrade",
            help="Instead of copying, upgrade this store in place to this version's layout (a Neo4j "
            "database from properties as JSON text, or times as text, to typed properties with DATETIME "
            "times). Safe to run again.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Nodes or edges per write.")
    ] = 5000,
) -> None:
    """Copy a whole lineage graph (nodes with their writers and claims, edges, rejected records, checkpoints)
    from one store to another, or upgrade one store in place.

    Example: liubai migrate --from sqlite:///lineage.db --to neo4j://neo4j:secret@localhost:7687

    Example: liubai migrate --upgrade neo4j://neo4j:secret@localhost:7687
    """
    if upgrade_url is not None:
        if from_url is not None or to_url is not None:
            raise fail("--upgrade works on one store in place: give it alone, without --from and --to")
        _upgrade(upgrade_url, batch_size)
        return
    if from_url is None or to_url is None:
        raise fail("give --from and --to (a copy), or --upgrade (one store in place)")
    if from_url == to_url:
        raise fail("--from and --to name the same store")
    try:
        source = open_store(from_url, create=False)
    except StoreMissing as exc:
        raise fail(f"--from: {exc}: nothing to migrate (check the URL)") from None
    except StoreError as exc:
        raise fail(f"cannot open --from store {redact_url(from_url)}: {exc}") from None
    try:
        try:
            counts = source.counts()
        except StoreError as exc:
            raise fail(f"cannot read --from store {redact_url(from_url)}: {exc}") from None
        if not any(counts.values()):
            raise fail(
                f"the --from store {redact_url(from_url)} is empty: nothing to migrate (check the URL)"
            )
        try:
            target = open_store(to_url)
        except StoreError as exc:
            raise fail(f"cannot open --to store {redact_url(to_url)}: {exc}") from None
        try:
            totals = {
                "nodes": sum(counts.get(k.value, 0) for k in NodeKind),
                "edges": counts.get("edges", 0),
                "rejected": counts.get("rejected", 0),
            }
            with Progress(
                TextColumn("{task.description:>9}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=False,
            ) as progress:
                tasks = {part: progress.add_task(part, total=n) for part, n in totals.items()}
                copied = copy_graph(
                    source, target, batch_size, lambda part, n: progress.advance(tasks[part], n)
                )
        except StoreReadOnly as exc:  # running it again cannot help
            raise fail(f"cannot migrate into {redact_url(to_url)}: {exc}") from None
        except StoreError as exc:
            raise fail(
                f"migration {redact_url(from_url)} -> {redact_url(to_url)} stopped: {exc} (run it again to finish)"
            ) from None
        finally:
            target.close()
    finally:
        source.close()
    say(
        f"copied {copied['nodes']} nodes, {copied['edges']} edges, {copied['rejected']} rejected records "
        f"and {copied['checkpoints']} checkpoints from {redact_url(from_url)} to {redact_url(to_url)}"
    )


def _upgrade(url: str, batch_size: int) -> None:
    """Neo4j's layout changes need this step; SQLite upgrades its schema itself when it is opened."""
    if urlsplit(url).scheme.split("+")[0] not in ("neo4j", "bolt"):
        try:
            open_store(url, create=False).close()
        except StoreError as exc:
            raise fail(f"cannot open store {redact_url(url)}: {exc}") from None
        say(f"store {redact_url(url)} is up to date (it upgrades itself when opened)")
        return
    from liubai.lineage.store.neo4j.upgrade import upgrade_layout  # the neo4j driver only when asked

    try:
        with Progress(
            TextColumn("{task.description:>9}"),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        ) as progress:
            task = progress.add_task("nodes", total=None)
            done = upgrade_layout(url, batch_size, lambda n: progress.advance(task, n))
    except StoreError as exc:
        raise fail(f"upgrade of {redact_url(url)} stopped: {exc} (run it again to finish)") from None
    say(
        f"upgraded {done.nodes_upgraded} of {done.nodes_seen} nodes and {done.edges_upgraded} edges of "
        f"{redact_url(url)} to typed properties"
        + (" (it was already up to date)" if not (done.nodes_upgraded or done.edges_upgraded) else "")
    )


def stats(
    ctx: typer.Context,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object instead of a table: count by name (each node kind, placeholders, "
            "edges, rejected), names sorted.",
        ),
    ] = False,
) -> None:
    """Count what the store holds: nodes per kind, placeholders, edges and rejected records.

    Example: liubai --store neo4j://neo4j:secret@localhost:7687 stats --json
    """
    with store_session(ctx, create=False) as store:
        counts = store.counts()
    if as_json:
        emit_json(dict(sorted(counts.items())))
        return
    say(f"store {redact_url(state(ctx).store_url)}")
    table = Table()
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(Text(printable(key)), f"{value:,}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate)
    app.command("stats")(stats)
