"""Relay conventions: opaque global ids, the Node interface and connections."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import strawberry
from tortoise.queryset import QuerySet

from meihua.resolvers.errors import BadUserInput, NotFound
from meihua.resolvers.pagination import MAX_KEY, Ordering, Page, paginate

T = TypeVar("T")


def to_global_id(type_name: str, pk: int) -> strawberry.ID:
    raw = f"{type_name}:{pk}".encode()
    return strawberry.ID(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def from_global_id(global_id: str) -> tuple[str, int]:
    """(type name, primary key); ValueError when it is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        key = int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(global_id) from None
    if not 0 < key <= MAX_KEY:
        # Not a key we ever issue; the database would refuse it (integer overflow).
        raise ValueError(global_id)
    return type_name, key


def record_id(global_id: str, type_name: str) -> int:
    """The key of the record an operation acts on; a foreign id does not exist."""
    try:
        kind, pk = from_global_id(global_id)
    except ValueError:
        kind, pk = "", 0
    if kind != type_name:
        raise NotFound(f"No such {type_name.lower()}.")
    return pk


def reference_id(global_id: str, type_name: str, field: str) -> int:
    """The key of a record named in an input; a wrong id is the caller's input error."""
    try:
        kind, pk = from_global_id(global_id)
    except ValueError:
        kind, pk = "", 0
    if kind != type_name:
        raise BadUserInput(f"`{field}` is not a {type_name} id.", field=field)
    return pk


def reference_ids(global_ids: list[str], type_name: str, field: str) -> list[int]:
    return [reference_id(gid, type_name, field) for gid in global_ids]


@strawberry.interface(description="An object with a global, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _page: strawberry.Private[Page]

    @strawberry.field(description="All matching records; costs a COUNT, so ask only when shown.")
    async def total_count(self) -> int:
        return await self._page.total_count()

    @classmethod
    def of(cls, page: Page, convert: Callable[[object], T]) -> Connection[T]:
        edges = [
            Edge(cursor=cursor, node=convert(item))
            for item, cursor in zip(page.items, page.cursors, strict=True)
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=page.cursors[0] if page.cursors else None,
                end_cursor=page.cursors[-1] if page.cursors else None,
            ),
            _page=page,
        )


async def connection(
    info: Any,
    query: QuerySet,
    ordering: Ordering,
    node_type: Any,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> Connection:
    """One page of `query` as a connection of `node_type` (built with `node_type.of`)."""
    page = await paginate(
        query,
        ordering,
        first=first,
        after=after,
        last=last,
        before=before,
        max_page=info.context.settings.page_size_max,
    )
    return Connection[node_type].of(page, node_type.of)
