"""The waiting-room page: ``GET /rooms/{room}`` serves one self-contained HTML file.

The page (``gateway/static/room.html``) has no external assets and no build step:
its style and script are inline, and the Content-Security-Policy allows exactly
those two blocks (by their SHA-256) and requests to this origin, nothing else.
The file is read once per process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

from gateway.contracts import HTML, JS, operation
from gateway.errors import ApiError, Code
from gateway.state import GATEWAY

STATIC = Path(__file__).parent / "static"
PAGE_PATH = STATIC / "room.html"
ASSET_CACHE = "public, max-age=3600"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Asset:
    """A file a page loads from this origin."""

    path: Path
    content_type: str
    missing: str  # what to do when the file is not there


# what both signed-in screens (the operator console, the call-center screen) load
SHARED_ASSETS = {
    "signedin.js": Asset(STATIC / "signedin.js", "text/javascript", "the checkout is incomplete"),
    "signedin.css": Asset(STATIC / "signedin.css", "text/css", "the checkout is incomplete"),
}


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(
    html: str, script_sources: tuple[str, ...] = (), style_sources: tuple[str, ...] = ()
) -> str:
    """Allow the page's own inline script and style blocks (and the given sources, such
    as ``'self'`` for files of this origin), and requests to this origin."""
    blocks: dict[str, list[str]] = {"script": [*script_sources], "style": [*style_sources]}
    for tag, source in _INLINE.findall(html):
        blocks[tag].append(_sha256_source(source))
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {' '.join(blocks['script']) or 'none'}",
            f"style-src {' '.join(blocks['style']) or 'none'}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@cache
def html_page(path: Path, *sources: str) -> Page:
    """A page's HTML and headers, read once per process: its inline script and style
    blocks allowed by their hashes, and ``sources`` (such as ``'self'``) for the files
    it loads; nothing else (``default-src 'none'``)."""
    return page_of(path.read_text(encoding="utf-8"), *sources)


def page_of(html: str, *sources: str) -> Page:
    """``html`` as a page: its headers as ``html_page`` says."""
    return Page(
        body=html.encode("utf-8"),
        headers={
            "Content-Security-Policy": content_security_policy(html, sources, sources),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def page_response(page: Page) -> web.Response:
    return web.Response(
        body=page.body, content_type="text/html", charset="utf-8", headers=page.headers
    )


async def asset_response(assets: Mapping[str, Asset], name: str) -> web.Response:
    """The file ``name`` of ``assets``: 404 for another name, 503 saying what to do when
    it is missing."""
    asset = assets.get(name)
    if asset is None:
        raise ApiError(Code.NOT_FOUND, "no such file")
    if not asset.path.is_file():
        raise ApiError(Code.ASSET_MISSING, f"{asset.path.name} is missing: {asset.missing}")
    return web.Response(
        body=await asyncio.to_thread(asset.path.read_bytes),
        content_type=asset.content_type,
        headers={"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/assets/{asset}")
@operation(
    "a file both signed-in screens load (signedin.js, signedin.css)",
    {200: JS},
    Code.NOT_FOUND,
    Code.ASSET_MISSING,
    backend=False,
    tag="pages",
)
async def shared_asset(request: web.Request) -> web.Response:
    return await asset_response(SHARED_ASSETS, request.match_info["asset"])


@routes.get("/rooms/{room}")
@operation("the waiting-room page", {200: HTML}, Code.UNKNOWN_ROOM, tag="pages")
async def get_room_page(request: web.Request) -> web.Response:
    gw = request.app[GATEWAY]
    name = request.match_info["room"]
    if await gw.rooms.get(name) is None:
        raise ApiError(Code.UNKNOWN_ROOM, f"there is no room {name!r}")
    return page_response(html_page(PAGE_PATH))
