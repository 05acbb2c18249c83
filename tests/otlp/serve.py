"""``liubai serve`` for OTLP exporters to send to (``tests.serving``), with the store it writes to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.serving import free_port, liubai_command, serving

LIUBAI = liubai_command()


@dataclass(frozen=True)
class Served:
    base: str
    store_url: str


@contextmanager
def liubai_serve(
    store_url: str, cwd: Path, *extra: str, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """A ``liubai serve`` process over ``store_url`` until the block ends; its log is ``cwd/serve.log``."""
    with serving(store_url, free_port(), cwd / "serve.log", env, extra) as base:
        yield Served(base, store_url)
