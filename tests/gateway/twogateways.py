"""Two in-process gateways on the test's Redis and broker, as behind a load balancer."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from fairq.config import Connections
from gateway.app import create_app
from tests.conftest import bounded
from tests.gateway.conftest import make_settings

Client = TestClient[Any, Any]


@contextlib.asynccontextmanager
async def two_gateways(connections: Connections, **overrides: Any) -> AsyncIterator[list[Client]]:
    """Two gateway apps sharing one Redis and one broker, each with ``overrides``."""
    async with contextlib.AsyncExitStack() as stack:
        gateways = []
        for i in range(2):
            client: Client = TestClient(
                TestServer(create_app(make_settings(connections, **overrides)))
            )
            await client.start_server()
            stack.push_async_callback(bounded, client.close(), f"closing gateway {i}")
            gateways.append(client)
        yield gateways
