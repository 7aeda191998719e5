"""The OpenAPI document lists exactly the routes the gateway serves."""

from __future__ import annotations

from fairq.config import Connections, Topics
from gateway.app import create_app
from gateway.openapi import openapi_document
from tests.gateway.conftest import make_settings


def served_routes() -> set[tuple[str, str]]:
    connections = Connections("redis://127.0.0.1:1/0", "127.0.0.1:1", Topics())
    app = create_app(make_settings(connections))
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }


def test_document_matches_router() -> None:
    assert documented_routes() == served_routes()


def test_every_operation_documents_its_answers() -> None:
    for path, operations in openapi_document()["paths"].items():
        for method, op in operations.items():
            assert op["responses"], (method, path)
            codes = {int(c) for c in op["responses"]}
            assert any(200 <= c < 300 for c in codes), (method, path)
            if "{" in path or "security" in op:
                assert any(400 <= c < 500 for c in codes), (method, path)
