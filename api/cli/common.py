"""What every CLI command shares: the store from ``--store``/``LIUBAI_STORE``, one-line errors, a console."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.urls import redact_url

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "EXIT_CODES",
    "CliState",
    "console",
    "err_console",
    "exit_code",
    "fail",
    "fail_error",
    "printable",
    "printable_json",
    "say",
    "spinner",
    "store_session",
]

# No emoji codes: ``run:x:1`` in an id or a path must print as typed, not as a picture.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)


@dataclass(slots=True)
class CliState:
    store_url: str


# C0 and C1 controls (ESC, NUL, CR, LF, ...), line and paragraph separators, bidi embeddings, overrides
# and isolates, and lone surrogates: what can drive a terminal, reorder what it shows, or split a line.
# Spaces (U+3000, no-break), joiners and the like are text and stay as they are.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """Untrusted text fit for a terminal: control characters, bidi overrides, line breaks and lone
    surrogates become visible escapes such as ``\\x1b``, so stored text cannot drive the terminal, hide
    output or break one record over several lines."""
    return _UNSAFE.sub(_escaped, text)  # the same str when nothing matches


def _escaped(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]


def printable_json(doc: str) -> str:
    """JSON text fit for a terminal and still the same JSON: characters ``json.dumps(ensure_ascii=False)``
    leaves raw but a terminal would act on (DEL, C1 controls, bidi overrides, lone surrogates) become
    ``\\uXXXX`` escapes. They can only occur inside strings, where such an escape means the same."""
    return "\n".join(
        line if line.isprintable() else "".join(map(_json_char, line)) for line in doc.split("\n")
    )


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


# The one mapping from an error's code to the command's exit status. Scripts rely on 1 for every error a
# user must act on; 2 (a usage error) and 3 (a port in use) are the command line's own, never an error code's.
EXIT_CODES: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 1,
    ErrorCode.BAD_INPUT: 1,
    ErrorCode.BAD_AUDIT_ID: 1,
    ErrorCode.AMBIGUOUS: 1,
    ErrorCode.UNAUTHENTICATED: 1,
    ErrorCode.FORBIDDEN: 1,
    ErrorCode.STORE_UNAVAILABLE: 1,
    ErrorCode.STORE_ERROR: 1,
    ErrorCode.STORE_DAMAGED: 1,
    ErrorCode.READ_ONLY: 1,
    ErrorCode.TIMEOUT: 1,
    ErrorCode.TOO_LARGE: 1,
    ErrorCode.SOURCE_FAILED: 1,
    ErrorCode.UNSUPPORTED: 1,
    ErrorCode.INTERNAL: 1,
}


def exit_code(error: LiubaiError) -> int:
    """The exit status for ``error``, by its code."""
    return EXIT_CODES.get(error.code, 1)


def fail_error(error: LiubaiError, prefix: str = "") -> typer.Exit:
    """``fail`` for a ``LiubaiError``: its message as one line (after ``prefix``), its code's exit status."""
    return fail(f"{prefix}{error.message}", exit_code(error))


def say(message: str, *, err: bool = False) -> None:
    """Print one line of plain text (on stderr with ``err``): a summary that quotes names the user gave,
    store URLs and paths, escaped by ``printable`` and never read as console markup."""
    (err_console if err else console).print(Text(printable(message)), highlight=False, soft_wrap=True)


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        from liubai.lineage.config import (
            Settings,  # pydantic-settings is slow to import: only when needed
        )

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
        raise fail(f"cannot open store {redact_url(url)}: {exc}") from None
    try:
        yield store
    except StoreError as exc:
        raise fail(f"store {redact_url(url)}: {exc}") from None
    finally:
        store.close()


def spinner(*, disable: bool = False) -> Progress:
    """The progress line of a source of unknown length (logs, SLS, a cluster): a spinner, what is being
    read, the time so far; on stderr, gone when done, so stdout stays the command's answer. (rich.progress is
    imported here: commands that show no progress, e.g. annotate in a render pipeline, start without it.)"""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=disable,
    )
