"""The waiting-room page: served as one self-contained HTML file with the hooks it needs."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.page import PAGE_PATH, content_security_policy
from gateway.state import GATEWAY
from tests.gateway.conftest import create_campaign, create_room, operator
from waitingroom.pow import solve

Client = TestClient[Any, Any]

HOOKS = (
    'id="join-form"',
    'id="access-code"',
    'id="book-form"',
    'id="county"',
    'id="center"',
    'id="earliest"',
    'id="time-of-day"',
    'value="morning"',
    'value="afternoon"',
    'value="evening"',
    'id="confirm-button"',
    'id="cancel-button"',
    'id="identity-key"',
    "identity_key",
    'id="move-button"',
    "/move",
    'id="hold-countdown"',
    'aria-live="polite"',
    "fairqPow.solve",
    "crypto.subtle",
    "localStorage",
    "new EventSource",
    '"/challenge"',
    '"/join"',
    '"/events?ticket="',
    '"/status"',
    '"/bookings"',
    "/api/bookings/",
    '"/waitlist"',
    'id="waitlist"',
    "waitlisted",
    "offered",
    "sold_out",
)


async def test_the_page_is_served_for_a_room(client: Client, first_day: dt.date) -> None:
    await create_campaign(client, first_day)
    await create_room(client)
    response = await client.get("/rooms/room")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    html = await response.text()
    for hook in HOOKS:
        assert hook in html, hook
    csp = response.headers["Content-Security-Policy"]
    assert csp == content_security_policy(html)
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/]+=*'", csp)
    assert "connect-src 'self'" in csp and "default-src 'none'" in csp


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = PAGE_PATH.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<script>") == html.count("</script>") == 1
    assert "<script src" not in html and "<link" not in html


async def test_unknown_rooms_have_no_page(client: Client) -> None:
    response = await client.get("/rooms/nope")
    assert (response.status, (await response.json())["error"]["code"]) == (404, "unknown_room")


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed; the page's solver is not run")
@pytest.mark.parametrize("web_crypto", ["true", "false", "undefined"])
def test_the_pages_solver_finds_what_python_finds(web_crypto: str) -> None:
    """The page's script, run by node: the same first solution as waitingroom.pow.solve."""
    assert NODE is not None
    html = PAGE_PATH.read_text(encoding="utf-8")
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    probe = (
        "const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');\n"
        "(async () => {\n"
        "  console.log(hex(fairqPow.sha256(new TextEncoder().encode('abc'))));\n"
        "  console.log(hex(fairqPow.sha256(new Uint8Array(119))));\n"
        f"  console.log(await fairqPow.solve('example-challenge', 12, null, {web_crypto}));\n"
        f"  console.log(await fairqPow.solve('k1.eyJ0IjoicG93In0.sig', 9, null, {web_crypto}));\n"
        "})();\n"
    )
    out = subprocess.run(
        [NODE, "-e", script + probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out[0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert out[1] == hashlib.sha256(bytes(119)).hexdigest()  # padding spills into a 2nd block
    assert out[2] == solve("example-challenge", 12) == "1973"
    assert out[3] == solve("k1.eyJ0IjoicG93In0.sig", 9)


@pytest.mark.skipif(NODE is None, reason="node is not installed; the page's script is not run")
@pytest.mark.usefixtures("allocator", "admitter")
async def test_the_page_takes_a_visitor_from_joining_to_a_confirmed_pair(
    client: Client, first_day: dt.date, tmp_path: Path
) -> None:
    """The page's own script, in node with a fake DOM, against this gateway (polling)."""
    assert NODE is not None
    await create_campaign(client, first_day)
    await create_room(client, opens_in_s=0, pow_difficulty=6)
    html = PAGE_PATH.read_text(encoding="utf-8")
    script = tmp_path / "page.js"
    script.write_text(html.split("<script>", 1)[1].split("</script>", 1)[0], encoding="utf-8")
    harness = Path(__file__).with_name("page_harness.js")
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(harness),
        str(script),
        str(client.make_url("/")),
        "room",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    seen = json.loads(out)
    assert seen["admitted"] == "It is your turn"
    assert seen["counties"] == ["", "county-1", "county-2"]
    assert seen["centers"] == ["", "county-1-center-1"]
    assert (seen["held"], seen["appointments"]) == ("Held for you: please confirm", 2)
    assert seen["countdown"].startswith("Held for another ")
    assert seen["buttons"] == [False, False]  # neither hidden
    assert seen["identityKeyField"] is False  # the confirm carried the typed identity key:
    claims = [k async for k in client.app[GATEWAY].redis.scan_iter("*identity:key:*")]
    assert len(claims) == 1
    assert (seen["confirmed"], seen["reloaded"]) == ("Booked", "Booked")
    assert seen["reference"].startswith("Reference: bk_")
    assert (seen["moveButton"], seen["moveHeading"]) == (False, "Change your appointments")
    assert (seen["movedState"], seen["movedTo"], seen["moves"]) == (
        "Booked",
        ["county-2-center-1"],
        1,
    )
    stats = await (await client.get("/api/admin/rooms/room/stats", headers=operator())).json()
    assert (stats["joined"], stats["admitted"]) == (1, 1)  # one join, for one solved puzzle
