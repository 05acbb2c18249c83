"""What every CLI command shares: the store from ``--store``/``LIUBAI_STORE``, one-line errors, a console."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console

from lineage.store import LineageStore, StoreError, open_store

__all__ = ["CliState", "console", "err_console", "fail", "store_session"]

console = Console()
err_console = Console(stderr=True)


@dataclass(slots=True)
class CliState:
    store_url: str


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise: ``raise fail("...")``."""
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        from lineage.config import Settings  # pydantic-settings costs 0.1 s of start-up: only when needed

        obj = CliState(store_url=Settings().store)
        ctx.find_root().obj = obj
    return obj


@contextmanager
def store_session(ctx: typer.Context) -> Iterator[LineageStore]:
    """Open the selected store for one command; a store error becomes one line and exit code 1."""
    url = state(ctx).store_url
    try:
        store = open_store(url)
    except StoreError as exc:
        raise fail(f"cannot open store {redact(url)}: {exc}") from None
    try:
        yield store
    except StoreError as exc:
        raise fail(f"store {redact(url)}: {exc}") from None
    finally:
        store.close()


def redact(url: str) -> str:
    """A store URL safe to print: any password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
