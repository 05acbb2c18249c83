"""Limits that keep one GraphQL query from taking the API down: depth, tokens, aliases, page size, time.

Each refusal is a GraphQL error with a message that says which limit was hit and what it is, before
any resolver runs (depth, tokens, aliases, page size) or when the time is up (timeout).

What the schema must do to get them: build ``strawberry.Schema(..., extensions=graphql_extensions(
LimitSettings()) + [StructuredErrors])``, name page-size arguments ``first`` (or list them in
``PAGE_ARGUMENTS``) and keep resolvers that reach the store ``async`` (e.g. a thread-pool executor) so
the timeout can stop waiting for them.

Parsing and validation, the larger part of a small query's CPU time, happen once per distinct query
text (``QueryLimits``); only the page-size check, which reads the variables, runs on every request.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import lru_cache, partial
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    VariableNode,
    Visitor,
    parse,
    visit,
)
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator
from strawberry.schema.schema import validate_document

from api.errors import ApiError, ErrorCode
from lineage.store import deadline as store_deadline
from lineage.store.base import StoreTimeout

__all__ = ["PAGE_ARGUMENTS", "LimitSettings", "QueryLimits", "QueryTimeout", "graphql_extensions"]

PAGE_ARGUMENTS = frozenset({"first", "last"})  # lineage "limit" is a traversal cap the schema bounds itself


class LimitSettings(BaseSettings):
    """``LIUBAI_QUERY_*`` environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_QUERY_", extra="ignore")

    max_depth: int = Field(default=12, ge=1)
    max_tokens: int = Field(default=4000, ge=10)
    max_aliases: int = Field(default=30, ge=1)
    max_page: int = Field(default=1000, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)


def _page_size_error(node: ArgumentNode, variables: Mapping[str, Any], max_page: int) -> GraphQLError | None:
    value: Any = None
    if isinstance(node.value, IntValueNode):
        value = int(node.value.value)
    elif isinstance(node.value, VariableNode):
        value = variables.get(node.value.name.value)
    if isinstance(value, int) and not isinstance(value, bool) and value > max_page:
        return GraphQLError(
            f"'{node.name.value}: {value}' asks for more than the maximum page size of {max_page}; "
            "page with 'after' instead.",
            node,
        )
    return None


class _PageArguments(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[ArgumentNode] = []

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if node.name.value in PAGE_ARGUMENTS:
            self.found.append(node)


class _Prepared:
    """One distinct query text: its document, its page-size arguments and its validation errors per schema
    and rule set."""

    __slots__ = ("document", "errors", "page_arguments")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        collector = _PageArguments()
        visit(document, collector)
        self.page_arguments = tuple(collector.found)
        self.errors: dict[tuple[GraphQLSchema, tuple[type[ASTValidationRule], ...]], list[GraphQLError]] = {}


def _prepare(query: str, max_tokens: int) -> _Prepared:
    return _Prepared(parse(query, max_tokens=max_tokens))


class QueryLimits(SchemaExtension):
    """Parses and validates each distinct query text once, with the token, depth and alias limits.

    Those limits and graphql-core's validation rules are a function of the query text alone, so their
    verdict is cached with the parsed document (bounded LRU, one per ``graphql_extensions`` call); only
    the page-size check reads the request's variables, over the page arguments found at parse time.
    """

    max_tokens: int = 4000
    max_page: int = 1000
    rules: tuple[type[ASTValidationRule], ...] = ()
    prepare: Callable[[str], _Prepared]

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self._entry: _Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query and ctx.graphql_document is None:
            try:
                self._entry = type(self).prepare(ctx.query)
            except GraphQLError:  # not cached; strawberry parses again and reports it like any other error
                ctx.parse_options["max_tokens"] = self.max_tokens
            else:
                ctx.graphql_document = self._entry.document
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        entry = self._entry
        if entry is not None and entry.document is ctx.graphql_document and ctx.pre_execution_errors is None:
            rules = (*ctx.validation_rules, *self.rules)
            key = (ctx.schema._schema, rules)
            errors = entry.errors.get(key)
            if errors is None:
                errors = entry.errors[key] = validate_document(ctx.schema._schema, entry.document, rules)
            variables = ctx.variables or {}
            page_errors = [e for e in (_page_size_error(a, variables, self.max_page) for a in entry.page_arguments) if e]
            ctx.pre_execution_errors = [*errors, *page_errors]
        yield


class QueryTimeout(SchemaExtension):
    """Stops an operation's resolvers once ``seconds`` have passed since it started.

    The client gets its error at the deadline and no further resolvers start. Store calls run under the
    same deadline (``lineage.store.deadline``, which follows them into the worker threads), so a call
    already running stops its own work there instead of finishing in the background.
    """

    seconds: float = 10.0

    def __init__(self, *, execution_context: Any = None) -> None:
        super().__init__(execution_context=execution_context)
        self._deadline = 0.0

    def on_execute(self) -> Iterator[None]:
        self._deadline = time.monotonic() + self.seconds
        yield

    def _timeout(self) -> ApiError:
        return ApiError(
            ErrorCode.BAD_INPUT,
            f"query took longer than the {self.seconds:g} s limit; ask for less (smaller depth, first or limit)",
            limit="timeout",
            seconds=self.seconds,
        )

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        """Sync on purpose: plain fields pass straight through; only awaitables (store calls) get a deadline."""
        remaining = self._deadline - time.monotonic() if self._deadline else self.seconds
        if remaining <= 0:
            raise self._timeout()
        result = _next(root, info, *args, **kwargs)
        return self._bounded(result, remaining) if inspect.isawaitable(result) else result

    async def _bounded(self, result: Awaitable[Any], remaining: float) -> Any:
        """``asyncio.timeout`` rather than ``wait_for``: no extra task per store call."""
        try:
            with store_deadline.until(self._deadline or time.monotonic() + remaining):
                async with asyncio.timeout(remaining):
                    return await result
        except (TimeoutError, StoreTimeout):
            raise self._timeout() from None


def graphql_extensions(settings: LimitSettings | None = None) -> list[Any]:
    """Schema extensions enforcing every limit in ``settings``, ready for ``strawberry.Schema(extensions=...)``.

    Each call makes its own query cache, so schemas built with different settings never share verdicts."""
    s = settings or LimitSettings()
    limits = type(
        "BoundQueryLimits",
        (QueryLimits,),
        {
            "max_tokens": s.max_tokens,
            "max_page": s.max_page,
            "rules": (depth_validator(s.max_depth, None), alias_validator(s.max_aliases)),
            "prepare": staticmethod(lru_cache(maxsize=512)(partial(_prepare, max_tokens=s.max_tokens))),
        },
    )
    timeout = type("BoundQueryTimeout", (QueryTimeout,), {"seconds": s.timeout_s})
    return [limits, timeout]
