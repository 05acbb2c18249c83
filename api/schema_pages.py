"""Relay-style paging over the store's forward-only pages: opaque per-item cursors and ``PageInfo``.

The store pages with its own opaque cursor (``after`` one page, ``end_cursor`` the next). An item's cursor
here is (the store cursor its page started from, how many items of that page precede it and it), so a
client may resume after any item, not only at page ends; the last item of a page carries the store's
next-page cursor instead, so walking page by page stays on the store's cursors. Cursors are base64 JSON:
opaque to clients, the same for the same item in the same query.

Only forward paging (``first``/``after``) is offered: the stores page forward only, and walking back
would mean re-reading from the start.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import strawberry

from liubai.api.errors import ApiError, ErrorCode
from liubai.lineage.store.base import InvalidCursor

__all__ = ["Page", "PageInfo", "decode_cursor", "encode_cursor", "page_after"]

T = TypeVar("T")

_BAD_CURSOR = "invalid cursor; pass an endCursor or cursor from an earlier answer"


@strawberry.type(description="Where a page sits in its list (Relay cursor connections).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True while items follow this page.")
    has_previous_page: bool = strawberry.field(
        default=False,
        description="True when the page started after a cursor (items precede it); paging is forward only.",
    )
    start_cursor: str | None = strawberry.field(default=None, description="Cursor of the first edge.")
    end_cursor: str | None = strawberry.field(
        default=None, description="Cursor of the last edge; pass as `after` for the next page."
    )


def encode_cursor(store_after: str | None, skip: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([store_after, skip]).encode()).decode()


def decode_cursor(cursor: str | None, max_skip: int) -> tuple[str | None, int]:
    """(store cursor, items to skip) of ``cursor``; ``BAD_INPUT`` naming ``after`` if it is not ours."""
    if not cursor:
        return None, 0
    try:
        store_after, skip = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if (
            (store_after is None or isinstance(store_after, str))
            and isinstance(skip, int)
            and not isinstance(skip, bool)
            and 0 <= skip <= max_skip
        ):
            return store_after, skip
    except (ValueError, TypeError, binascii.Error, RecursionError):
        pass
    raise ApiError(ErrorCode.BAD_INPUT, _BAD_CURSOR, argument="after")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of items with their cursors."""

    items: list[tuple[str, T]]
    page_info: PageInfo


def page_after(
    fetch: Callable[[int, str | None], tuple[list[T], str | None]],
    first: int,
    after: str | None,
    max_skip: int,
) -> Page[T]:
    """The ``first`` items after cursor ``after``; ``fetch(n, store_after)`` reads a store page of ``n``
    items and returns them with the store's next-page cursor (None on the last page)."""
    store_after, skip = decode_cursor(after, max_skip)
    try:
        found, store_next = fetch(skip + first, store_after)
    except InvalidCursor:
        raise ApiError(ErrorCode.BAD_INPUT, _BAD_CURSOR, argument="after") from None
    items: list[tuple[str, T]] = []
    for pos, item in enumerate(found[skip:], start=skip + 1):
        last_of_page = pos == len(found) and store_next is not None
        cursor = encode_cursor(store_next, 0) if last_of_page else encode_cursor(store_after, pos)
        items.append((cursor, item))
    info = PageInfo(
        has_next_page=store_next is not None,
        has_previous_page=after is not None and (store_after is not None or skip > 0),
        start_cursor=items[0][0] if items else None,
        end_cursor=items[-1][0] if items else None,
    )
    return Page(items, info)
