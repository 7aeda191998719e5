"""Per-client rate limits on join and on status/events, in this gateway's memory.

Each limited route class (``join``, ``status``) has a table of token buckets keyed
by the client's address: a bucket holds up to ``burst`` tokens and refills at
``rate_per_s``; a request takes one token or is answered 429 with ``Retry-After``.
The limits are **per gateway process**: with N gateways behind a balancer a
client may get up to N times the rate. No Redis round trip is spent on them.

Both limits are off unless configured (``FAIRQ_JOIN_RATE_PER_S``,
``FAIRQ_STATUS_RATE_PER_S``); the README suggests values for a launch.

The tables are bounded: beyond ``max_clients`` the least recently seen clients are
forgotten, roughly (it comes back with a full bucket, so forgetting only ever errs
on the lenient side); a client idle for a generation (``MIN_GENERATION_S``, or a
full refill if longer) is forgotten too, when its bucket is full anyway.

Load-test sources are exempt: a request from one of ``exempt_networks`` or with
the header ``X-Fairq-Loadtest-Key`` equal to ``loadtest_key``. Exemption is only
checked for a request that would be refused, so it costs nothing otherwise.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from fairq.config import ConfigError, env_float, env_int
from gateway.errors import ApiError

logger = logging.getLogger(__name__)

LOADTEST_HEADER = "X-Fairq-Loadtest-Key"
MIN_LOADTEST_KEY_CHARS = 16
DEFAULT_JOIN_BURST = 10
DEFAULT_STATUS_BURST = 30
UNKNOWN_CLIENT = "unknown"  # the key of requests without a peer address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (method, route) -> limit class
LIMITED_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/rooms/{room}/join"): "join",
    ("GET", "/api/rooms/{room}/status"): "status",
    ("GET", "/api/rooms/{room}/events"): "status",
}


@dataclass(frozen=True, slots=True)
class Limit:
    rate_per_s: float  # 0 disables the limit
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s >= 0):
            raise ConfigError(f"a rate limit must be a finite rate >= 0, got {self.rate_per_s}")
        if self.burst < 1:
            raise ConfigError(f"a rate limit's burst must be at least 1, got {self.burst}")


def parse_networks(raw: str) -> tuple[IpNetwork, ...]:
    """``10.0.0.0/8, 2001:db8::/32`` -> networks; raises ConfigError naming the bad one."""
    out: list[IpNetwork] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError as e:
            raise ConfigError(f"FAIRQ_LOADTEST_NETWORKS: {part!r} is not a network") from e
    return tuple(out)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    join: Limit = field(default_factory=lambda: Limit(0.0, DEFAULT_JOIN_BURST))
    status: Limit = field(default_factory=lambda: Limit(0.0, DEFAULT_STATUS_BURST))
    max_clients: int = 100_000  # per limit class
    exempt_networks: tuple[IpNetwork, ...] = ()
    loadtest_key: str | None = None
    client_ip_hops: int = 0  # 0: the peer; N: N-th address from the right of X-Forwarded-For

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ConfigError("FAIRQ_RATE_LIMIT_CLIENTS must be at least 1")
        if self.loadtest_key is not None and len(self.loadtest_key) < MIN_LOADTEST_KEY_CHARS:
            raise ConfigError(
                f"FAIRQ_LOADTEST_KEY must be at least {MIN_LOADTEST_KEY_CHARS} characters"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimitSettings:
        return cls(
            join=Limit(
                env_float(env, "FAIRQ_JOIN_RATE_PER_S", 0.0),
                env_int(env, "FAIRQ_JOIN_BURST", DEFAULT_JOIN_BURST, lo=1),
            ),
            status=Limit(
                env_float(env, "FAIRQ_STATUS_RATE_PER_S", 0.0),
                env_int(env, "FAIRQ_STATUS_BURST", DEFAULT_STATUS_BURST, lo=1),
            ),
            max_clients=env_int(env, "FAIRQ_RATE_LIMIT_CLIENTS", 100_000, lo=1),
            exempt_networks=parse_networks(env.get("FAIRQ_LOADTEST_NETWORKS", "")),
            loadtest_key=env.get("FAIRQ_LOADTEST_KEY") or None,
            client_ip_hops=env_int(env, "FAIRQ_CLIENT_IP_HOPS", 0),
        )


# A generation of buckets lasts at least this long (and at least until its buckets
# would have refilled): how long an idle client's bucket may outlive its last request.
MIN_GENERATION_S = 60.0


class TokenBuckets:
    """Token buckets per key, in two generations of at most ``max_keys // 2`` each.

    A bucket is a two-item list ``[tokens, at]`` updated in place: a request of a
    known client allocates nothing. A lookup tries the young generation, then the
    old one (moving the bucket back to the young one). The old generation is
    dropped, and the young one becomes old, when the young one is full (so the
    table holds at most ``max_keys``; forgetting a client only ever errs on the
    lenient side: it comes back with a full bucket) or when it has lasted a
    generation's time. That time is at least a full refill (``burst / rate``), so a
    bucket dropped for age was full anyway: idle clients are forgotten exactly.
    Every operation is O(1) with no per-bucket bookkeeping (an ordered dict's
    move-to-end on every request cost more than the bucket's arithmetic).
    """

    def __init__(self, limit: Limit, max_keys: int) -> None:
        self._rate = limit.rate_per_s
        self._burst = float(limit.burst)
        self._generation_size = max(1, max_keys // 2)
        refill_s = self._burst / self._rate if self._rate > 0 else math.inf
        self._generation_s = max(MIN_GENERATION_S, refill_s)
        self._young: dict[str, list[float]] = {}  # [tokens, at]
        self._old: dict[str, list[float]] = {}
        self._young_until_s = -math.inf  # the first request starts a generation

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def take(self, key: str, now_s: float) -> float:
        """Take a token: 0.0 if granted, else the seconds until one is available."""
        if now_s >= self._young_until_s:
            self._new_generation(now_s)
        held = self._young.get(key)
        if held is None:
            held = self._old.pop(key, None)
            if held is None:  # a full bucket (burst >= 1): granted
                self._keep(key, [self._burst - 1.0, now_s], now_s)
                return 0.0
            self._keep(key, held, now_s)
        tokens = held[0] + (now_s - held[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        held[1] = now_s
        if tokens >= 1.0:
            held[0] = tokens - 1.0
            return 0.0
        held[0] = tokens
        return (1.0 - tokens) / self._rate

    def _keep(self, key: str, bucket: list[float], now_s: float) -> None:
        """Put ``bucket`` in the young generation, starting a new one if it is full."""
        if len(self._young) >= self._generation_size:
            self._new_generation(now_s)
        self._young[key] = bucket

    def _new_generation(self, now_s: float) -> None:
        self._old, self._young = self._young, {}
        self._young_until_s = now_s + self._generation_s


def peer_key(request: web.Request) -> str:
    """The client key of a request that no proxy forwarded: its peer's address."""
    return request.remote or UNKNOWN_CLIENT


class Exemptions:
    """Who a request comes from, and whether it is a load-test source exempt from limits.

    Shared by the rate limits and the proof-of-work gate (``gateway.challenge``).
    """

    def __init__(self, settings: RateLimitSettings) -> None:
        self._settings = settings
        self._loadtest_key = None if settings.loadtest_key is None else _raw(settings.loadtest_key)

    @property
    def from_peer(self) -> bool:
        """Whether a client is always its connection's peer (no X-Forwarded-For hops)."""
        return not self._settings.client_ip_hops

    def client_key(self, request: web.Request) -> str:
        hops = self._settings.client_ip_hops
        if hops:
            forwarded = request.headers.get("X-Forwarded-For", "").split(",")
            if len(forwarded) >= hops and forwarded[-hops].strip():
                return forwarded[-hops].strip()
        return peer_key(request)

    def exempt(self, request: web.Request, client: str) -> bool:
        return self.has_loadtest_key(request) or self.exempt_network(client)

    def has_loadtest_key(self, request: web.Request) -> bool:
        key = self._loadtest_key
        if key is None:
            return False
        presented = request.headers.get(LOADTEST_HEADER)
        return presented is not None and hmac.compare_digest(_raw(presented), key)

    def exempt_network(self, client: str) -> bool:
        if not self._settings.exempt_networks:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in net for net in self._settings.exempt_networks)

    def exempts(self, request: web.Request) -> bool:
        """Whether ``request`` comes from an exempt source."""
        return self.exempt(request, self.client_key(request))


class RateLimiter:
    """The limit tables of one gateway process; ``guard`` gives each route its check."""

    def __init__(
        self,
        settings: RateLimitSettings,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.exemptions = Exemptions(settings)
        self._tables: dict[str, TokenBuckets] = {
            name: TokenBuckets(limit, settings.max_clients)
            for name, limit in (("join", settings.join), ("status", settings.status))
            if limit.rate_per_s > 0
        }
        self.limited_total = Counter(
            "fairq_gateway_rate_limited_total",
            "Requests refused by a per-client rate limit",
            ["limit"],
            registry=registry,
        )

    def guard(self, method: str, route: str) -> Callable[[web.Request], None] | None:
        """The check of requests to ``method`` ``route`` (canonical path), made once per route
        when the app starts; None when no configured limit applies to it.

        The check raises ApiError 429 if the client is over the limit (and not exempt).
        """
        limit = LIMITED_ROUTES.get((method, route))
        table = None if limit is None else self._tables.get(limit)
        if limit is None or table is None:
            return None
        exemptions, take, clock = self.exemptions, table.take, self._clock
        client_key = exemptions.client_key

        def check(request: web.Request) -> None:
            client = client_key(request)
            wait_s = take(client, clock())
            if wait_s > 0 and not exemptions.exempt(request, client):
                self._refuse(limit, wait_s)

        def check_peer(request: web.Request) -> None:
            """``check`` for a client that is always the peer (``peer_key`` inlined)."""
            client = request.remote or UNKNOWN_CLIENT
            wait_s = take(client, clock())
            if wait_s > 0 and not exemptions.exempt(request, client):
                self._refuse(limit, wait_s)

        # the client is the peer unless hops are configured: then no header to read
        return check_peer if exemptions.from_peer else check

    def _refuse(self, limit: str, wait_s: float) -> NoReturn:
        self.limited_total.labels(limit).inc()
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests; try again in {wait_s:.1f}s",
            headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            extra={"limit": limit, "retry_after_s": round(wait_s, 3)},
        )


def _raw(text: str) -> bytes:
    """A header's bytes (aiohttp keeps undecodable bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")
