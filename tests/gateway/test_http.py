"""The one place a presented secret is compared with the keys."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from gateway.contracts import TICKET_ELSEWHERE
from gateway.errors import ApiError, Code
from gateway.http import bearer, holder_of, key_holder

KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-ünïcode-0123456789"}


def refused(presented: str, keys: dict[str, str] = KEYS) -> tuple[int, str]:
    with pytest.raises(ApiError) as e:
        holder_of(presented, keys, "agent")
    return e.value.status, e.value.code


def test_the_holder_of_a_key_is_named() -> None:
    assert holder_of("alice-key-0123456789", KEYS, "agent") == "alice"
    assert holder_of("bob-key-ünïcode-0123456789", KEYS, "agent") == "bob"
    request = make_mocked_request("GET", "/", headers={"Authorization": "Bearer " + KEYS["bob"]})
    assert key_holder(request, KEYS, "agent") == "bob"


def test_a_token_no_key_can_be_is_401_a_wrong_one_403() -> None:
    assert refused("\udcff\udcfe") == (401, "unauthorized")  # raw \xff\xfe, as aiohttp keeps it
    assert refused("alice-key-012345678") == (403, "forbidden")
    with pytest.raises(ApiError) as none:
        key_holder(make_mocked_request("GET", "/"), KEYS, "agent")
    assert (none.value.status, none.value.code) == (401, "unauthorized")


def test_a_key_configured_with_undecodable_bytes_refuses_without_failing() -> None:
    odd = {"carol": "carol-key-\udcff-0123456789"}  # as os.environ decodes a raw \xff
    assert refused("carol-key-x-0123456789", odd) == (403, "forbidden")


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/s?ticket=q", {"Authorization": "Bearer h", "Cookie": "fairq_ticket=c"}, "h"),
        ("/s?ticket=q", {"Cookie": "fairq_ticket=c"}, "q"),  # the places in the order given
        ("/s", {"Cookie": "fairq_ticket=c"}, "c"),
        ("/s?token=t", {}, None),  # a place the route does not take
        ("/s?ticket=", {}, None),  # empty
    ],
)
def test_a_credential_comes_from_the_header_else_the_places_the_route_names(
    path: str, headers: dict[str, str], expected: str | None
) -> None:
    request = make_mocked_request("GET", path, headers=headers)
    if expected is None:
        with pytest.raises(ApiError) as raised:
            bearer(request, *TICKET_ELSEWHERE)
        assert raised.value.code == Code.UNAUTHORIZED
    else:
        assert bearer(request, *TICKET_ELSEWHERE) == expected
