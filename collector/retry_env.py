"""``LIUBAI_RETRY_*`` environment variables, parsed and validated for ``RetryPolicy.from_env``.

A module of its own so that pydantic-settings is imported only when such a variable is set.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RetryEnv"]


class RetryEnv(BaseSettings):
    """The fields of ``RetryPolicy`` an operator may set; a bad value is refused naming the variable."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_RETRY_", frozen=True, extra="ignore")

    deadline: float = Field(default=120.0, ge=0)
    attempts: int = Field(default=0, ge=0)
    initial: float = Field(default=0.2, gt=0)
    max_wait: float = Field(default=10.0, gt=0)
    store_attempts: int = Field(default=4, ge=1)
