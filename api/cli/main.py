"""The ``liubai`` command: a typer app whose command groups live in one module each.

Each module in ``COMMAND_MODULES`` exposes ``register(app)``; the order here is the order of ``--help``.
A command listed in ``_ONLY`` starts with just its own modules imported (``liubai ingest git`` does not
load the web stack, signing or eBPF); ``app`` imported from here always carries every command.
"""

from __future__ import annotations

import importlib
import sys

import typer

from liubai.api.cli.common import CliState, fail, fail_error
from liubai.lineage.errors import LiubaiError

COMMAND_MODULES = [
    "liubai.api.cli.ingest",
    "liubai.api.cli.ingest_git",
    "liubai.api.cli.ingest_logs",
    "liubai.api.cli.ingest_sls",
    "liubai.api.cli.ingest_k8s",
    "liubai.api.cli.ingest_node",
    "liubai.api.cli.trace",
    "liubai.api.cli.query",
    "liubai.api.cli.drift",
    "liubai.api.cli.declared",
    "liubai.api.cli.serve",
    "liubai.api.cli.schema",
    "liubai.api.cli.export",
    "liubai.api.cli.store_admin",
    "liubai.api.cli.token",
    "liubai.api.cli.agent",
    "liubai.api.cli.webhook",
    "liubai.api.cli.annotate",
    "liubai.api.cli.demo",
]

_ONLY: dict[tuple[str, ...], tuple[str, ...]] = {
    ("ingest", "git"): ("liubai.api.cli.ingest", "liubai.api.cli.ingest_git"),
    ("ingest", "k8s"): ("liubai.api.cli.ingest", "liubai.api.cli.ingest_k8s"),
    ("ingest", "node"): ("liubai.api.cli.ingest", "liubai.api.cli.ingest_node"),
    ("annotate",): ("liubai.api.cli.annotate",),
    ("schema",): ("liubai.api.cli.schema",),  # runs once per render in a pipeline: start fast
    # runs once per CI step (``trace CMD ARGS`` may look like a subcommand: the first word decides)
    ("trace",): ("liubai.api.cli.ingest", "liubai.api.cli.trace"),
    ("ingest", "events"): ("liubai.api.cli.ingest", "liubai.api.cli.trace"),
}

_app = typer.Typer(
    name="liubai",
    help="Audit lineage: join Git commits, kernel process traces and log lines into one graph.\n\n"
    "Example: liubai --store sqlite:///lineage.db ingest git ./gitops-repo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"liubai {version('liubai')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("liubai (not installed)")
        raise typer.Exit()


@_app.callback()
def _root(
    ctx: typer.Context,
    _show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print liubai's version and exit."
    ),
    store: str = typer.Option(
        None,
        "--store",
        envvar="LIUBAI_STORE",
        help="Store URL: sqlite:///path.db (default: a file in the user data dir) or neo4j://user:pass@host:7687.",
        show_default=False,
    ),
) -> None:
    if store is not None and not store.strip():
        raise fail("--store is empty: give a store URL, or leave --store out for the default store")
    if store:
        ctx.obj = CliState(store_url=store)  # else ``common.state`` derives the default when a command asks


_registered: set[str] = set()


def _register(names: tuple[str, ...] | list[str]) -> typer.Typer:
    for name in names:
        if name not in _registered:
            _registered.add(name)
            importlib.import_module(name).register(_app)
    return _app


def _command_words(args: list[str]) -> tuple[str, ...]:
    """The command words before the first option (two at most); empty if an option other than ``--store``
    comes before any (``liubai --help ingest git`` must list every command)."""
    words: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "--store":
            next(rest, None)
        elif arg.startswith("--store="):
            continue
        elif arg.startswith("-"):
            return tuple(words) if words else ()
        else:
            words.append(arg)
            if len(words) == 2:
                break
    return tuple(words)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _register(COMMAND_MODULES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    words = _command_words(sys.argv[1:])
    _register(_ONLY.get(words) or _ONLY.get(words[:1]) or COMMAND_MODULES)
    try:
        _app()
    except LiubaiError as exc:  # an error no command turned into a line of its own: still one line, by code
        raise SystemExit(fail_error(exc).exit_code) from None


if __name__ == "__main__":
    main()
