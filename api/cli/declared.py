"""``liubai declared``: what a commit's tree declares, replayed from the stored graph."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, fail_error, printable, say, store_name, store_session
from liubai.lineage.declared import declared_at, resolve_at
from liubai.lineage.errors import LiubaiError
from liubai.lineage.store.base import StoreError

__all__ = ["register"]


def declared_cmd(
    ctx: typer.Context,
    at: Annotated[
        str | None,
        typer.Option("--at", help="A commit sha (or prefix) or an ingested ref (main, refs/tags/v1)."),
    ] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="The repository whose refs --at names (URL or path).")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object: commit (full sha), complete (false: older history is not in the "
            "store), objects (id, kind, namespace, name, api_version, path, since, rendered_by).",
        ),
    ] = False,
) -> None:
    """List the Kubernetes objects a commit's tree declares (by default the tip of the only ingested
    ref), with the manifest each lives in and the commit that last changed it.

    Example: liubai declared --at main --json
    """
    with store_session(ctx, create=False) as store:
        try:
            sha = resolve_at(store, at, repo)
        except StoreError:
            raise
        except LiubaiError as exc:
            raise fail_error(exc, "--at: ", store=store_name(ctx)) from None
        view = declared_at(store, sha)
    if as_json:
        doc = {
            "commit": view.commit,
            "complete": view.complete,
            "objects": [
                {
                    "id": o.node.id,
                    "kind": o.node.props.get("kind"),
                    "namespace": o.node.props.get("namespace"),
                    "name": o.node.props.get("name"),
                    "api_version": o.node.props.get("api_version"),
                    "path": o.path,
                    "since": o.since,
                    "rendered_by": o.rendered_by or None,
                }
                for o in view.objects
            ],
        }
        emit_json(doc)
        return
    table = Table(
        "object",
        "path",
        "since",
        title=f"{len(view.objects)} object(s) declared at {view.commit}",
        title_justify="left",
    )
    for o in view.objects:
        p = o.node.props
        ns = p.get("namespace") or ""
        who = f"{p.get('kind')}/{ns + '/' if ns else ''}{p.get('name')}"
        table.add_row(
            Text(printable(who)),
            Text(printable(o.path)),
            Text(o.since if not console.is_terminal else o.since[:12], style="dim"),
        )
    console.print(table, soft_wrap=True)
    if not view.complete:
        say(f"partial: the history before {view.commits} commit(s) is not in the store")


def register(app: typer.Typer) -> None:
    app.command("declared")(declared_cmd)
