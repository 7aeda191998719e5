"""Sending operator commands to the allocator and collecting its answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.errors import ApiError
from gateway.producer import CommandNotAccepted
from gateway.state import Gateway
from schemas.commands import Command
from schemas.events import Event

RETRY_AFTER_S = "2"


async def send_commands(
    gw: Gateway, keyed: Sequence[tuple[str, Command]], wait_s: float
) -> list[Event]:
    """Put commands on the log (key first) and wait up to ``wait_s`` for their answers.

    Returns the answers that came in time, in command order.
    """
    ids = [command.command_id for _, command in keyed]
    with gw.views.expect(ids) as futures:
        try:
            for key, command in keyed:
                await gw.commands.send(key, command)
        except CommandNotAccepted as e:
            raise ApiError(
                503,
                "unavailable",
                f"the commands were not accepted: {e}",
                headers={"Retry-After": RETRY_AFTER_S},
            ) from e
        if wait_s > 0 and futures:
            await asyncio.wait(futures.values(), timeout=wait_s)
        return [f.result() for f in (futures[i] for i in ids) if f.done()]
