"""The one retry policy of every collector: store writes, SLS calls, git clones and agent delivery.

Each of them used to build its own tenacity ``Retrying`` with its own numbers. They now share this
settings model, so an operator tunes retrying in one place (``LIUBAI_RETRY_*`` environment variables,
or the fields given explicitly) and a reader finds one backoff rule: exponential with jitter, bounded by
a deadline per call and optionally by a number of attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

__all__ = ["RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy(BaseSettings):
    """Exponential backoff with jitter, bounded by ``deadline`` seconds per call and, when ``attempts`` is
    set, by that many tries.

    ``store_attempts`` bounds writes to the store: a store still unavailable after a few tries is down or
    read-only, not briefly busy, and failing soon keeps the last checkpoint and tells the user rather than
    hanging until the deadline. Remote services (SLS, the API an agent ships to) are retried until the
    deadline: throttling there is expected and ends."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_RETRY_", frozen=True, extra="ignore")

    deadline: float = Field(default=120.0, ge=0, description="Seconds one call is retried at most.")
    attempts: int = Field(default=0, ge=0, description="Tries per call at most; 0: until the deadline.")
    initial: float = Field(default=0.2, gt=0, description="First wait in seconds; each next one about doubles.")
    max_wait: float = Field(default=10.0, gt=0, description="Longest single wait in seconds.")
    store_attempts: int = Field(default=4, ge=1, description="Tries per store write at most.")

    def for_store(self) -> RetryPolicy:
        """This policy as store writes use it: at most ``store_attempts`` tries."""
        tries = self.store_attempts if not self.attempts else min(self.attempts, self.store_attempts)
        return self.model_copy(update={"attempts": tries})

    def retrying(
        self, retry_if: Callable[[BaseException], bool], *, what: str = "", describe: Callable[[BaseException], str] = str
    ) -> Retrying:
        """A tenacity ``Retrying`` for calls whose errors ``retry_if`` calls transient; the last error is
        re-raised as it was. With ``what``, each retry is logged as one warning line naming what failed."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s failed (attempt %d), retrying: %s", what, state.attempt_number, describe(exc) if exc else "")

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
