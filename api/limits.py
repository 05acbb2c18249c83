"""Limits that keep one GraphQL query from taking the API down: tokens, expanded fields, depth, aliases,
page size, time.

Each refusal is a GraphQL error with a message that says which limit was hit and what it is, before
any resolver runs (tokens, fields, depth, aliases, page size) or when the time is up (timeout). Fields,
depth and aliases are counted with every fragment spread expanded, in one linear pass over the parsed
document (``liubai.api.query_cost``), before graphql-core's validation: a document that expands to more than
``max_fields`` selections is refused before any rule could walk its expansion.

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
from graphql.validation.rules import overlapping_fields_can_be_merged as field_merging
from graphql.validation.validate import ValidationAbortedError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from liubai.api.errors import ApiError, ErrorCode
from liubai.api.query_cost import CAP, DocumentCost, FragmentCycle, measure
from liubai.lineage.store import deadline as store_deadline
from liubai.lineage.store.base import StoreTimeout

__all__ = ["PAGE_ARGUMENTS", "LimitSettings", "QueryLimits", "QueryTimeout", "graphql_extensions"]

PAGE_ARGUMENTS = frozenset({"first", "last"})  # lineage "limit" is a traversal cap the schema bounds itself


class LimitSettings(BaseSettings):
    """``LIUBAI_QUERY_*`` environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="LIUBAI_QUERY_", extra="ignore")

    max_fields: int = Field(default=300, ge=1)
    """Selections once fragments are expanded. GraphiQL's introspection query has about 240 and the web
    UI's queries under 30; graphql-core's field-merging check is quadratic in it (see ``liubai.api.query_cost``)."""
    max_merge_work: int = Field(default=2000, ge=1)
    """Steps graphql-core's field-merging check may take (its own complexity budget, 500,000 by default).
    That check compares same-named fields pairwise, so within ``max_fields`` it is still quadratic: a
    300-selection document of one repeated field costs ~56,000 steps, a few hundred milliseconds. Real
    queries spend almost none (GraphiQL's introspection query: 0); past the budget the query is refused."""
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


def _shown(count: int) -> str:
    return f"{count}" if count < CAP else f"at least {CAP}"


def _limit_error(message: str, limit: str, maximum: int, found: int, nodes: Any = None) -> GraphQLError:
    """A refusal shaped like the timeout's: ``extensions.detail`` names the limit, its value and the count."""
    return GraphQLError(
        message,
        nodes,
        original_error=ApiError(ErrorCode.BAD_INPUT, message, limit=limit, max=maximum, found=found),
    )


def _cost_errors(cost: DocumentCost | FragmentCycle, limits: LimitSettings) -> list[GraphQLError]:
    """One error per limit the expanded document is over (none when it is within all of them)."""
    if isinstance(cost, FragmentCycle):
        first, *via = cost.names
        through = f" through {', '.join(repr(n) for n in via)}" if via else ""
        return [
            GraphQLError(
                f"fragment '{first}' spreads itself{through}; fragments cannot form a cycle", list(cost.path)
            )
        ]
    errors = []
    if cost.selections > limits.max_fields:
        errors.append(
            _limit_error(
                f"query has {_shown(cost.selections)} selections (fields and fragments) once its fragments are "
                f"expanded, over the maximum of {limits.max_fields}; ask for fewer fields or spread fragments fewer "
                "times",
                "fields",
                limits.max_fields,
                cost.selections,
            )
        )
    for operation, depth in cost.depths.items():
        if depth > limits.max_depth:
            name = operation.name.value if operation.name else "anonymous"
            errors.append(
                _limit_error(
                    f"'{name}' exceeds maximum operation depth of {limits.max_depth} (it nests {depth} deep, "
                    "counting its fragments)",
                    "depth",
                    limits.max_depth,
                    depth,
                    operation,
                )
            )
    if cost.aliases > limits.max_aliases:
        errors.append(
            _limit_error(
                f"query uses {_shown(cost.aliases)} aliases once its fragments are expanded, over the maximum of "
                f"{limits.max_aliases}",
                "aliases",
                limits.max_aliases,
                cost.aliases,
            )
        )
    return errors


class _Prepared:
    """One distinct query text: its document, its refusals by the cost limits, its page-size arguments and
    its validation errors per schema and rule set."""

    __slots__ = ("document", "errors", "page_arguments", "refusals")

    def __init__(self, document: DocumentNode, limits: LimitSettings) -> None:
        self.document = document
        self.refusals = _cost_errors(measure(document), limits)
        collector = _PageArguments()
        visit(document, collector)
        self.page_arguments = tuple(collector.found)
        self.errors: dict[tuple[GraphQLSchema, tuple[type[ASTValidationRule], ...]], list[GraphQLError]] = {}


def _prepare(query: str, limits: LimitSettings) -> _Prepared:
    return _Prepared(parse(query, max_tokens=limits.max_tokens), limits)


class QueryLimits(SchemaExtension):
    """Parses and validates each distinct query text once, with the token, field, depth and alias limits.

    Those limits and graphql-core's validation rules are a function of the query text alone, so their
    verdict is cached with the parsed document (bounded LRU, one per ``graphql_extensions`` call); only
    the page-size check reads the request's variables, over the page arguments found at parse time.
    A document over a cost limit is refused before graphql-core's rules run: some of them (field merging)
    cost more than linear time in the expanded document. GET and POST requests both come through here.
    """

    max_tokens: int = 4000
    max_page: int = 1000
    max_merge_work: int = 2000
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
            ctx.pre_execution_errors = list(entry.refusals) or self._validated(entry)
        yield

    def _validated(self, entry: _Prepared) -> list[GraphQLError]:
        """graphql-core's rules (cached per schema and rule set), then the page sizes of this request."""
        ctx = self.execution_context
        rules = tuple(ctx.validation_rules)
        key = (ctx.schema._schema, rules)
        errors = entry.errors.get(key)
        if errors is None:
            errors = entry.errors[key] = self._validate(ctx.schema._schema, entry.document, rules)
        variables = ctx.variables or {}
        page_errors = [
            e for e in (_page_size_error(a, variables, self.max_page) for a in entry.page_arguments) if e
        ]
        return [*errors, *page_errors]

    def _validate(
        self, schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        """graphql-core's validation under this API's field-merging budget; an exhausted budget becomes a
        limit refusal. The budget is a module attribute the rule reads as it starts (no await in between,
        so concurrent requests cannot see each other's value)."""
        field_merging.MAX_COMPLEXITY_BUDGET = self.max_merge_work
        errors = validate_document(schema, document, rules)
        return [self._merge_refusal() if _budget_spent(e) else e for e in errors]

    def _merge_refusal(self) -> GraphQLError:
        return _limit_error(
            f"checking that the query's same-named fields can be merged takes more than {self.max_merge_work} "
            "steps; repeat fewer fields under one name (give them aliases) or split the query",
            "merge_work",
            self.max_merge_work,
            self.max_merge_work + 1,
        )


def _budget_spent(error: GraphQLError) -> bool:
    """graphql-core reports its exhausted budget as this exact abort (a too-long error list reads
    differently), the same way for every document."""
    return isinstance(error, ValidationAbortedError) and error.message == "Validation aborted."


class QueryTimeout(SchemaExtension):
    """Stops an operation's resolvers once ``seconds`` have passed since it started.

    The client gets its error at the deadline and no further resolvers start. Store calls run under the
    same deadline (``liubai.lineage.store.deadline``, which follows them into the worker threads), so a call
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
            "max_merge_work": s.max_merge_work,
            "prepare": staticmethod(lru_cache(maxsize=512)(partial(_prepare, limits=s))),
        },
    )
    timeout = type("BoundQueryTimeout", (QueryTimeout,), {"seconds": s.timeout_s})
    return [limits, timeout]
