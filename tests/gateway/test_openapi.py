"""The OpenAPI document is the router's: every route, its path parameters, its answers."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from playwright.async_api import Browser

from fairq.config import Connections, Topics
from gateway.app import create_app
from gateway.errors import CODES
from gateway.openapi import OPENAPI_JSON
from schemas.events import REASONS
from tests.browser import collect_problems, screenshot
from tests.gateway.conftest import make_settings


def app() -> web.Application:
    connections = Connections("redis://127.0.0.1:1/0", "127.0.0.1:1", Topics())
    return create_app(make_settings(connections))


def document() -> dict[str, Any]:
    return dict(orjson.loads(app()[OPENAPI_JSON]))


def served_routes() -> dict[tuple[str, str], list[str]]:
    """(method, path) of every route, with the names of its path parameters."""
    return {
        (route.method.lower(), route.resource.canonical): re.findall(
            r"\{(\w+)", route.resource.canonical
        )
        for route in app().router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): op
        for path, methods in document()["paths"].items()
        for method, op in methods.items()
    }


def test_every_route_and_path_parameter_is_documented() -> None:
    served = served_routes()
    documented = {
        key: [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
        for key, op in operations().items()
    }
    assert documented == served


def test_every_operation_documents_its_answers() -> None:
    for (method, path), op in operations().items():
        codes = {int(c) for c in op["responses"]}
        assert any(200 <= c < 300 for c in codes), (method, path)
        if "{" in path or "security" in op:
            assert any(400 <= c < 500 for c in codes), (method, path)
        if "security" in op:  # a missing credential is 401, never 403
            unauthorized = op["responses"]["401"]["content"]["application/json"]["schema"]
            assert (
                "unauthorized" in unauthorized["properties"]["error"]["properties"]["code"]["enum"]
            )
        if "requestBody" in op:
            assert {400, 413} <= codes, (method, path)


def test_each_error_status_lists_the_catalogue_codes_of_that_status() -> None:
    for (method, path), op in operations().items():
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            schema = answer["content"]["application/json"]["schema"]
            for code in schema["properties"]["error"]["properties"]["code"]["enum"]:
                refusal = status == "409" and code in REASONS  # the allocator's reasons
                assert refusal or CODES[code].status == int(status), (method, path, code)


def test_the_drift_the_hand_written_document_had_is_gone() -> None:
    ops = operations()
    join = ops["post", "/api/rooms/{room}/join"]
    assert join["requestBody"]["required"] is False
    schemas = document()["components"]["schemas"]
    assert schemas["JoinRequest"]["properties"]["access_code"]["anyOf"][0]["minLength"] == 1
    assert "join" in schemas["TicketStatus"]["properties"]
    assert [a["required"] for a in schemas["BookingRequest"]["anyOf"]] == [["county"], ["center"]]
    status = ops["get", "/api/rooms/{room}/status"]
    assert {"401", "403", "429"} <= set(status["responses"])


def test_the_campaign_document_is_described_field_by_field() -> None:
    body = operations()["put", "/api/admin/campaigns/{campaign}"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    campaign = document()["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"title", "timezone", "vaccines", "counties"} <= set(campaign["properties"])
    assert {"title", "vaccines", "counties"} <= set(campaign["required"])


async def test_the_reference_page_shows_every_operation_under_a_strict_policy(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/api/reference")
    assert response.status == 200 and response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "unsafe" not in policy and "http" not in policy
    page = await response.text()
    assert "<script" not in page and 'src="http' not in page
    for (method, path), op in operations().items():
        assert f'id="{op["operationId"]}"' in page, (method, path)
    assert 'id="schema-TicketStatus"' in page


async def test_the_reference_page_renders_in_a_browser_under_its_policy(
    client: TestClient[Any, Any], browser: Browser
) -> None:
    """Its one inline style is allowed by its hash: Chromium applies it and reports no
    refusal (a changed style with a stale hash would be refused, and logged)."""
    page = await browser.new_page()
    problems: list[str] = []
    collect_problems(page, problems)
    await page.goto(str(client.make_url("/api/reference")))
    await screenshot(page, "api-reference")
    assert problems == []
    margin = await page.evaluate("getComputedStyle(document.body).marginTop")
    assert margin != "8px", "the page's style was not applied (8px is Chromium's default)"
