"""``LIUBAI_RETRY_*`` environment variables, parsed and validated for ``RetryPolicy.from_env``.

A module of its own so that pydantic-settings is imported only when such a variable is set.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from liubai.collector.retry import ENV_PREFIX
from liubai.lineage.errors import BadInput
from liubai.lineage.text import clip

__all__ = ["RetryEnv", "retry_env"]


class RetryEnv(BaseSettings):
    """The fields of ``RetryPolicy`` an operator may set; a bad value is refused naming the variable.
    Times are finite: ``nan`` would pass every bound and stop nothing."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    deadline: float = Field(default=120.0, ge=0, allow_inf_nan=False)
    attempts: int = Field(default=0, ge=0)
    initial: float = Field(default=0.2, gt=0, allow_inf_nan=False)
    max_wait: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    store_attempts: int = Field(default=4, ge=1)


def retry_env() -> dict[str, Any]:
    """The ``RetryPolicy`` fields the environment sets. A bad value is a ``BadInput`` of one line naming
    each variable, its value and what it must be, instead of pydantic's report over several lines."""
    try:
        return RetryEnv().model_dump(exclude_unset=True)
    except ValidationError as exc:
        raise BadInput("; ".join(_refusal(error) for error in exc.errors(include_url=False))) from None


def _refusal(error: ErrorDetails) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    value = clip(repr(error.get("input")))
    reason = error["msg"]
    return f"{ENV_PREFIX}{field.upper()}={value}: {reason[:1].lower()}{reason[1:]}"
