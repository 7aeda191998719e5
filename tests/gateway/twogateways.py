"""Two in-process gateways on the test's Redis and broker, as behind a load balancer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient

from fairq.config import Connections
from tests.gateway.conftest import gateway_client

Client = TestClient[Any, Any]


@contextlib.asynccontextmanager
async def two_gateways(connections: Connections, **overrides: Any) -> AsyncIterator[list[Client]]:
    """Two gateway apps sharing one Redis and one broker, each with ``overrides``."""
    async with contextlib.AsyncExitStack() as stack:
        gateways = [
            await stack.enter_async_context(gateway_client(connections, **overrides))
            for _ in range(2)
        ]
        yield gateways
