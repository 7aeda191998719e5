"""Sending operator commands to the allocator and collecting its answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.errors import ApiError, Code
from gateway.producer import CommandNotAccepted
from gateway.state import Gateway
from schemas.commands import Command
from schemas.events import Event

RETRY_AFTER_S = "2"
INVENTORY_IN_DOUBT = (
    "the commands were sent but the log has not confirmed them all: some may be"
    " applied. The same campaign document, a delivery with its delivery_id and a"
    " reserve can be sent again safely; a delivery without a delivery_id would"
    " add its places again"
)


async def send_commands(
    gw: Gateway,
    keyed: Sequence[tuple[str, Command]],
    wait_s: float,
    *,
    in_doubt: str = INVENTORY_IN_DOUBT,
) -> list[Event]:
    """Put commands on the log (key first) and wait up to ``wait_s`` for their answers.

    Returns the answers that came in time, in command order. ``in_doubt`` is what the
    503 says when the log may hold only some of them (what sending again would do).
    """
    ids = [command.command_id for _, command in keyed]
    with gw.views.expect(ids) as futures:
        try:
            for key, command in keyed:
                await gw.commands.send(key, command)
        except CommandNotAccepted as e:
            if not e.maybe_in_log:
                raise ApiError(
                    Code.UNAVAILABLE,
                    "the commands were not accepted: nothing was sent; try again",
                    headers={"Retry-After": RETRY_AFTER_S},
                ) from e
            raise ApiError(Code.IN_DOUBT, in_doubt, headers={"Retry-After": RETRY_AFTER_S}) from e
        if wait_s > 0 and futures:
            await asyncio.wait(futures.values(), timeout=wait_s)
        return [f.result() for f in (futures[i] for i in ids) if f.done()]
