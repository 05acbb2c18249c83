"""Waiting on a real part (a process, a server, a store) without sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 120.0, every: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy and return that; AssertionError naming ``what`` on
    timeout (an AssertionError, so a caller may catch it and let a fuller comparison say what differs)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
