"""The launch rehearsal (``loadtest/launchday.py``) run by locust against the real system.

Locust runs in a subprocess (it patches the standard library with gevent, which must
not happen in the test process). The gateway limits every client address hard, so
the run only passes if the rehearsal sends the load-test key; the room asks for a
proof of work, and there are fewer pairs than visitors, so the visits see the
pre-queue, admission, holds, confirmations, cancellations, sold out and the waitlist.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fairq.config import Connections
from fairq.demo import small_campaign
from fairq.devservices import free_port
from fairq.processes import running, spawn, wait_http_ready
from tests.conftest import TEST_SESSION_TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtest" / "launchday.py"
OPERATOR_KEY = "rehearsal-operator-key-0123456789"
LOADTEST_KEY = "rehearsal-loadtest-key-0123456789"
PLACES = 4  # per center: 2 counties x 1 center x 4 = 8 pairs
USERS = 12
JOURNEYS = 24  # three visitors per pair
LOCUST_TIMEOUT_S = 150  # its own -t is 90 s; --journeys ends it well before
EXPECTED_NAMES = {"challenge", "join", "status", "book", "booking", "confirm", "move"}


@pytest.fixture
def gateway(connections: Connections, tmp_path: Path) -> Iterator[str]:
    """Allocator, admitter and one gateway as processes, with strict per-client limits."""
    prefix = connections.topics.commands.removesuffix("booking-commands")
    port = free_port()
    env = dict(os.environ) | {
        "REDIS_URL": connections.redis_url,
        "KAFKA_BOOTSTRAP": connections.kafka_bootstrap,
        "FAIRQ_TOPIC_PREFIX": prefix,
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_SIGNING_KEYS": "k1:rehearsal-signing-secret-0123456789",
        "FAIRQ_ALLOCATOR_GROUP": f"alloc-{uuid.uuid4().hex[:8]}",
        "FAIRQ_ADMITTER_GROUP": f"admit-{uuid.uuid4().hex[:8]}",
        "FAIRQ_TICK_INTERVAL_S": "0.2",
        "FAIRQ_ALLOCATOR_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_ADMITTER_SESSION_TIMEOUT_MS": str(TEST_SESSION_TIMEOUT_MS),
        "FAIRQ_REFRESH_S": "0.1",
        "FAIRQ_HTTP_PORT": str(port),
        "FAIRQ_GATEWAY_WORKERS": "1",  # one process: its per-client limits are the ones
        "FAIRQ_JOIN_RATE_PER_S": "0.1",
        "FAIRQ_JOIN_BURST": "1",
        "FAIRQ_STATUS_RATE_PER_S": "0.1",
        "FAIRQ_STATUS_BURST": "1",
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
    }
    components = [spawn(name, name, env, tmp_path) for name in ("allocator", "admitter", "gateway")]
    with running(components):
        url = f"http://127.0.0.1:{port}"
        wait_http_ready(components[-1], f"{url}/readyz")
        yield url


def op() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_KEY}"}


async def prepare(http: aiohttp.ClientSession, url: str) -> None:
    first_day = dt.date.today() + dt.timedelta(days=2)
    campaign = small_campaign(first_day, counties=2, places=PLACES)
    async with http.put(f"{url}/api/admin/campaigns/camp", json=campaign, headers=op()) as r:
        assert r.status == 201, await r.text()
    # Opens a few seconds after locust starts: the first visitors join the pre-queue.
    room = {
        "campaign": "camp",
        "opens_in_s": 4,
        "rate_per_s": 50,
        "max_active": 100,
        "pow_difficulty": 8,
    }
    async with http.put(f"{url}/api/admin/rooms/room", json=room, headers=op()) as r:
        assert r.status == 201, await r.text()


REHEARSAL_ARGS = (
    *("-u", str(USERS), "-r", str(USERS), "-t", "90s", "--journeys", str(JOURNEYS)),
    *("--room", "room", "--code-share", "0.5", "--confirm-share", "0.7"),
    *("--poll-s", "0.3", "--booking-poll-s", "0.2", "--think-s", "0.2"),
    *("--waitlist-share", "1", "--waitlist-wait-s", "2", "--move-share", "1"),
)


async def run_locust(url: str, out: Path, *args: str) -> tuple[int, str]:
    """Locust headless on the rehearsal, its stats and outcomes written to ``out``."""
    command = [
        *("-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary", "-H", url),
        *("--json-file", str(out / "stats"), "--outcomes-json", str(out / "outcomes.json")),
        *args,
    ]
    env = dict(os.environ) | {
        "FAIRQ_OPERATOR_KEY": OPERATOR_KEY,
        "FAIRQ_LOADTEST_KEY": LOADTEST_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command,
        env=env,
        cwd=out,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), LOCUST_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"locust did not finish within {LOCUST_TIMEOUT_S}s")
    return await process.wait(), output.decode(errors="replace")


async def confirmed_in_system(http: aiohttp.ClientSession, url: str) -> dict[str, list[str]]:
    """Booking id -> the doses' slots, from the operator's appointment export."""
    async with http.get(f"{url}/api/admin/campaigns/camp/appointments.csv", headers=op()) as r:
        assert r.status == 200, await r.text()
        rows = list(csv.DictReader(io.StringIO(await r.text())))
    by_booking: dict[str, list[str]] = {}
    for row in rows:
        by_booking.setdefault(row["booking_id"], []).append(
            f"{row['center']}|{row['vaccine']}|{row['start']}"
        )
    return by_booking


async def test_rehearsal_books_through_the_real_system(gateway: str, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        await prepare(http, gateway)
        code, output = await run_locust(gateway, tmp_path, *REHEARSAL_ARGS)
        assert code == 0, output[-6000:]

        stats = json.loads((tmp_path / "stats.json").read_text())
        used = {s["name"] for s in stats if s["num_requests"] > 0}
        assert not EXPECTED_NAMES - used, used
        assert sum(s["num_failures"] for s in stats) == 0, output[-6000:]

        outcomes = json.loads((tmp_path / "outcomes.json").read_text())
        counts: dict[str, int] = outcomes["counts"]
        assert outcomes["problems"] == [] and outcomes["unexpected_failures"] == 0
        assert counts["held"] >= 1 and counts["confirmed"] >= 1, counts
        assert counts["order checked (tickets)"] >= 1, counts
        assert counts["proofs of work solved"] >= 1, counts
        assert counts.get("joined with a code", 0) >= 1, counts
        assert counts["admitted"] + counts.get("told sold out", 0) >= JOURNEYS // 2, counts
        moves = {k: n for k, n in counts.items() if k.startswith(("moved", "move "))}
        assert sum(moves.values()) == counts["confirmed"], counts  # each one answered
        assert "fairq rehearsal outcomes:" in output

        # The system's own view: exactly the bookings the rehearsal confirmed, whole pairs,
        # no slot beyond its capacity.
        system = await confirmed_in_system(http, gateway)
        assert set(system) == set(outcomes["confirmed_ids"]), (system, outcomes)
        assert all(len(slots) == 2 for slots in system.values()), system
        per_slot = Counter(s for slots in system.values() for s in slots)
        assert max(per_slot.values()) <= PLACES, per_slot

        # With a key the gateway does not know, the limits refuse it: a failed run.
        wrong = tmp_path / "wrong-key"
        wrong.mkdir()
        args = ("-u", "4", "-r", "4", "-t", "60s", "--journeys", "4", "--room", "room")
        code, output = await run_locust(gateway, wrong, *args, "--loadtest-key", "x" * 20)
        assert code == 1, output[-6000:]
        stats = json.loads((wrong / "stats.json").read_text())
        assert sum(s["num_failures"] for s in stats if s["name"] == "join") >= 1, stats


CHECKS = textwrap.dedent(
    """
    import json
    from loadtest.launchday import TicketSeen, order_inversions, pair_problems

    room = {
        "centers": [{"id": "c1", "county": "k1"}, {"id": "c2", "county": "k2"}],
        "vaccines": [{"id": "v", "min_days": 21, "max_days": 42}],
    }
    def pair(d2_center="c1", d2_day="2026-12-22", hour="09"):
        return {"booking_id": "b", "appointments": [
            {"dose": 1, "center": "c1", "vaccine": "v", "start": f"2026-12-01T{hour}:00:00+01:00"},
            {"dose": 2, "center": d2_center, "vaccine": "v", "start": f"{d2_day}T09:00:00+01:00"},
        ]}
    out = {
        "whole": pair_problems(pair(), {"county": "k1"}, room),
        "other_center": pair_problems(pair(d2_center="c2"), {"county": "k1"}, room),
        "too_late": pair_problems(pair(d2_day="2027-01-20"), {"county": "k1"}, room),
        "wrong_county": pair_problems(pair(), {"county": "k2"}, room),
        "before_earliest": pair_problems(pair(), {"county": "k1", "earliest": "2026-12-02"}, room),
        "evening": pair_problems(pair(), {"county": "k1", "time_of_day": "evening"}, room),
    }
    # post tickets 1 and 3 admitted (places 11, 13: the pre-queue holds 10), then
    # post ticket 2 told waiting 5 s after ticket 3 was seen admitted: an inversion.
    a = TicketSeen("post", 1, place=11, admitted_seen_s=100.0)
    b = TicketSeen("post", 3, place=13, admitted_seen_s=101.0)
    late = TicketSeen("post", 2, waiting_sent_s=106.0)
    prompt = TicketSeen("post", 2, waiting_sent_s=101.5)
    pre = TicketSeen("pre", 7, waiting_sent_s=106.0)
    out["inversion"] = order_inversions([a, b, late], 2.0)
    out["within_slack"] = order_inversions([a, b, prompt], 2.0)
    out["pre_behind_post"] = order_inversions([a, pre], 2.0)
    out["same_place"] = order_inversions([a, TicketSeen("pre", 1, place=11)], 2.0)
    print(json.dumps(out))
    """
)


def test_client_side_checks_catch_what_they_are_for() -> None:
    """The checks themselves, on made-up observations (in a subprocess: locust patches)."""
    done = subprocess.run(
        [sys.executable, "-c", CHECKS], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["whole"] == []
    for broken in ("other_center", "too_late", "wrong_county", "before_earliest", "evening"):
        assert len(out[broken]) == 1, (broken, out[broken])
    assert out["inversion"][0] == 1 and len(out["inversion"][1]) == 1, out["inversion"]
    assert out["within_slack"] == [1, []]
    assert out["pre_behind_post"][0] == 1 and len(out["pre_behind_post"][1]) == 1
    assert any("place 11" in p for p in out["same_place"][1]), out["same_place"]
