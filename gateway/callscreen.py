"""The call-center screen: ``GET /callcenter``, and the agents' sign-in.

One page (``static/callcenter.html``: its style and script inline, allowed by their
hashes, and the two files it shares with the operator console from this origin,
``/assets/signedin.js`` and ``.css``; nothing else) on which an agent, signed in once with their
key (``/api/agent/session``, ``gateway.sessions``), serves callers through the same
routes as scripts (``/api/callcenter/...``, ``gateway.callcenter``): the same
inventory and the same rules as online. Every answer is shown in plain words from
the page's one table of texts.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.contracts import HTML, operation
from gateway.frontdoor import Access, add_routes
from gateway.page import html_page, page_response
from gateway.sessions import AGENT, session_routes

PAGE_PATH = Path(__file__).parent / "static" / "callcenter.html"

routes = web.RouteTableDef()


@routes.get("/callcenter")
@operation("the call-center screen", {200: HTML}, backend=False, tag="pages")
async def get_call_screen(request: web.Request) -> web.Response:
    return page_response(html_page(PAGE_PATH, "'self'"))


def install(app: web.Application) -> None:
    add_routes(app, routes, Access.PUBLIC)
    add_routes(app, session_routes(AGENT), Access.PUBLIC)  # their own checks
