"""The storm's judge of HTTP answers: success, a 4xx with a JSON error, or a 503 with
``Retry-After`` and a JSON error; anything else is a problem."""

from __future__ import annotations

import pytest

from tests.storm import contract_problem

ERROR = b'{"error": {"code": "unavailable", "message": "try again"}}'


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, {}, b'{"state": "held"}'),
        (202, {}, b""),
        (409, {}, ERROR),
        (429, {"Retry-After": "1"}, ERROR),
        (503, {"Retry-After": "2"}, ERROR),
    ],
)
def test_answers_in_the_contract(status: int, headers: dict[str, str], body: bytes) -> None:
    assert contract_problem(status, headers, body) is None


@pytest.mark.parametrize(
    ("status", "headers", "body", "why"),
    [
        (500, {}, ERROR, "500"),
        (502, {"Retry-After": "2"}, ERROR, "502"),
        (503, {}, ERROR, "without Retry-After"),
        (503, {"Retry-After": "2"}, b"Service Unavailable", "without a JSON error body"),
        (400, {}, b"400: Bad Request", "without a JSON error body"),
        (404, {}, b'{"error": "not found"}', "without a JSON error body"),
        (409, {}, b'{"error": {"code": 1, "message": "x"}}', "without a JSON error body"),
    ],
)
def test_answers_outside_the_contract(
    status: int, headers: dict[str, str], body: bytes, why: str
) -> None:
    problem = contract_problem(status, headers, body)
    assert problem is not None and why in problem
