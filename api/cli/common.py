"""What every CLI command shares: the store from ``--store``/``LIUBAI_STORE``, one-line errors, a console
that never cuts a line when piped, and the one way to print a ``--json`` answer."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.align import AlignMethod
from rich.console import Console, ConsoleDimensions
from rich.style import Style
from rich.text import Text, TextType

from liubai.lineage.errors import ErrorCode, LiubaiError
from liubai.lineage.store import LineageStore, StoreError, open_store
from liubai.lineage.store.base import StoreMissing
from liubai.lineage.urls import redact_url

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "EXIT_CODES",
    "CliState",
    "check_listen",
    "console",
    "emit_json",
    "err_console",
    "exit_code",
    "fail",
    "fail_error",
    "printable",
    "printable_json",
    "say",
    "spinner",
    "store_name",
    "store_session",
]

# How wide output is laid out when it goes to a pipe or a file: wide enough that no table column or tree
# line is cut or folded, so every id reaches ``grep``/``awk`` whole.
PIPE_WIDTH = 100_000


class _PipeSafeConsole(Console):
    """A console that lays out for the terminal's width only when it writes to a terminal. Rich takes the
    width of any terminal it finds (stdin's, stderr's) or ``COLUMNS`` even when stdout is a pipe, and
    then ellipsizes or folds table cells: a piped ``liubai search`` would hand scripts cut ids."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]

    def rule(
        self,
        title: TextType = "",
        *,
        characters: str = "─",
        style: str | Style = "rule.line",
        align: AlignMethod = "center",
    ) -> None:
        """A heading line as wide as the terminal (or ``COLUMNS``, else 80) would be: a rule fills the
        width it is given, and a pipe's is far too wide for a line of dashes."""
        from rich.rule import Rule

        width = Console.size.fget(self).width  # type: ignore[attr-defined]
        self.print(Rule(title, characters=characters, style=style, align=align), width=width)


# No emoji codes: ``run:x:1`` in an id or a path must print as typed, not as a picture.
console: Console = _PipeSafeConsole(emoji=False)
err_console = Console(stderr=True, emoji=False)


def emit_json(doc: object) -> None:
    """Print a ``--json`` answer: one JSON document on one line of stdout and nothing else there
    (progress and notes go to stderr), the same for every command, terminal-safe (``printable_json``)."""
    typer.echo(printable_json(json.dumps(doc, ensure_ascii=False, default=str)))


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


def fail_error(error: LiubaiError, prefix: str = "", *, store: str | None = None) -> typer.Exit:
    """``fail`` for a ``LiubaiError``: its message as one line (after ``prefix``), its code's exit status.
    A "not found" names ``store``, the store it looked in, so a wrong ``--store`` shows at once."""
    message = error.message
    if store is not None and error.code is ErrorCode.NOT_FOUND and not isinstance(error, StoreError):
        message = _in_store(message, store)
    return fail(f"{prefix}{message}", exit_code(error))


_VAGUE_STORE = re.compile(r" in the (?:lineage )?store\b")


def _in_store(message: str, store: str) -> str:
    """``message`` saying which store it looked in: the library's "in the lineage store" made exact."""
    named, n = _VAGUE_STORE.subn(lambda _: f" in {store}", message, count=1)
    return named if n else f"{message} (looked in {store})"


def check_listen(host: str, port: int, hint: str = "") -> None:
    """Fail in one line (exit 3), before any URL is announced or any work done, if a server could not
    listen on ``host:port``; ``hint`` says what to do instead.

    The probe binds as uvicorn does (same family rule, SO_REUSEADDR) and lets go at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family=family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except (
        OSError,
        UnicodeError,
    ) as exc:  # in use, not ours to bind, unknown host; an odd name: UnicodeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise fail(f"cannot listen on {host}:{port}: {reason}{'; ' + hint if hint else ''}", code=3) from None


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


def store_name(ctx: typer.Context) -> str:
    """The selected store as the user named it (credentials redacted), for messages."""
    return redact_url(state(ctx).store_url)


def _store_origin(ctx: typer.Context) -> str:
    """Where the store URL came from, so a user sees which setting to fix."""
    root = ctx.find_root()
    source = root.get_parameter_source("store") if "store" in root.params else None
    shown = redact_url(state(ctx).store_url)
    if source is not None and source.name == "ENVIRONMENT":
        return f"from LIUBAI_STORE={shown}"
    if source is not None and source.name == "COMMANDLINE":
        return f"from --store {shown}"
    return "the default store; nothing has been ingested yet"


@contextmanager
def store_session(ctx: typer.Context, *, create: bool) -> Iterator[LineageStore]:
    """Open the selected store for one command; a store error becomes one line and exit code 1.

    Commands that only read pass ``create=False``: a mistyped ``--store`` is then an error naming the
    path, never a new empty store that answers "nothing found". A "not found" the command leaves
    unhandled names the store it looked in.
    """
    url = state(ctx).store_url
    try:
        store = open_store(url, create=create)
    except StoreMissing as exc:
        raise fail(
            f"{exc} ({_store_origin(ctx)}): check --store or LIUBAI_STORE; "
            "`liubai ingest ...` or `liubai demo` makes a store"
        ) from None
    except StoreError as exc:
        raise fail(f"cannot open store {redact_url(url)}: {exc}") from None
    try:
        yield store
    except StoreError as exc:
        raise fail(f"store {redact_url(url)}: {exc}") from None
    except LiubaiError as exc:
        if exc.code is not ErrorCode.NOT_FOUND:
            raise
        raise fail_error(exc, store=redact_url(url)) from None
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
