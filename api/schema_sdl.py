"""The GraphQL schema as SDL text, and where the committed copy lives.

``api/schema.graphql`` is the schema clients build against; a test compares it with the live schema, so
every change to the API's shape shows up in review as a change to that file.
Regenerate it with ``liubai schema > api/schema.graphql``.
"""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

__all__ = ["COMMITTED_SDL", "REGENERATE", "schema_sdl"]

COMMITTED_SDL = Path(__file__).with_name("schema.graphql")
REGENERATE = "liubai schema > api/schema.graphql"


def schema_sdl() -> str:
    """The live schema's SDL, ending in one newline."""
    from liubai.api.schema import schema

    return print_schema(schema).rstrip("\n") + "\n"
