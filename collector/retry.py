"""The one retry policy of every collector: store writes, SLS calls, git clones and agent delivery.

Each of them used to build its own tenacity ``Retrying`` with its own numbers. They now share this
policy, so an operator tunes retrying in one place (``LIUBAI_RETRY_*`` environment variables, read by
``RetryPolicy.from_env``, or the fields given explicitly) and a reader finds one backoff rule: exponential with jitter, bounded by
a deadline per call and optionally by a number of attempts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

__all__ = ["ENV_PREFIX", "RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ENV_PREFIX = "LIUBAI_RETRY_"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by ``deadline`` seconds per call and, when ``attempts`` is
    set, by that many tries. ``from_env`` reads the ``LIUBAI_RETRY_*`` variables.

    ``store_attempts`` bounds writes to the store: a store still unavailable after a few tries is down or
    read-only, not briefly busy, and failing soon keeps the last checkpoint and tells the user rather than
    hanging until the deadline. Remote services (SLS, the API an agent ships to) are retried until the
    deadline: throttling there is expected and ends."""

    deadline: float = 120.0  # seconds one call is retried at most
    attempts: int = 0  # tries per call at most; 0: until the deadline
    initial: float = 0.2  # first wait in seconds; each next one about doubles
    max_wait: float = 10.0  # longest single wait in seconds
    store_attempts: int = 4  # tries per store write at most

    def __post_init__(self) -> None:
        if (
            self.deadline < 0
            or self.attempts < 0
            or self.initial <= 0
            or self.max_wait <= 0
            or self.store_attempts < 1
        ):
            raise ValueError(f"bad retry policy {self}: times must be positive, attempts 0 or more")

    @classmethod
    def from_env(cls, **overrides: Any) -> RetryPolicy:
        """The defaults, with ``LIUBAI_RETRY_*`` variables over them and ``overrides`` over those. The
        variables are parsed by pydantic-settings, imported only when one is set: its import is a
        noticeable share of a CLI run's start-up (figures: docs/performance.md)."""
        if not any(name.startswith(ENV_PREFIX) for name in os.environ):
            return cls(**overrides)
        from liubai.collector.retry_env import retry_env

        return cls(**{**retry_env(), **overrides})

    def for_store(self) -> RetryPolicy:
        """This policy as store writes use it: at most ``store_attempts`` tries."""
        tries = self.store_attempts if not self.attempts else min(self.attempts, self.store_attempts)
        return replace(self, attempts=tries)

    def retrying(
        self,
        retry_if: Callable[[BaseException], bool],
        *,
        what: str = "",
        describe: Callable[[BaseException], str] = str,
    ) -> Retrying:
        """A tenacity ``Retrying`` for calls whose errors ``retry_if`` calls transient; the last error is
        re-raised as it was. With ``what``, each retry is logged as one warning line naming what failed."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s failed (attempt %d), retrying: %s",
                what,
                state.attempt_number,
                describe(exc) if exc else "",
            )

        stop: stop_base = stop_after_delay(self.deadline)
        if self.attempts:
            stop = stop | stop_after_attempt(self.attempts)
        return Retrying(
            retry=retry_if_exception(retry_if),
            wait=wait_exponential_jitter(multiplier=self.initial, max=self.max_wait, jitter=self.initial),
            stop=stop,
            before_sleep=before_sleep if what else None,
            reraise=True,
        )

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        retry_if: Callable[[BaseException], bool],
        what: str = "",
        describe: Callable[[BaseException], str] = str,
    ) -> T:
        """``fn(*args)``, retried while ``retry_if`` says its error is transient."""
        return self.retrying(retry_if, what=what, describe=describe)(fn, *args)
