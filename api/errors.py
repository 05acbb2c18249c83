"""Structured API errors: every GraphQL error leaves with ``extensions {code, message, retryable, ...}``.

Resolvers raise ``ApiError`` for what a user can act on; store failures and anything unexpected are
translated here, in one place, so that clients (the web UI, scripts) can branch on ``code`` instead of
parsing messages, and so that internal details never reach a client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult

from liubai.api.api_error import ApiError, ErrorCode
from liubai.lineage.store.base import AnswerTooLarge, StoreDamaged, StoreError, StoreUnavailable
from liubai.lineage.text import ECHO_LIMIT, clip

__all__ = ["ApiError", "ErrorCode", "StructuredErrors", "error_extensions", "is_expected"]

log = logging.getLogger("liubai.api")
# graphql-core's own messages quote names and values from the query inside longer text of their own
# ("Did you mean ...?"), so the cap applies to the whole message.
GRAPHQL_MESSAGE_LIMIT = 4 * ECHO_LIMIT


def error_extensions(error: GraphQLError) -> dict[str, Any]:
    """The ``extensions`` object for one GraphQL error (and the user message it should carry)."""
    original = error.original_error
    if isinstance(original, ApiError):
        ext: dict[str, Any] = {"code": original.code.value, "message": original.message, "retryable": original.retryable}
        if original.detail:
            ext["detail"] = original.detail
        return ext
    if isinstance(original, AnswerTooLarge):  # the store's own words: limits and ids the client sent
        return {"code": ErrorCode.BAD_INPUT.value, "message": str(original), "retryable": False}
    if isinstance(original, StoreUnavailable):
        return {
            "code": ErrorCode.STORE_UNAVAILABLE.value,
            "message": "The lineage store cannot be reached right now; try again shortly.",
            "retryable": True,
        }
    if isinstance(original, StoreError):
        return {
            "code": ErrorCode.INTERNAL.value,
            "message": "The lineage store failed to answer this query.",
            "retryable": original.retryable,
        }
    if original is None:  # syntax or validation error: the query itself is wrong, and its message may quote it
        return {"code": ErrorCode.BAD_INPUT.value, "message": clip(error.message, GRAPHQL_MESSAGE_LIMIT),
                "retryable": False}
    return {"code": ErrorCode.INTERNAL.value, "message": "Internal error.", "retryable": False}


def is_expected(error: GraphQLError) -> bool:
    """True for errors that are the client's business (no server log entry needed)."""
    return error.original_error is None or isinstance(error.original_error, ApiError | AnswerTooLarge)


class StructuredErrors(SchemaExtension):
    """Rewrite every error of an operation into the structured form; log and hide the unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult) and result.errors:
            result.errors = [_structured(e) for e in result.errors]


def _structured(error: GraphQLError) -> GraphQLError:
    ext = error_extensions(error)
    if isinstance(error.original_error, StoreUnavailable):  # an operational state, not a bug: one line
        log.warning("store unavailable: %s", error.original_error)
    elif isinstance(error.original_error, StoreDamaged):  # the file, not the code: its reason says it all
        ext["errorId"] = uuid.uuid4().hex[:16]
        log.error("GraphQL error %s: %s", ext["errorId"], error.original_error)
    elif not is_expected(error):
        # The operator gets the stack trace under an id; the client gets the id, never the internals.
        ext["errorId"] = uuid.uuid4().hex[:16]
        log.error("GraphQL error %s at %s", ext["errorId"], error.path, exc_info=error.original_error)
    if error.extensions:
        ext = {**error.extensions, **ext}
    return GraphQLError(
        message=ext["message"],
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=ext,
    )
