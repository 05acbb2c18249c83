"""How ``liubai show``, ``lineage`` and ``path`` print nodes and edges: rich text for a terminal (every
stored string through ``printable``, never markup) and the JSON documents of ``--json``."""

from __future__ import annotations

import json
from collections import defaultdict

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from liubai.api.cli.common import printable
from liubai.api.nodes import node_json, node_label, node_time
from liubai.lineage.model import Edge, EdgeKind, Node, NodeKind
from liubai.lineage.provenance import Provenance
from liubai.lineage.store.base import Subgraph

__all__ = [
    "KIND_STYLE",
    "claims_table",
    "edge_json",
    "node_prov_json",
    "node_text",
    "render_tree",
    "subgraph_json",
]

KIND_STYLE = {
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


def node_text(node: Node, via: Text | None = None) -> Text:
    text = Text()
    if via is not None:
        text.append_text(via)
        text.append(" ")
    text.append(node.kind.value, style=KIND_STYLE.get(node.kind, ""))
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
    tree = Tree(node_text(nodes[root]))
    stack: list[tuple[Tree, str]] = [(tree, root)]
    while stack:
        branch, node_id = stack.pop()
        for child, edge in sorted(children[node_id], key=lambda c: (nodes[c[0]].kind.value, c[0])):
            sub_branch = branch.add(node_text(nodes[child], _via(edge, child)))
            stack.append((sub_branch, child))
    extra = len(sub.edges) - len(used)
    if extra:
        tree.add(Text(f"... and {extra} more edge(s) among these nodes", style="dim"))
    if sub.truncated:
        tree.add(Text("... truncated: raise --limit to see more", style="bold yellow"))
    return tree


def claims_table(found: dict[str, Provenance]) -> Table | None:
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


def node_prov_json(n: Node, prov: Provenance | None) -> dict[str, object]:
    prov = prov or Provenance()
    return {
        **node_json(n),
        "writer": prov.writer,
        "owners": prov.owners,
        "claims": [{"key": c.key, "writer": c.writer, "value": c.value} for c in prov.claims],
    }


def edge_json(e: Edge) -> dict[str, object]:
    return {"source": e.src, "target": e.dst, "kind": e.kind.value, "properties": e.props}


def subgraph_json(sub: Subgraph, found: dict[str, Provenance]) -> dict[str, object]:
    return {
        "nodes": [node_prov_json(n, found.get(n.id)) for n in sub.nodes],
        "edges": [edge_json(e) for e in sub.edges],
        "depths": sub.depth,
        "truncated": sub.truncated,
    }
