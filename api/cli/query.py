"""``liubai lineage``, ``search``, ``path`` and ``rejected``: ask the store from a terminal.

Every piece of stored text (commit subjects, paths, log lines) is printed as ``rich.text.Text``, never
as markup, with control characters shown as escapes, so a commit message cannot restyle, hide or drive
terminal output.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from liubai.api.cli.common import console, fail, fail_error, printable, printable_json, store_session
from liubai.api.nodes import node_json, node_label, node_time
from liubai.lineage.errors import LiubaiError
from liubai.lineage.model import Direction, Edge, EdgeKind, Node, NodeKind
from liubai.lineage.provenance import Provenance
from liubai.lineage.resolve import reference_id
from liubai.lineage.store.base import InvalidCursor, LineageStore, StoreError, Subgraph

__all__ = ["register", "render_tree"]

_KIND_STYLE = {
    NodeKind.REPO: "bold white",
    NodeKind.COMMIT: "bold yellow",
    NodeKind.WORKLOAD: "bold cyan",
    NodeKind.AUDIT_RECORD: "bold magenta",
    NodeKind.TRACE: "bold blue",
    NodeKind.LOG_EVENT: "green",
    NodeKind.PIPELINE_RUN: "bold red",
    NodeKind.PROCESS: "red",
    NodeKind.FILE: "white",
    NodeKind.POD: "cyan",
    NodeKind.ADMISSION: "bold magenta",
    NodeKind.CONTAINER: "cyan",
    NodeKind.SPAN: "blue",
    NodeKind.RESOURCE: "green",
}


class DirectionOpt(StrEnum):
    downstream = "downstream"
    upstream = "upstream"
    both = "both"


def _resolve(store: LineageStore, ref: str) -> Node:
    try:
        node_id = reference_id(store, ref)
    except StoreError:
        raise  # the store's failure, said by ``store_session``
    except LiubaiError as exc:
        raise fail_error(exc) from None
    node = store.get(node_id)
    if node is None:
        raise fail(f"no node {node_id!r} in store {store.url}")
    return node


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


def _node_text(node: Node, via: Text | None = None) -> Text:
    text = Text()
    if via is not None:
        text.append_text(via)
        text.append(" ")
    text.append(node.kind.value, style=_KIND_STYLE.get(node.kind, ""))
    text.append(" ")
    text.append(printable(node_label(node)))
    when = node_time(node)
    if when:
        text.append(f"  {printable(when)}", style="dim")
    if node.placeholder:
        text.append("  (placeholder)", style="dim italic")
    text.append(f"  {printable(node.id)}", style="dim")
    return text


def _via(edge: Edge, child: str) -> Text:
    """The edge as it is stored: ``-KIND->`` when the parent points at the child, ``<-KIND-`` otherwise."""
    label = edge.kind.value
    if edge.kind == EdgeKind.DECLARES and edge.props.get("deleted"):
        label += " (removed)"  # the commit took the object out of its tree
    arrow = f"-{label}->" if edge.dst == child else f"<-{label}-"
    return Text(arrow, style="bold red" if label != edge.kind.value else "dim cyan")


def render_tree(sub: Subgraph, root: str) -> Tree:
    """A lineage answer as a tree: each node under one neighbour one hop nearer the start.

    Nodes reachable several ways appear once (under the first parent in id order); the remaining edges
    are counted at the bottom so nothing is silently hidden.
    """
    nodes = {n.id: n for n in sub.nodes}
    children: dict[str, list[tuple[str, Edge]]] = defaultdict(list)
    placed = {root}
    used: set[tuple[str, str, str]] = set()
    for edge in sorted(sub.edges, key=lambda e: e.key):
        for parent, child in ((edge.src, edge.dst), (edge.dst, edge.src)):
            if child in placed or parent not in sub.depth or child not in sub.depth:
                continue
            if sub.depth[child] == sub.depth[parent] + 1:
                children[parent].append((child, edge))
                placed.add(child)
                used.add(edge.key)
    tree = Tree(_node_text(nodes[root]))
    stack: list[tuple[Tree, str]] = [(tree, root)]
    while stack:
        branch, node_id = stack.pop()
        for child, edge in sorted(children[node_id], key=lambda c: (nodes[c[0]].kind.value, c[0])):
            sub_branch = branch.add(_node_text(nodes[child], _via(edge, child)))
            stack.append((sub_branch, child))
    extra = len(sub.edges) - len(used)
    if extra:
        tree.add(Text(f"... and {extra} more edge(s) among these nodes", style="dim"))
    if sub.truncated:
        tree.add(Text("... truncated: raise --limit to see more", style="bold yellow"))
    return tree


def _claims_table(found: dict[str, Provenance]) -> Table | None:
    """Values other writers gave that differ from the facts shown: listed, never mixed into the tree."""
    rows = [(node_id, c) for node_id in sorted(found) for c in found[node_id].claims]
    if not rows:
        return None
    table = Table(
        title="Claims kept beside the facts (not taken: another writer owns the value)", title_justify="left"
    )
    for column in ("node", "key", "claimed value", "by"):
        table.add_column(column)
    for node_id, c in rows:
        table.add_row(
            printable(node_id),
            printable(c.key),
            printable(json.dumps(c.value, ensure_ascii=False, default=str)),
            printable(c.writer),
        )
    return table


def _node_json(n: Node, prov: Provenance | None) -> dict[str, object]:
    prov = prov or Provenance()
    return {
        **node_json(n),
        "writer": prov.writer,
        "owners": prov.owners,
        "claims": [{"key": c.key, "writer": c.writer, "value": c.value} for c in prov.claims],
    }


def _subgraph_json(sub: Subgraph, found: dict[str, Provenance]) -> str:
    return json.dumps(
        {
            "nodes": [_node_json(n, found.get(n.id)) for n in sub.nodes],
            "edges": [
                {"source": e.src, "target": e.dst, "kind": e.kind.value, "properties": e.props}
                for e in sub.edges
            ],
            "depths": sub.depth,
            "truncated": sub.truncated,
        },
        indent=2,
        ensure_ascii=False,
        default=str,
    )


def lineage_cmd(
    ctx: typer.Context,
    node: Annotated[
        str,
        typer.Argument(
            help="Node id (commit:<sha>, workload:Deployment/ns/name, ...), commit sha or prefix, or an audit id."
        ),
    ],
    depth: Annotated[int, typer.Option("--depth", "-d", min=0, max=10, help="Hops to follow.")] = 3,
    direction: Annotated[
        DirectionOpt,
        typer.Option("--direction", help="downstream: what followed from it; upstream: what led to it."),
    ] = DirectionOpt.downstream,
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
        bool, typer.Option("--json", help="Print the subgraph as JSON instead of a tree.")
    ] = False,
) -> None:
    """Print what flowed from (or into) a node as a tree.

    Example: liubai lineage 3f2a9c1 --depth 3 --direction downstream
    """
    kinds = _edge_kinds(edge_kinds)
    with store_session(ctx) as store:
        start = _resolve(store, node)
        sub = store.lineage(start.id, Direction(direction.value), depth, kinds, limit)
        found = store.provenance([n.id for n in sub.nodes])
    if as_json:
        print(printable_json(_subgraph_json(sub, found)))
        return
    console.print(render_tree(sub, start.id))
    claims = _claims_table(found)
    if claims is not None:
        console.print(claims)
    console.print(
        Text(
            f"{len(sub.nodes)} node(s), {len(sub.edges)} edge(s), depth {depth} {direction.value}",
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
) -> None:
    """Full-text search over the lineage graph.

    Example: liubai search "payment-api" --kind Workload
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
    with store_session(ctx) as store:
        try:
            page = store.search(text, kinds or None, first=first, after=after)
        except InvalidCursor as exc:
            raise fail_error(exc, "--after: ") from None
    table = Table("kind", "label", "time", "id", title=f"{page.total} match(es)", title_justify="left")
    for n in page.nodes:
        table.add_row(
            Text(n.kind.value, style=_KIND_STYLE.get(n.kind, "")),
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
) -> None:
    """Print a shortest chain of edges between two nodes (edge direction ignored).

    Example: liubai path log:app.jsonl:42 3f2a9c1
    """
    with store_session(ctx) as store:
        a, b = _resolve(store, source), _resolve(store, target)
        sub = store.path(a.id, b.id, max_length)
    if sub is None:
        raise fail(f"no path of at most {max_length} edges between {a.id!r} and {b.id!r}")
    nodes = {n.id: n for n in sub.nodes}
    order = sorted(sub.depth, key=lambda i: sub.depth[i])
    console.print(_node_text(nodes[order[0]]))
    for prev, cur, edge in zip(order, order[1:], sub.edges, strict=False):
        arrow = f"  -{edge.kind.value}->" if edge.src == prev else f"  <-{edge.kind.value}-"
        console.print(Text(arrow, style="dim cyan"))
        console.print(_node_text(nodes[cur]))
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
        bool, typer.Option("--json", help="One JSON object: total, records, end_cursor (for --after).")
    ] = False,
) -> None:
    """List input that could not become graph facts, with where it came from and why. On a terminal a
    table; piped, one tab-separated line per record (source, location, reason, raw) that is never cut.

    Example: liubai rejected --source git:/srv/gitops --json
    """
    with store_session(ctx) as store:
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
        typer.echo(printable_json(json.dumps(doc, ensure_ascii=False)))
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
    app.command("lineage")(lineage_cmd)
    app.command("search")(search_cmd)
    app.command("path")(path_cmd)
    app.command("rejected")(rejected_cmd)
