"""The state log on the real broker: records written are read back in order, through
the reader's own record (not the end offset the broker reports)."""

from __future__ import annotations

from schemas.state import CeilingRaised, CounterKind, RestoreStarted, RoomStateSet
from waitingroom.statelog import StateLog


async def test_records_come_back_in_order_up_to_the_readers_own(ledger: StateLog) -> None:
    written = [CeilingRaised("demo", CounterKind.PRE, n) for n in range(1, 30)]
    await ledger.write(*written[:10])
    await ledger.write(*written[10:])
    first = [r async for r in ledger.read_through(RestoreStarted("one", 1.0))]
    assert first == written
    await ledger.write(RoomStateSet("demo", "paused"))
    second = [r async for r in ledger.read_through(RestoreStarted("two", 2.0))]
    assert second == [*written, RestoreStarted("one", 1.0), RoomStateSet("demo", "paused")]
