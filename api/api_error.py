"""The errors GraphQL resolvers and the CLI raise for a user. Kept apart from ``liubai.api.errors`` (the
GraphQL side, which needs strawberry) so that a command can raise them without loading the web stack.

``ApiError`` is a ``LiubaiError`` whose code is chosen per call; ``ErrorCode`` is the one enum of
``liubai.lineage.errors``, re-exported here for the API's callers."""

from __future__ import annotations

from typing import Any

from liubai.lineage.errors import ErrorCode, LiubaiError

__all__ = ["ApiError", "ErrorCode"]


class ApiError(LiubaiError):
    """An error meant for the user: ``message`` says what to do, ``detail`` carries machine-readable context."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False, **detail: Any) -> None:
        super().__init__(message, code=code, retryable=retryable, **detail)
