"""Where click-to-held's time goes: each probe's path cut where the log can see it.

A probe (``loadtest.bench_click_to_held``) knows when it clicked, when the 202 came
back and when the answer came on the booking's event stream. The log adds two
points: the Book command's record timestamp (the gateway's producer takes the record:
``CreateTime``, this machine's clock) and the answer event's (the allocator's producer
takes it). So each probe's click-to-held is cut in three stages on its path, and a
fourth beside it:

- **gateway in**: the click to the Book produced (HTTP, the token, the gateway's work);
- **command hop + allocator**: the Book produced to the answer produced (the gateway
  producer's linger and request, the broker, the allocator's fetch wait, the batch
  the Book came in, the decision);
- **event hop + gateway out**: the answer produced to the answer on the visitor's
  stream (the allocator's outbox and produce request, the broker, the gateway's event
  fetch wait, its event loop, the SSE write);
- beside the path, **produce ack**: the Book produced to the 202 (acks=all).

``breakdown`` gives each stage's p50, p90, p99 and max, and for the slowest probes
(click-to-held at or above the p90) how their time split: which stage takes the tail.
Timestamps are milliseconds; both producers run on this machine (against a remote
deployment the clocks differ and the cut is meaningless).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.bench_click_to_held import Probe
from loadtest.timeline import percentile

STAGES = (
    ("gateway_in_ms", "gateway in: click → Book produced"),
    ("command_hop_ms", "command hop + allocator: Book produced → answer produced"),
    ("event_hop_ms", "event hop + gateway out: answer produced → answer on the stream"),
)
BESIDE = (("ack_ms", "beside: Book produced → 202 (the produce ack)"),)
TAIL_PERCENTILE = 90  # the probes at or above this click-to-held are the tail


@dataclass(frozen=True, slots=True)
class Cut:
    """One probe's click-to-held in stages (ms); they add up to ``total_ms``."""

    at: float
    total_ms: float
    gateway_in_ms: float
    command_hop_ms: float
    event_hop_ms: float
    ack_ms: float


def cut(
    probes: Sequence[Probe], book_ms: Mapping[str, int], answer_ms: Mapping[str, int]
) -> list[Cut]:
    """The probes whose Book and answer the log has (by booking id), cut in stages.

    ``book_ms``: booking id -> its Book record's timestamp; ``answer_ms``: -> its first
    answer event's (held, rejected, waitlisted)."""
    cuts = []
    for p in probes:
        if p.booking_id not in book_ms or p.booking_id not in answer_ms:
            continue
        click_ms = p.at * 1000
        booked, answered = book_ms[p.booking_id] - click_ms, answer_ms[p.booking_id] - click_ms
        cuts.append(
            Cut(
                at=p.at,
                total_ms=p.ms,
                gateway_in_ms=booked,
                command_hop_ms=answered - booked,
                event_hop_ms=p.ms - answered,
                ack_ms=p.accepted_ms - booked,
            )
        )
    return cuts


def breakdown(cuts: Sequence[Cut]) -> list[dict[str, Any]]:
    """Per stage: p50, p90, p99, max over every probe, and its mean share of the tail's
    click-to-held (the probes at or above the ``TAIL_PERCENTILE``)."""
    if not cuts:
        return []
    floor = percentile([c.total_ms for c in cuts], TAIL_PERCENTILE)
    tail = [c for c in cuts if c.total_ms >= floor]
    rows = []
    for key, name in (*STAGES, *BESIDE, ("total_ms", "click-to-held")):
        values = [getattr(c, key) for c in cuts]
        tail_mean = sum(getattr(c, key) for c in tail) / len(tail)
        rows.append(
            {"stage": name, "n": len(values)}
            | {f"p{p}": percentile(values, p) for p in (50, 90, 99)}
            | {"max": max(values), "tail_mean": tail_mean}
        )
    return rows


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """``breakdown``'s rows as text, for a terminal."""
    if not rows:
        return "no probe found in the log"
    head = f"{'stage':<68} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'tail':>7}"
    lines = [head + f"   (ms; tail: mean of the probes >= p{TAIL_PERCENTILE}, n={rows[0]['n']})"]
    for r in rows:
        figures = (r["p50"], r["p90"], r["p99"], r["max"], r["tail_mean"])
        lines.append(f"{r['stage']:<68} " + " ".join(f"{v:7.1f}" for v in figures))
    return "\n".join(lines)


async def read_cuts(
    bootstrap: str, commands: str, events: str, probes: Sequence[Probe]
) -> list[Cut]:
    """The probes cut in stages at their records' timestamps in the log."""
    from aiokafka import AIOKafkaConsumer

    from fairq.topics import partitions_of
    from schemas.commands import Book, decode_command
    from schemas.events import Held, Rejected, Waitlisted, decode_event
    from tests.allocator.eventlogs import read_topic  # bounded in time, every partition

    wanted = {p.booking_id for p in probes}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        counts = {t: len(await partitions_of(consumer, t)) for t in (commands, events)}
    finally:
        await consumer.stop()
    book_ms: dict[str, int] = {}
    for records in (await read_topic(bootstrap, commands, counts[commands])).values():
        for r in records:
            command = decode_command(r.value) if r.value is not None else None
            if isinstance(command, Book) and command.booking_id in wanted:
                book_ms.setdefault(command.booking_id, r.timestamp)
    answer_ms: dict[str, int] = {}
    for records in (await read_topic(bootstrap, events, counts[events])).values():
        for r in records:
            event = decode_event(r.value) if r.value is not None else None
            if isinstance(event, Held | Rejected | Waitlisted) and event.booking_id in wanted:
                answer_ms.setdefault(event.booking_id, r.timestamp)
    return cut(probes, book_ms, answer_ms)
