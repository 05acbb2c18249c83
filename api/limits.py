"""Limits that keep one GraphQL query from taking the API down: depth, tokens, aliases, page size, time.

Each refusal is a GraphQL error with a message that says which limit was hit and what it is, before
any resolver runs (depth, tokens, aliases, page size) or when the time is up (timeout).

What the schema must do to get them: build ``strawberry.Schema(..., extensions=graphql_extensions(
LimitSettings()) + [StructuredErrors])``, name page-size arguments ``first`` (or list them in
``PAGE_ARGUMENTS``) and keep resolvers that reach the store ``async`` (e.g. ``run_in_threadpool``) so
the timeout can stop waiting for them.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from graphql import ArgumentNode, GraphQLError, IntValueNode, ValidationRule, VariableNode
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)

from api.errors import ApiError, ErrorCode

__all__ = ["PAGE_ARGUMENTS", "LimitSettings", "PageSizeLimiter", "QueryTimeout", "graphql_extensions", "page_size_rule"]

PAGE_ARGUMENTS = frozenset({"first", "last"})  # lineage "limit" is a traversal cap the schema bounds itself


class LimitSettings(BaseSettings):
    """``LIUBAI_QUERY_*`` environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_QUERY_", extra="ignore")

    max_depth: int = Field(default=12, ge=1)
    max_tokens: int = Field(default=4000, ge=10)
    max_aliases: int = Field(default=30, ge=1)
    max_page: int = Field(default=1000, ge=1)
    timeout_s: float = Field(default=10.0, gt=0)


def page_size_rule(max_page: int, variables: Mapping[str, Any] | None = None) -> type[ValidationRule]:
    """A validation rule refusing a page-size argument (literal or variable) above ``max_page``."""
    values = dict(variables or {})

    class PageSizeLimit(ValidationRule):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            if node.name.value not in PAGE_ARGUMENTS:
                return
            value: Any = None
            if isinstance(node.value, IntValueNode):
                value = int(node.value.value)
            elif isinstance(node.value, VariableNode):
                value = values.get(node.value.name.value)
            if isinstance(value, int) and not isinstance(value, bool) and value > max_page:
                self.report_error(
                    GraphQLError(
                        f"'{node.name.value}: {value}' asks for more than the maximum page size of {max_page}; "
                        "page with 'after' instead.",
                        node,
                    )
                )

    return PageSizeLimit


class PageSizeLimiter(SchemaExtension):
    """Adds the page-size rule per operation, so that it also sees the operation's variables."""

    max_page: int = 1000

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        ctx.validation_rules = (*ctx.validation_rules, page_size_rule(self.max_page, ctx.variables))
        yield


class QueryTimeout(SchemaExtension):
    """Stops waiting for an operation's resolvers once ``seconds`` have passed since it started.

    A store call already running in a worker thread finishes in the background (threads cannot be
    killed); the client gets its error at the deadline and no further resolvers start.
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
        try:
            return await asyncio.wait_for(result, timeout=remaining)
        except TimeoutError:
            raise self._timeout() from None


def graphql_extensions(settings: LimitSettings | None = None) -> list[Any]:
    """Schema extensions enforcing every limit in ``settings``, ready for ``strawberry.Schema(extensions=...)``."""
    s = settings or LimitSettings()
    timeout = type("BoundQueryTimeout", (QueryTimeout,), {"seconds": s.timeout_s})
    return [
        lambda: ParserCache(maxsize=512),  # repeated query texts (the UI's, dashboards') parse once
        lambda: QueryDepthLimiter(max_depth=s.max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=s.max_aliases),
        lambda: MaxTokensLimiter(max_token_count=s.max_tokens),
        type("BoundPageSizeLimiter", (PageSizeLimiter,), {"max_page": s.max_page}),
        timeout,
    ]
