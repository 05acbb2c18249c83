"""Structured API errors: every GraphQL error leaves with ``extensions {code, message, retryable, ...}``.

Resolvers raise ``LiubaiError``s (``ApiError`` among them) for what a user can act on; their codes, store
failures and anything unexpected are translated here, in one table (``PUBLIC``), so that clients (the web
UI, scripts) can branch on ``code`` instead of parsing messages, and internal details never reach a client.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLEnumType, GraphQLSchema
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult

from liubai.api.api_error import ApiError, ErrorCode
from liubai.lineage.errors import LiubaiError
from liubai.lineage.store.base import StoreDamaged, StoreUnavailable
from liubai.lineage.text import ECHO_LIMIT, clip

__all__ = ["ApiError", "ErrorCode", "StructuredErrors", "error_extensions", "is_expected"]

log = logging.getLogger("liubai.api")
# graphql-core's own messages quote names and values from the query inside longer text of their own
# ("Did you mean ...?"), so the cap applies to the whole message.
GRAPHQL_MESSAGE_LIMIT = 4 * ECHO_LIMIT


@dataclass(frozen=True, slots=True)
class _Public:
    """How errors of one code leave the API: the code a client sees, and the message it gets (``None``: the
    error's own words, which were written for the user)."""

    code: ErrorCode
    message: str | None = None


_STORE_FAILED = _Public(ErrorCode.INTERNAL, "The lineage store failed to answer this query.")

# The one mapping from an error's code to what a GraphQL client sees. Store internals (damaged files,
# read-only media, a stopped call) are the operator's business: the client learns only that the store failed.
PUBLIC: dict[ErrorCode, _Public] = {
    ErrorCode.NOT_FOUND: _Public(ErrorCode.NOT_FOUND),
    ErrorCode.BAD_INPUT: _Public(ErrorCode.BAD_INPUT),
    ErrorCode.BAD_AUDIT_ID: _Public(ErrorCode.BAD_AUDIT_ID),
    ErrorCode.AMBIGUOUS: _Public(ErrorCode.AMBIGUOUS),
    ErrorCode.UNAUTHENTICATED: _Public(ErrorCode.UNAUTHENTICATED),
    ErrorCode.FORBIDDEN: _Public(ErrorCode.FORBIDDEN),
    ErrorCode.TOO_LARGE: _Public(
        ErrorCode.BAD_INPUT
    ),  # the store's own words: limits and ids the client sent
    ErrorCode.STORE_UNAVAILABLE: _Public(
        ErrorCode.STORE_UNAVAILABLE, "The lineage store cannot be reached right now; try again shortly."
    ),
    ErrorCode.STORE_ERROR: _STORE_FAILED,
    ErrorCode.STORE_DAMAGED: _STORE_FAILED,
    ErrorCode.READ_ONLY: _STORE_FAILED,
    ErrorCode.TIMEOUT: _STORE_FAILED,
    ErrorCode.SOURCE_FAILED: _Public(ErrorCode.INTERNAL, "Internal error."),
    ErrorCode.UNSUPPORTED: _Public(ErrorCode.INTERNAL, "Internal error."),
    ErrorCode.INTERNAL: _Public(ErrorCode.INTERNAL, "Internal error."),
}
# Codes that are the client's business: no server log entry needed.
EXPECTED = frozenset(
    {
        ErrorCode.NOT_FOUND,
        ErrorCode.BAD_INPUT,
        ErrorCode.BAD_AUDIT_ID,
        ErrorCode.AMBIGUOUS,
        ErrorCode.UNAUTHENTICATED,
        ErrorCode.FORBIDDEN,
        ErrorCode.TOO_LARGE,
    }
)


# graphql-core's words for a name that is not a value of an enum (a literal or a variable's value).
_NOT_IN_ENUM = re.compile(r"does not exist in '(\w+)' enum|Enum '(\w+)' cannot represent")


def _is_request_error(error: GraphQLError) -> bool:
    """True for errors in the request itself: syntax, validation, and variables whose values do not fit
    their types (graphql-core raises those before execution, so they carry no path, and keeps the coercion
    error as ``original_error``). Errors raised while executing always carry a path."""
    original = error.original_error
    return original is None or (isinstance(original, GraphQLError) and error.path is None)


def _valid_values(message: str, schema: GraphQLSchema | None) -> str:
    """The valid names of the enum a message says a value is not in (`` Valid values: A, B.``), else ``""``."""
    found = _NOT_IN_ENUM.search(message)
    enum = schema.get_type(found.group(1) or found.group(2)) if found and schema else None
    if not isinstance(enum, GraphQLEnumType):
        return ""
    return f" Valid values: {', '.join(enum.values)}."


def error_extensions(error: GraphQLError, schema: GraphQLSchema | None = None) -> dict[str, Any]:
    """The ``extensions`` object for one GraphQL error (and the user message it should carry); with the
    ``schema``, a name that is not a value of an enum is answered with the valid ones."""
    original = error.original_error
    if _is_request_error(error):  # the query or its variables are wrong, and the message may quote them
        valid = _valid_values(error.message, schema)  # the cap leaves room for it: it is never cut
        return {
            "code": ErrorCode.BAD_INPUT.value,
            "message": clip(error.message, GRAPHQL_MESSAGE_LIMIT - len(valid)) + valid,
            "retryable": False,
        }
    if not isinstance(original, LiubaiError):
        return {"code": ErrorCode.INTERNAL.value, "message": "Internal error.", "retryable": False}
    public = PUBLIC[original.code]
    ext: dict[str, Any] = {
        "code": public.code.value,
        "message": original.message if public.message is None else public.message,
        "retryable": original.retryable,
    }
    if original.detail and public.message is None:
        ext["detail"] = original.detail
    return ext


def is_expected(error: GraphQLError) -> bool:
    """True for errors that are the client's business (no server log entry needed)."""
    original = error.original_error
    return _is_request_error(error) or (isinstance(original, LiubaiError) and original.code in EXPECTED)


class StructuredErrors(SchemaExtension):
    """Rewrite every error of an operation into the structured form; log and hide the unexpected ones."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult) and result.errors:
            schema = self.execution_context.schema._schema
            result.errors = [_structured(e, schema) for e in result.errors]


def _structured(error: GraphQLError, schema: GraphQLSchema) -> GraphQLError:
    ext = error_extensions(error, schema)
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
