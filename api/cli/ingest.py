"""The ``liubai ingest`` group; each source adds its subcommand from its own module."""

from __future__ import annotations

import typer

ingest_app = typer.Typer(
    help="Pull evidence into the lineage graph (git, logs, sls, k8s, events, node).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
