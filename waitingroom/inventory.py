"""What the waiting room knows of a campaign's inventory (``keys.campaign_inventory``).

The hash holds, per county, the pairs left from the allocator's latest summary
(``pairs:<county>``, with its time ``at:<county>``, written by
``scripts.UPDATE_INVENTORY``) and a mark for every county inventory was sent to
(``supplied:<county>``, set by the gateway before it sends a delivery). A county
neither supplied nor reported has no inventory: the sold-out verdict does not wait
for it. A supplied county is waited for until its first summary comes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis.asyncio as aioredis

from waitingroom import keys

PAIRS = "pairs:"
SUPPLIED = "supplied:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def pairs_left_of(inventory: Mapping[Any, Any]) -> dict[str, int]:
    """Pairs left per reported county, from the hash (as HGETALL returns it)."""
    fields = {_text(k): _text(v) for k, v in inventory.items()}
    return {k.removeprefix(PAIRS): int(v) for k, v in fields.items() if k.startswith(PAIRS)}


def supplied_of(inventory: Mapping[Any, Any]) -> set[str]:
    """The counties inventory was sent to, from the hash (as HGETALL returns it)."""
    names = (_text(k) for k in inventory)
    return {k.removeprefix(SUPPLIED) for k in names if k.startswith(SUPPLIED)}


def counties_with_inventory(inventory: Mapping[Any, Any]) -> set[str]:
    """Counties the verdict waits for: those reported and those inventory was sent to."""
    return set(pairs_left_of(inventory)) | supplied_of(inventory)


async def note_supplied(redis: aioredis.Redis, campaign: str, counties: Iterable[str]) -> None:
    """Mark ``counties`` as having inventory on its way (call before sending it)."""
    marks: list[str | int] = []
    for county in counties:
        marks += [f"{SUPPLIED}{county}", 1]
    if marks:
        await redis.hset(keys.campaign_inventory(campaign), items=marks)
