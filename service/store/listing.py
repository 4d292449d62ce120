"""One page of a list that spans several resources, merged from each resource's index.

Each resource's list is one script on its own hash tag (on a Cluster, perhaps its own
shard), so a list over R resources reads, in two rounds of concurrent calls:

1. from each resource, the sort keys of its first offset + limit matches and its total;
2. merged in order, those keys say how many of the page's items each resource holds
   and how many of its matches come before them; each resource that has items on the
   page then returns exactly those, whole.

Cost: R x (offset + limit) sort keys and `limit` records, whatever the resources hold
(and a page past the end, after a first round for the totals, nothing more).
Each resource's part is read atomically; two resources are read moments apart.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEEP_PAGE = 1_000  # items before a page's end from which the totals are read first

SortKey = tuple[int, str]
FetchKeys = Callable[[str, int], Awaitable[tuple[int, list[SortKey]]]]
"""(owner id, how many) -> (total, sort keys of its first matches)."""
FetchItems = Callable[[str, int, int], Awaitable[tuple[int, list[T]]]]
"""(owner id, offset, limit) -> (total, items)."""


async def merged_page(
    owner_ids: list[str],
    offset: int,
    limit: int,
    fetch_keys: FetchKeys,
    fetch_items: FetchItems[T],
    sort_key: Callable[[T], SortKey],
) -> tuple[list[T], int]:
    """Items [offset, offset + limit) of the owners' lists merged by sort key, and the total."""
    if not owner_ids:
        return [], 0
    if len(owner_ids) == 1:
        total, items = await fetch_items(owner_ids[0], offset, limit)
        return items, total
    if offset + limit > DEEP_PAGE:
        # A page far down (or past the end): learn the totals first, so that a page
        # past the end costs nothing, and one before it only what lies before it.
        totals = await asyncio.gather(*(fetch_keys(owner, 0) for owner in owner_ids))
        total = sum(count for count, _ in totals)
        if offset >= total:
            return [], total
    heads = await asyncio.gather(*(fetch_keys(owner, offset + limit) for owner in owner_ids))
    total = sum(count for count, _ in heads)
    streams = [
        [(key, owner) for key in keys] for owner, (_, keys) in zip(owner_ids, heads, strict=True)
    ]
    first = list(itertools.islice(heapq.merge(*streams), offset + limit))
    before = Counter(owner for _, owner in first[:offset])
    on_page = Counter(owner for _, owner in first[offset:])
    parts = await asyncio.gather(
        *(fetch_items(owner, before[owner], count) for owner, count in on_page.items())
    )
    items = sorted((item for _, part in parts for item in part), key=sort_key)
    return items[:limit], total
