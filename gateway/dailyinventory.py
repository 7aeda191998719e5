"""Inventory per county, center and day, asked of the allocator (the console's campaign view).

The gateway's own views have places per county only (the allocator's summaries) and
bookings per center and day; free and reserved places per center and day exist only
in the allocator, which owns the inventory. So the route puts one ReportInventory per
county on the commands topic, keyed by the county (the partition that holds it), and
waits up to ``answer_wait_s`` for the InventoryReports: the table of what came, 202
with the counties still ``missing`` when the allocator is slow. The commands change
nothing: asking again is always safe.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.admin import require_operator
from gateway.bookings import new_command_id
from gateway.campaigns import county_ids, load_public
from gateway.commanding import send_commands
from gateway.contracts import Document, Name, Query, operation
from gateway.errors import ApiError, Code
from gateway.http import json_response
from gateway.readmodel import iso_ms
from gateway.state import Gateway
from schemas.commands import ReportInventory
from schemas.events import InventoryReport

IN_DOUBT = "the questions were sent but the log has not confirmed them all; ask again"

routes = web.RouteTableDef()


def _rows(report: InventoryReport) -> list[dict[str, Any]]:
    """One row per center and day, by center then day."""
    return [
        {"center": center, "day": day, **figures.to_map()}
        for center, days in sorted(report.centers.items())
        for day, figures in sorted(days.items())
    ]


async def daily_inventory(gw: Gateway, campaign: str, counties: list[str]) -> dict[str, Any]:
    """Ask the allocator for each county's places per center and day; what came in time."""
    keyed = [(county, ReportInventory(new_command_id(), campaign, county)) for county in counties]
    answers = await send_commands(gw, keyed, gw.settings.answer_wait_s, in_doubt=IN_DOUBT)
    reports = {a.county: a for a in answers if isinstance(a, InventoryReport)}
    return {
        "campaign": campaign,
        "asked": len(counties),
        "answered": len(reports),
        "missing": [county for county in counties if county not in reports],
        "counties": {
            county: {"at": iso_ms(r.at_ms), "reason": r.reason, "centers": _rows(r)}
            for county, r in sorted(reports.items())
        },
    }


@routes.get("/api/admin/campaigns/{campaign}/inventory/daily")
@operation(
    "places per county, center and day, asked of the allocator"
    " (202: some counties not answered yet)",
    {200: Document, 202: Document},
    Code.UNKNOWN_CAMPAIGN,
    Code.UNKNOWN_COUNTY,
    Code.IN_DOUBT,
    query=(Query("county", Name, "one county (all when absent)"),),
    tag="operators",
)
async def get_daily_inventory(request: web.Request) -> web.Response:
    """Every county of the campaign, or the one ``?county=`` names (400 if it has none)."""
    gw = require_operator(request)
    campaign = request.match_info["campaign"]
    known = county_ids(await load_public(gw, campaign))
    county = request.query.get("county")
    if county is not None and county not in known:
        raise ApiError(Code.UNKNOWN_COUNTY, f"campaign {campaign!r} has no county {county!r}")
    body = await daily_inventory(gw, campaign, [county] if county else sorted(known))
    return json_response(body, status=200 if not body["missing"] else 202)
