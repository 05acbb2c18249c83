"""A deadline for store calls, set by the caller and read by the stores, so that a caller that gives
up on an answer (an API query past its time limit) also stops the work behind it.

A context variable rather than a protocol argument: it reaches every store call made inside the block,
through helpers that know nothing of it, and follows the call into a thread pool when the pool runs it
in a copy of the caller's context (``contextvars.copy_context().run``). A store that hits the deadline
stops its query (SQLite interrupts the statement, Neo4j's server ends the transaction) and raises
``StoreTimeout``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

__all__ = ["current", "deadline", "remaining", "until"]

_AT: ContextVar[float | None] = ContextVar("liubai_store_deadline", default=None)


def current() -> float | None:
    """The ``time.monotonic()`` instant store calls must stop at, None for no deadline."""
    return _AT.get()


def remaining() -> float | None:
    """Seconds left before the deadline (0 or less once passed), None for no deadline."""
    at = _AT.get()
    return None if at is None else at - time.monotonic()


@contextmanager
def until(at: float | None) -> Iterator[None]:
    """Store calls inside the block stop at the ``time.monotonic()`` instant ``at``; an earlier
    deadline already in force stays (a nested block can only shorten it)."""
    outer = _AT.get()
    token = _AT.set(at if outer is None else outer if at is None else min(outer, at))
    try:
        yield
    finally:
        _AT.reset(token)


def deadline(seconds: float | None) -> AbstractContextManager[None]:
    """Store calls inside the block stop once ``seconds`` have passed (None: no new limit)."""
    return until(None if seconds is None else time.monotonic() + seconds)
