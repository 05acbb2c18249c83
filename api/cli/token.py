"""``liubai token create|list|revoke``: the API tokens an agent, a CI job or a person presents."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from liubai.api.cli.common import console, emit_json, err_console, fail, printable, say

if TYPE_CHECKING:
    from liubai.api.auth import TokenStore

__all__ = ["register", "token_app"]

token_app = typer.Typer(
    help="Manage API tokens (stored hashed in LIUBAI_TOKENS, default ~/.local/share/liubai/tokens.db).\n\n"
    "Example: liubai token create --scope ingest --name build-node-1",
    no_args_is_help=True,
)

TokensOption = Annotated[
    Path | None,
    typer.Option(
        "--tokens", help="Token file (default: LIUBAI_TOKENS or the user data dir).", show_default=False
    ),
]


def _open(tokens: Path | None) -> TokenStore:
    from liubai.api.auth import AuthSettings, TokenStore  # the web stack loads only when tokens are used

    path = tokens or AuthSettings().tokens
    try:
        return TokenStore(path)
    except Exception as exc:  # sqlite3.Error, OSError: one line, not a trace
        raise fail(f"cannot open token file {path}: {exc}") from None


@token_app.command("create")
def create(
    name: Annotated[
        str, typer.Option("--name", help="Who or what the token is for (shown in list and errors).")
    ],
    scope: Annotated[
        list[str], typer.Option("--scope", "-s", help="read, ingest or admin; repeat for several.")
    ],
    tokens: TokensOption = None,
) -> None:
    """Create a token and print it once (only its hash is kept).

    Example: liubai token create --scope read --name ci
    """
    from liubai.api.auth import TokenScope

    bad = [s for s in scope if s not in {t.value for t in TokenScope}]
    if bad:
        raise fail(f"unknown scope {bad[0]!r}: use read, ingest or admin")
    store = _open(tokens)
    try:
        info, plain = store.create(name, scope)
    finally:
        store.close()
    err_console.print(
        Text(
            f"created token {info.id} ({printable(info.name)}) with scopes {', '.join(info.scopes)}; "
            "it is shown only now:",
            style="green",
        )
    )
    console.print(plain, markup=False, highlight=False)


@token_app.command("init")
def init(
    name: Annotated[
        str, typer.Option("--name", help="Name of the admin token, if one is created.")
    ] = "admin",
    tokens: TokensOption = None,
) -> None:
    """Create the first admin token if no live one exists, and print it once; otherwise change nothing.

    Safe to run on every start of a server (a container's command, an init container): only the first
    start prints a token.

    Example: liubai token init && liubai serve --auth --host 0.0.0.0
    """
    store = _open(tokens)
    try:
        made = store.create_first_admin(name)
    finally:
        store.close()
    if made is None:
        say(
            f"an admin token already exists in {store.path}; none created (see 'liubai token list')", err=True
        )
        return
    info, plain = made
    err_console.print(
        Text(
            f"created the first admin token {info.id} ({printable(info.name)}) in {store.path}; "
            "it is shown only now:",
            style="green",
        )
    )
    console.print(plain, markup=False, highlight=False)


@token_app.command("list")
def list_tokens(
    tokens: TokensOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print one JSON array of tokens (id, name, scopes, created_at, revoked_at)."
        ),
    ] = False,
) -> None:
    """List tokens (ids, names, scopes, revocation); secrets are never shown.

    Example: liubai token list --json
    """
    store = _open(tokens)
    try:
        rows = store.list()
    finally:
        store.close()
    if as_json:
        emit_json(
            [
                {
                    "id": t.id,
                    "name": t.name,
                    "scopes": list(t.scopes),
                    "created_at": t.created_at,
                    "revoked_at": t.revoked_at,
                }
                for t in rows
            ]
        )
        return
    table = Table("id", "name", "scopes", "created", "revoked")
    for t in rows:
        table.add_row(
            Text(t.id),
            Text(printable(t.name)),
            Text(",".join(t.scopes)),
            Text(t.created_at),
            Text(t.revoked_at or ""),
        )
    console.print(table)


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id, as 'token list' shows it.")],
    tokens: TokensOption = None,
) -> None:
    """Revoke a token; requests presenting it get 401 from the next request on.

    Example: liubai token revoke 3f9a1c0b2d4e
    """
    store = _open(tokens)
    try:
        ok = store.revoke(token_id)
    finally:
        store.close()
    if not ok:
        raise fail(f"no live token with id {token_id!r} in {store.path} (see 'liubai token list')")
    say(f"revoked token {token_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
