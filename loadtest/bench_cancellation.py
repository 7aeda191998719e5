"""How often one ``cancel()`` of a task busy with Redis calls is lost, here.

With redis-py 8 on Python 3.11 a cancellation can be dropped (see ``fairq.tasks``).
A task calls ZCARD in a loop on a private redis-server, with the client made as the
services make theirs; each round cancels it once after 0, 1, ..., ``--turns`` - 1
turns of the event loop and counts the cancellation lost if the task has not ended
``--wait-s`` later; ``fairq.tasks.cancel_and_wait`` then ends it. Not a test; run it:

    python -m loadtest.bench_cancellation [--rounds 300] [--turns 60] [--wait-s 0.5]
"""

from __future__ import annotations

import argparse
import asyncio

import redis
import redis.asyncio as aioredis

from fairq.devservices import redis_server
from fairq.tasks import cancel_and_wait
from loadtest.bench_allocator_core import print_header


async def lost_cancellations(url: str, rounds: int, turns: int, wait_s: float) -> int:
    client = aioredis.Redis.from_url(url)

    async def busy() -> None:
        while True:
            await client.zcard("k")

    lost = 0
    try:
        for i in range(rounds):
            task = asyncio.create_task(busy())
            for _ in range(i % turns):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.wait([task], timeout=wait_s)
            if not task.done():
                lost += 1
                await cancel_and_wait([task])
    finally:
        await client.aclose()
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--wait-s", type=float, default=0.5)
    args = parser.parse_args()
    print_header("loadtest.bench_cancellation")
    with redis_server() as server:
        lost = asyncio.run(lost_cancellations(server.url, args.rounds, args.turns, args.wait_s))
    print(f"redis-py {redis.__version__}")
    print(f"one cancel() lost in {lost} of {args.rounds} rounds (not ended {args.wait_s} s later)")


if __name__ == "__main__":
    main()
