"""The one error base every part of liubai raises for its users: a ``LiubaiError`` carries a ``code``.

Codes are mapped once to GraphQL ``extensions`` (``liubai.api.errors``) and once to CLI exit codes
(``liubai.api.cli.common``); callers tell errors apart by type or code, never by their text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

__all__ = ["Ambiguous", "BadInput", "ErrorCode", "LiubaiError", "NotFound"]


class ErrorCode(StrEnum):
    NOT_FOUND = "NOT_FOUND"
    BAD_INPUT = "BAD_INPUT"
    BAD_AUDIT_ID = "BAD_AUDIT_ID"
    AMBIGUOUS = "AMBIGUOUS"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    STORE_ERROR = "STORE_ERROR"
    STORE_DAMAGED = "STORE_DAMAGED"
    READ_ONLY = "READ_ONLY"
    TIMEOUT = "TIMEOUT"
    TOO_LARGE = "TOO_LARGE"
    SOURCE_FAILED = "SOURCE_FAILED"
    UNSUPPORTED = "UNSUPPORTED"
    INTERNAL = "INTERNAL"


class LiubaiError(Exception):
    """An error meant for a user: ``str(error)`` says what happened and what to do; ``code`` and
    ``retryable`` are for programs. Subclasses fix their code; ``code=`` overrides it per instance."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        code: ErrorCode | None = None,
        retryable: bool | None = None,
        **detail: Any,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code  # type: ignore[misc]
        if retryable is not None:
            self.retryable = retryable
        self.detail = detail

    @property
    def message(self) -> str:
        """The user's message, as ``str(error)`` gives it."""
        return str(self.args[0]) if self.args else ""


class NotFound(LiubaiError):
    """What the user named is not in the store."""

    code = ErrorCode.NOT_FOUND


class Ambiguous(LiubaiError):
    """What the user named matches several things; ``detail["candidates"]`` lists some of them."""

    code = ErrorCode.AMBIGUOUS


class BadInput(LiubaiError):
    """What the user gave cannot be read at all; the message says what was expected."""

    code = ErrorCode.BAD_INPUT
