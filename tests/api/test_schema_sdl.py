"""The committed ``api/schema.graphql`` is the live schema: a change to the API's shape must be a change to
that file too, made on purpose and seen in review."""

from __future__ import annotations

import difflib

from graphql import build_schema
from typer.testing import CliRunner

from liubai.api.cli.main import app
from liubai.api.schema_sdl import COMMITTED_SDL, REGENERATE, schema_sdl


def test_the_committed_sdl_is_the_live_schema() -> None:
    live, committed = schema_sdl(), COMMITTED_SDL.read_text(encoding="utf-8")
    if live != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), live.splitlines(keepends=True), "committed", "live", n=1
            )
        )
        raise AssertionError(
            f"{COMMITTED_SDL.name} differs from the live schema; if the change is meant, run `{REGENERATE}` "
            f"and commit it.\n{diff[:4000]}"
        )


def test_liubai_schema_prints_the_sdl_clients_can_build() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.stdout
    assert result.stdout == schema_sdl()
    built = build_schema(result.stdout)
    node = built.get_type("Node")
    assert node is not None and built.get_implementations(node).objects  # type: ignore[arg-type]
