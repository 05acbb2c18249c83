"""How a resolver reaches the store: the per-request context and the thread pool blocking store calls run in."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from strawberry.fastapi import BaseContext
from strawberry.types import Info

from liubai.lineage.store.base import LineageStore

__all__ = ["ApiContext", "with_store"]

T = TypeVar("T")


class ApiContext(BaseContext):
    """Per-request context: how to reach the store (opened lazily, so a down store is an answer, not a crash)."""

    def __init__(self, store: Callable[[], LineageStore]) -> None:
        super().__init__()
        self.get_store = store


# Store calls block. A plain executor hop costs about half of anyio's ``run_in_threadpool`` per call, and
# a cancelled wait (query timeout) returns at once; the call itself stops at the same deadline
# (``liubai.lineage.store.deadline``), which the copied context carries into the thread.
_STORE_THREADS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="liubai-store")


async def with_store(info: Info, fn: Callable[[LineageStore], T]) -> T:
    """Run ``fn`` on the request's store in the pool, so the event loop stays free."""
    ctx: ApiContext = info.context
    call = contextvars.copy_context().run  # the request id reaches log lines written in the thread
    return await asyncio.get_running_loop().run_in_executor(_STORE_THREADS, call, lambda: fn(ctx.get_store()))
