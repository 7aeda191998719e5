"""Reading a campaign's public description (stored as JSON by the operator's PUT)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import ApiError, Code
from gateway.state import Gateway
from waitingroom import keys
from waitingroom.durable import state_lost
from waitingroom.errors import StateRestoring

Public = Mapping[str, Any]


async def load_public(gw: Gateway, name: str) -> dict[str, Any]:
    """The campaign's public description; 404 when there is no such campaign (503 while
    Redis has lost it and it is not restored from the state log yet)."""
    raw = await gw.redis.get(keys.campaign(name))
    if raw is None:
        if await state_lost(gw.redis):
            raise StateRestoring(name)
        raise ApiError(Code.UNKNOWN_CAMPAIGN, f"there is no campaign {name!r}")
    data: dict[str, Any] = orjson.loads(raw)
    return data


def county_ids(public: Public | None) -> set[str]:
    return {c["id"] for c in (public or {}).get("counties", [])}


def center_county(public: Public | None, center: str) -> str | None:
    for c in (public or {}).get("centers", []):
        if c["id"] == center:
            return str(c["county"])
    return None
