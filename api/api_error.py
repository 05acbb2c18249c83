"""The errors a user can act on, as resolvers and the CLI raise them. Kept apart from ``liubai.api.errors`` (the
GraphQL side, which needs strawberry) so that a command can raise them without loading the web stack."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["ApiError", "ErrorCode"]


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    BAD_INPUT = "BAD_INPUT"
    BAD_AUDIT_ID = "BAD_AUDIT_ID"
    AMBIGUOUS = "AMBIGUOUS"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    INTERNAL = "INTERNAL"


class ApiError(Exception):
    """An error meant for the user: ``message`` says what to do, ``detail`` carries machine-readable context."""

    def __init__(
        self, code: ErrorCode, message: str, *, retryable: bool = False, **detail: Any
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.detail = detail
