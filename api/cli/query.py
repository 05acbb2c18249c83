"""``liubai show``, ``lineage``, ``search``, ``path`` and ``rejected``: ask the store from a terminal or a
script (``--json``: one document on stdout, the field names of the GraphQL API).

Every piece of stored text (commit subjects, paths, log lines) is printed as ``rich.text.Text``, never
as markup, with control characters shown as escapes, so a commit message cannot restyle, hide or drive
terminal output.
"""

from __future__ import annotations

import json
import shlex
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, fail, fail_error, printable, store_name, store_session
from liubai.api.cli.query_render import (
    KIND_STYLE,
    claims_table,
    edge_json,
    node_prov_json,
    node_text,
    render_tree,
    subgraph_json,
)
from liubai.api.nodes import node_json, node_label, node_time
from liubai.lineage.directions import auto_directions, describe, lineage_along
from liubai.lineage.errors import LiubaiError, NotFound
from liubai.lineage.model import Direction, EdgeKind, Node, NodeKind
from liubai.lineage.resolve import resolve_reference
from liubai.lineage.store.base import InvalidCursor, LineageStore, StoreError

__all__ = ["register", "render_tree"]


class DirectionOpt(StrEnum):
    auto = "auto"
    downstream = "downstream"
    upstream = "upstream"
    both = "both"


def _resolve(store: LineageStore, ref: str) -> Node:
    try:
        return resolve_reference(store, ref)
    except (StoreError, NotFound):
        raise  # said by ``store_session``, a "not found" with the store it looked in
    except LiubaiError as exc:
        raise fail_error(exc) from None


def _edge_kinds(values: list[str] | None) -> list[EdgeKind] | None:
    if not values:
        return None
    kinds: list[EdgeKind] = []
    for value in ",".join(values).split(","):
        if not value.strip():
            continue
        try:
            kinds.append(EdgeKind(value.strip().upper()))
        except ValueError:
            raise fail(f"--edge-kinds: unknown edge kind {value!r}; known: {', '.join(EdgeKind)}") from None
    return kinds or None


def _next_page(args: list[str], cursor: str) -> str:
    """The command that prints the next page: the same filters, quoted for a POSIX shell."""
    return "more: " + shlex.join(["liubai", *args, "--after", cursor])


_NODE_FIELDS = "id, kind, placeholder, label, time, properties, writer, owners, claims"
_NODE_REF = (
    "Node id (commit:<40 hex>, workload:Deployment/payments/api, pod:<uid>, proc:<host>:<pid>:<start_ns>, "
    "...), commit sha or prefix, or an audit id."
)


def show_cmd(
    ctx: typer.Context,
    node: Annotated[
        str,
        typer.Argument(help=_NODE_REF),
    ],
    as_json: Annotated[bool, typer.Option("--json", help=f"Print one JSON object: {_NODE_FIELDS}.")] = False,
) -> None:
    """Print one node: its kind, label, time, properties and who wrote them.

    Example: liubai show workload:Deployment/payments/api --json
    """
    with store_session(ctx, create=False) as store:
        found = _resolve(store, node)
        prov = store.provenance([found.id]).get(found.id)
    if as_json:
        emit_json(node_prov_json(found, prov))
        return
    console.print(node_text(found))
    table = Table("property", "value", show_header=False, box=None)
    for key in sorted(found.props):
        value = found.props[key]
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        table.add_row(Text(printable(key), style="dim"), Text(printable(shown)))
    if prov is not None and prov.writer:
        table.add_row(Text("written by", style="dim"), Text(printable(prov.writer)))
    console.print(table)
    claims = claims_table({found.id: prov} if prov is not None else {})
    if claims is not None:
        console.print(claims)


def lineage_cmd(
    ctx: typer.Context,
    node: Annotated[
        str,
        typer.Argument(help=_NODE_REF),
    ],
    depth: Annotated[
        int,
        typer.Option(
            "--depth",
            "-d",
            min=0,
            max=10,
            help="Hops to follow. 4 (the default) reaches from a commit through its audit id and Pods to what "
            "their containers ran and the spans and log lines their resource names.",
        ),
    ] = 4,
    direction: Annotated[
        DirectionOpt,
        typer.Option(
            "--direction",
            help="downstream: what followed from it; upstream: what led to it; both: every edge either way "
            "at every hop; auto (the default): downstream from a repo or commit, upstream and downstream "
            "from anything else.",
        ),
    ] = DirectionOpt.auto,
    edge_kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--edge-kinds",
            "-e",
            help="Only these edge kinds (repeat or comma-separate), e.g. DECLARES,FOR_COMMIT.",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1_000_000, help="At most this many nodes.")
    ] = 10_000,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object instead of a tree: nodes (each with "
            f"{_NODE_FIELDS}), edges (source, target, kind, properties), depths (id -> hops), truncated.",
        ),
    ] = False,
) -> None:
    """Print what flowed from (or into) a node as a tree; by default both ways, but from a repo or commit
    downstream only.

    Example: liubai lineage commit:3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 --depth 3 --direction downstream
    """
    kinds = _edge_kinds(edge_kinds)
    with store_session(ctx, create=False) as store:
        start = _resolve(store, node)
        ways = (
            auto_directions(start.kind) if direction is DirectionOpt.auto else (Direction(direction.value),)
        )
        sub = lineage_along(store, start.id, ways, depth, kinds, limit)
        found = store.provenance([n.id for n in sub.nodes])
    if as_json:
        emit_json(subgraph_json(sub, found))
        return
    console.print(render_tree(sub, start.id))
    claims = claims_table(found)
    if claims is not None:
        console.print(claims)
    console.print(
        Text(
            f"{len(sub.nodes)} node(s), {len(sub.edges)} edge(s), depth {depth} "
            + (f"auto: {describe(ways)}" if direction is DirectionOpt.auto else direction.value),
            style="dim",
        )
    )


def search_cmd(
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(help="Words to find in ids, commit subjects, paths, log messages, ...")
    ],
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", help="Only nodes of this kind (Commit, Workload, LogEvent, ...); repeatable."
        ),
    ] = None,
    first: Annotated[int, typer.Option("--first", "-n", min=1, max=500, help="Results per page.")] = 20,
    after: Annotated[str | None, typer.Option("--after", help="Cursor printed by the previous page.")] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: total, nodes (id, kind, placeholder, label, time, properties), "
            "end_cursor (for --after; null on the last page).",
        ),
    ] = False,
) -> None:
    """Full-text search over the lineage graph.

    Example: liubai search "payments" --kind Workload --json
    """
    if not text.strip():
        raise fail("search text is empty")
    kinds: list[NodeKind] = []
    by_name = {k.value.lower(): k for k in NodeKind} | {k.prefix: k for k in NodeKind}
    for name in kind or []:
        found = by_name.get(name.strip().lower())
        if found is None:
            raise fail(f"--kind: unknown node kind {name!r}; known: {', '.join(k.value for k in NodeKind)}")
        kinds.append(found)
    with store_session(ctx, create=False) as store:
        try:
            page = store.search(text, kinds or None, first=first, after=after)
        except InvalidCursor as exc:
            raise fail_error(exc, "--after: ") from None
    if as_json:
        emit_json(
            {"total": page.total, "nodes": [node_json(n) for n in page.nodes], "end_cursor": page.end_cursor}
        )
        return
    table = Table("kind", "label", "time", "id", title=f"{page.total} match(es)", title_justify="left")
    for n in page.nodes:
        table.add_row(
            Text(n.kind.value, style=KIND_STYLE.get(n.kind, "")),
            Text(printable(node_label(n))),
            Text(printable(node_time(n) or "")),
            Text(printable(n.id), style="dim"),
        )
    console.print(table)
    if page.end_cursor:
        again = ["search", text, *(a for k in kinds for a in ("--kind", k.value)), "--first", str(first)]
        console.print(Text(printable(_next_page(again, page.end_cursor)), style="dim"))


def path_cmd(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Start: node id, commit sha/prefix or audit id.")],
    target: Annotated[str, typer.Argument(help="End: node id, commit sha/prefix or audit id.")],
    max_length: Annotated[
        int, typer.Option("--max-length", min=1, max=12, help="Longest path to look for, in edges.")
    ] = 8,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: nodes (in path order; id, kind, placeholder, label, time, "
            "properties), edges (in path order; source, target, kind, properties). No path: exit 1.",
        ),
    ] = False,
) -> None:
    """Print a shortest chain of edges between two nodes (edge direction ignored).

    Example: liubai path pod:0b7e3c1a-5d2f-4e8b-9a6c-1f2e3d4c5b6a commit:3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39
    """
    with store_session(ctx, create=False) as store:
        a, b = _resolve(store, source), _resolve(store, target)
        sub = store.path(a.id, b.id, max_length)
    if sub is None:
        raise fail(
            f"no path of at most {max_length} edges between {a.id!r} and {b.id!r} in {store_name(ctx)}"
        )
    nodes = {n.id: n for n in sub.nodes}
    order = sorted(sub.depth, key=lambda i: sub.depth[i])
    if as_json:
        emit_json({"nodes": [node_json(nodes[i]) for i in order], "edges": [edge_json(e) for e in sub.edges]})
        return
    console.print(node_text(nodes[order[0]]))
    for prev, cur, edge in zip(order, order[1:], sub.edges, strict=False):
        arrow = f"  -{edge.kind.value}->" if edge.src == prev else f"  <-{edge.kind.value}-"
        console.print(Text(arrow, style="dim cyan"))
        console.print(node_text(nodes[cur]))
    console.print(Text(f"{len(sub.edges)} edge(s)", style="dim"))


def rejected_cmd(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Option("--source", "-s", help="Only records from this source, e.g. git:/srv/gitops."),
    ] = None,
    first: Annotated[int, typer.Option("--first", "-n", min=1, max=10_000, help="Records per page.")] = 100,
    after: Annotated[str | None, typer.Option("--after", help="Cursor printed by the previous page.")] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: total, records (source, location, reason, raw), end_cursor "
            "(for --after; null on the last page).",
        ),
    ] = False,
) -> None:
    """List input that could not become graph facts, with where it came from and why. On a terminal a
    table; piped, one tab-separated line per record (source, location, reason, raw) that is never cut.

    Example: liubai rejected --source git:/srv/gitops --json
    """
    with store_session(ctx, create=False) as store:
        try:
            page = store.rejected(source, first=first, after=after)
        except InvalidCursor as exc:
            raise fail_error(exc, "--after: ") from None
    if as_json:
        doc = {
            "total": page.total,
            "records": [
                {"source": r.source, "location": r.location, "reason": r.reason, "raw": r.raw}
                for r in page.records
            ],
            "end_cursor": page.end_cursor,
        }
        emit_json(doc)
        return
    again = ["rejected", *(("--source", source) if source is not None else ()), "--first", str(first)]
    if not console.is_terminal:  # piped: whole lines a script can cut on tabs, nothing shortened
        typer.echo(f"{page.total} rejected record(s)")
        for r in page.records:
            typer.echo("\t".join(printable(f) for f in (r.source, r.location, r.reason, r.raw)))
        if page.end_cursor:
            typer.echo(printable(_next_page(again, page.end_cursor)))
        return
    table = Table(
        "source", "location", "reason", "raw", title=f"{page.total} rejected record(s)", title_justify="left"
    )
    table.columns[1].overflow = "fold"  # a location is never cut: it is what the user goes to fix
    table.columns[1].no_wrap = False
    for r in page.records:
        raw = r.raw if len(r.raw) <= 120 else r.raw[:117] + "..."
        table.add_row(
            Text(printable(r.source), overflow="fold"),
            Text(printable(r.location), overflow="fold"),
            Text(printable(r.reason)),
            Text(printable(raw), style="dim"),
        )
    console.print(table)
    if page.end_cursor:
        console.print(Text(printable(_next_page(again, page.end_cursor)), style="dim"))


def register(app: typer.Typer) -> None:
    app.command("show")(show_cmd)
    app.command("lineage")(lineage_cmd)
    app.command("search")(search_cmd)
    app.command("path")(path_cmd)
    app.command("rejected")(rejected_cmd)
