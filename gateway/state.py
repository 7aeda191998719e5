"""What a gateway process holds for its handlers, stored under one ``web.AppKey``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web

from gateway.bookingviews import BookingViews
from gateway.metrics import GatewayMetrics
from gateway.producer import CommandProducer
from gateway.roomcache import RoomCache
from gateway.settings import GatewaySettings
from waitingroom.rooms import RoomStore
from waitingroom.tickets import Signer


@dataclass(slots=True)
class Gateway:
    settings: GatewaySettings
    redis: aioredis.Redis
    store: RoomStore
    signer: Signer
    rooms: RoomCache
    views: BookingViews
    commands: CommandProducer
    metrics: GatewayMetrics
    clock: Callable[[], float] = field(default=time.time)


GATEWAY = web.AppKey("gateway", Gateway)
