"""What every CLI command shares: the store from ``--store``/``LIUBAI_STORE``, one-line errors, a console."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from rich.console import Console
from rich.text import Text

from lineage.store import LineageStore, StoreError, open_store

__all__ = ["CliState", "console", "err_console", "fail", "printable", "printable_json", "store_session"]

# No emoji codes: ``run:x:1`` in an id or a path must print as typed, not as a picture.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


@dataclass(slots=True)
class CliState:
    store_url: str


def printable(text: str) -> str:
    """Untrusted text fit for a terminal: control and other invisible characters (ESC, NUL, bidi overrides,
    line breaks, lone surrogates) become visible escapes such as ``\\x1b``, so stored text cannot drive the
    terminal, hide output or break one record over several lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_json(doc: str) -> str:
    """JSON text fit for a terminal and still the same JSON: characters ``json.dumps(ensure_ascii=False)``
    leaves raw but a terminal would act on (DEL, C1 controls, bidi overrides, lone surrogates) become
    ``\\uXXXX`` escapes. They can only occur inside strings, where such an escape means the same."""
    return "\n".join(line if line.isprintable() else "".join(map(_json_char, line)) for line in doc.split("\n"))


def _json_char(c: str) -> str:
    if c.isprintable():
        return c
    n = ord(c)
    if n > 0xFFFF:  # JSON escapes astral characters as a UTF-16 surrogate pair
        n -= 0x10000
        return f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}"
    return f"\\u{n:04x}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one clear line on stderr and return the Exit to raise: ``raise fail("...")``.

    The message is plain text, never markup: it quotes paths, ids and store errors the user gave us.
    """
    line = Text.assemble(("error:", "bold red"), " ", printable(message))
    err_console.print(line, highlight=False, soft_wrap=True)
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
