"""Click-to-held: from a visitor's booking POST to ``held`` on the booking's event stream.

One probe is the page's path: join a room (with the load-test key: no proof of work,
no limit), wait until admitted, then the timed part: ``POST
/api/rooms/{room}/bookings`` (202: the Book is on the log) and ``GET
/api/bookings/{id}/events`` until the booking's first answer arrives (held, or
rejected once sold out): the gateway's producer, the allocator's consumer, its
decision, its producer, and the gateway's event consumer. The probe then cancels
its hold, so that probes do not use up the campaign.

Probes run in a room of their own (``PROBE_ROOM``, open, admitting at once) on the
campaign under test, so that at a rehearsal's peak (``loadtest.rehearse`` probes
once a second through the storm) they measure the booking path, not the line.

Idle, on a stack of its own (redis-server, Tansu, allocator, admitter, one gateway
as processes, as ``tests.harness`` starts them), from the repository's root:

    python -m loadtest.bench_click_to_held [--rounds 200]

or against a running fairq (``make up``: its operator key and a campaign name):

    python -m loadtest.bench_click_to_held --host http://127.0.0.1:8080 --campaign demo

It prints the probes' percentiles and, when it knows the log (its own stack's, or
``KAFKA_BOOTSTRAP`` and ``FAIRQ_TOPIC_PREFIX`` as the processes have them), where their
time went: each probe cut at its records' timestamps (``loadtest.click_path``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from fairq.config import Connections, Topics
from loadtest.timeline import percentile

LOADTEST_HEADER = "X-Fairq-Loadtest-Key"  # as gateway.ratelimit.LOADTEST_HEADER
PROBE_ROOM = "click-to-held-probe"
ADMIT_POLL_S = 0.05
ANSWER_TIMEOUT_S = 30.0


class SoldOut(Exception):
    """The campaign has no pair left: nothing more to probe."""


@dataclass(frozen=True, slots=True)
class Probe:
    at: float  # wall clock of the click
    ms: float  # click to the first answer on the stream
    state: str  # that answer: held, rejected, waitlisted
    booking_id: str = ""  # to find it in the log (loadtest.click_path)
    accepted_ms: float = math.nan  # click to the 202 (the Book acknowledged by the broker)


def _auth(token: str, loadtest_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", LOADTEST_HEADER: loadtest_key}


async def open_probe_room(
    http: aiohttp.ClientSession, base: str, operator_key: str, campaign: str
) -> None:
    """The probes' room on ``campaign``: open now, admitting anyone at once."""
    room = {"campaign": campaign, "opens_in_s": 0, "rate_per_s": 1000, "max_active": 100_000}
    headers = {"Authorization": f"Bearer {operator_key}"}
    async with http.put(f"{base}/api/admin/rooms/{PROBE_ROOM}", json=room, headers=headers) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"the probe room: {r.status} {await r.text()}")


async def admitted_token(http: aiohttp.ClientSession, base: str, loadtest_key: str) -> str:
    """A booking token of the probe room (join, then poll until admitted)."""
    room = f"{base}/api/rooms/{PROBE_ROOM}"
    async with http.post(f"{room}/join", headers={LOADTEST_HEADER: loadtest_key}) as r:
        body: dict[str, Any] = await r.json()
        if r.status != 200:
            raise RuntimeError(f"join: {r.status} {body}")
    ticket = body["ticket"]
    while body.get("state") != "admitted":
        await asyncio.sleep(ADMIT_POLL_S)
        async with http.get(f"{room}/status", headers=_auth(ticket, loadtest_key)) as r:
            body = await r.json()
        if body.get("state") == "sold_out":
            raise SoldOut()
        if body.get("state") not in ("waiting", "prequeue", "admitted"):
            raise RuntimeError(f"the probe was not admitted: {body}")
    return str(body["booking_token"])


async def click_to_held(
    http: aiohttp.ClientSession, base: str, county: str, loadtest_key: str
) -> Probe:
    """One probe (see the module's docstring); cancels its hold afterwards."""
    token = await admitted_token(http, base, loadtest_key)
    headers = _auth(token, loadtest_key)
    at, started = time.time(), time.perf_counter()
    url = f"{base}/api/rooms/{PROBE_ROOM}/bookings"
    async with http.post(url, json={"county": county}, headers=headers) as r:
        body = await r.json()
        if r.status != 202:
            raise RuntimeError(f"book: {r.status} {body}")
    accepted_ms = (time.perf_counter() - started) * 1000
    booking = f"{base}/api/bookings/{body['booking_id']}"
    state = await first_answer(http, f"{booking}/events", headers)
    ms = (time.perf_counter() - started) * 1000
    if state == "held":
        async with http.post(f"{booking}/cancel", headers=headers) as r:
            if r.status != 200:
                raise RuntimeError(f"cancel: {r.status} {await r.text()}")
    return Probe(at, ms, state, str(body["booking_id"]), accepted_ms)


async def first_answer(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> str:
    """The booking's first state other than pending on its event stream."""
    timeout = aiohttp.ClientTimeout(total=ANSWER_TIMEOUT_S)
    async with http.get(url, headers=headers, timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"events: {r.status} {await r.text()}")
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data:") and '"state"' in line:
                state = json.loads(line[5:]).get("state")
                if state != "pending":
                    return str(state)
    raise RuntimeError("the event stream ended before an answer")


def summary(probes: list[Probe]) -> str:
    ms = [p.ms for p in probes]
    states = sorted({p.state for p in probes})
    return (
        f"click-to-held over {len(ms)} probes: p50 {percentile(ms, 50):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms (answers: {', '.join(states)})"
    )


async def run_probes(
    http: aiohttp.ClientSession, base: str, county: str, loadtest_key: str, rounds: int
) -> list[Probe]:
    return [await click_to_held(http, base, county, loadtest_key) for _ in range(rounds)]


async def against(
    base: str,
    operator_key: str,
    loadtest_key: str,
    campaign: str,
    rounds: int,
    log: Connections | None,
) -> None:
    """The probes' summary, and with ``log`` (the deployment's broker and topics) where
    their time went (``loadtest.click_path``)."""
    from loadtest.click_path import breakdown, read_cuts, table  # it imports Probe

    async with aiohttp.ClientSession() as http:
        await open_probe_room(http, base, operator_key, campaign)
        async with http.get(f"{base}/api/rooms/{PROBE_ROOM}") as r:
            county = (await r.json())["counties"][0]["id"]
        probes = await run_probes(http, base, county, loadtest_key, rounds)
    print(summary(probes), flush=True)
    if log is not None:
        topics = log.topics
        cuts = await read_cuts(log.kafka_bootstrap, topics.commands, topics.events, probes)
        print(table(breakdown(cuts)), flush=True)


async def on_own_stack(rounds: int) -> None:
    """Redis, the broker, allocator, admitter and one gateway of its own, idle."""
    from fairq.config import Connections, Kafka, Topics
    from fairq.demo import small_campaign
    from fairq.devservices import kafka_broker, redis_server
    from fairq.topics import ensure_topics
    from tests.conftest import TEST_PARTITIONS
    from tests.harness import LOADTEST_KEY, OPERATOR_KEY, running_system

    with (
        tempfile.TemporaryDirectory(prefix="fairq-click-to-held-") as tmp,
        redis_server() as redis,
        kafka_broker() as kafka,
    ):
        prefix = f"c2h{uuid.uuid4().hex[:8]}-"
        topics = Topics(commands=f"{prefix}booking-commands", events=f"{prefix}booking-events")
        await ensure_topics(Kafka(kafka.url), topics, partitions=TEST_PARTITIONS)
        connections = Connections(redis_url=redis.url, kafka_bootstrap=kafka.url, topics=topics)
        with running_system(connections, Path(tmp), gateways=1) as system:
            base = system.gateways[0]
            doc = small_campaign(dt.date.today() + dt.timedelta(days=2), counties=1, places=100)
            headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
            async with aiohttp.ClientSession() as http:
                url = f"{base}/api/admin/campaigns/probe"
                async with http.put(url, json=doc, headers=headers) as r:
                    if r.status != 201:
                        raise RuntimeError(f"campaign: {r.status} {await r.text()}")
            await against(base, OPERATOR_KEY, LOADTEST_KEY, "probe", rounds, connections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--host", help="a running fairq (default: start one, idle)")
    parser.add_argument("--campaign", default="demo", help="with --host: the campaign to book")
    args = parser.parse_args()
    if args.host:
        operator_key = os.environ.get("FAIRQ_OPERATOR_KEY", "")
        loadtest_key = os.environ.get("FAIRQ_LOADTEST_KEY", "")
        if not operator_key or not loadtest_key:
            parser.error("--host needs FAIRQ_OPERATOR_KEY and FAIRQ_LOADTEST_KEY set")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")  # for the breakdown
        log = Connections("", bootstrap, Topics.from_env(os.environ)) if bootstrap else None
        base = args.host.rstrip("/")
        coro = against(base, operator_key, loadtest_key, args.campaign, args.rounds, log)
        asyncio.run(coro)
    else:
        asyncio.run(on_own_stack(args.rounds))


if __name__ == "__main__":
    main()
