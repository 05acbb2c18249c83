"""The ``liubai`` command: a typer app whose command groups live in one module each.

Each module in ``COMMAND_MODULES`` exposes ``register(app)``; the order here is the order of ``--help``.
"""

from __future__ import annotations

import importlib

import typer

from api.cli.common import CliState
from lineage.config import Settings

COMMAND_MODULES = [
    "api.cli.ingest",
    "api.cli.ingest_git",
    "api.cli.ingest_logs",
    "api.cli.ingest_sls",
    "api.cli.trace",
    "api.cli.query",
    "api.cli.serve",
    "api.cli.export",
    "api.cli.store_admin",
    "api.cli.token",
    "api.cli.agent",
    "api.cli.demo",
]

app = typer.Typer(
    name="liubai",
    help="Audit lineage: join Git commits, kernel process traces and log lines into one graph.\n\n"
    "Example: liubai --store sqlite:///lineage.db ingest git ./gitops-repo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    store: str = typer.Option(
        None,
        "--store",
        envvar="LIUBAI_STORE",
        help="Store URL: sqlite:///path.db (default: a file in the user data dir) or neo4j://user:pass@host:7687.",
        show_default=False,
    ),
) -> None:
    ctx.obj = CliState(store_url=store or Settings().store)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


_register_all()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
