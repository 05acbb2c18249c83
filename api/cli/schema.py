"""``liubai schema``: print the GraphQL schema (SDL), the text ``api/schema.graphql`` holds."""

from __future__ import annotations

import sys

import typer

__all__ = ["register"]


def schema_cmd() -> None:
    """Print the GraphQL schema as SDL.

    Example: liubai schema > api/schema.graphql
    """
    from liubai.api.schema_sdl import schema_sdl

    sys.stdout.write(schema_sdl())


def register(app: typer.Typer) -> None:
    app.command("schema")(schema_cmd)
