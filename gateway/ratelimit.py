"""Per-client limits, all on by default: rates of join and status/events, open event
streams, and wrong access codes.

- **Rates** (``join``, ``status``): a table of token buckets per route class keyed by
  the client's address: a bucket holds up to ``burst`` tokens and refills at
  ``rate_per_s``; a request takes one token or is answered 429 ``rate_limited`` with
  ``Retry-After``. Per gateway process, in its memory (no Redis round trip): with N
  gateways behind a balancer a client may get up to N times the rate.
- **Open event streams** (``StreamCap``): at most ``streams_per_client`` at once per
  client on one gateway, room and booking streams together; beyond, 429
  ``too_many_streams`` (the page then polls).
- **Wrong access codes** (``code_guesses``, ``waitingroom.guesses``): counted per client
  and per code prefix in Redis, shared by every gateway, inside the join's own script;
  over either limit 429 ``too_many_attempts`` until the window ends.

Each default is a constant here (``waitingroom.guesses`` for the codes'); operators set
every limit by environment, and 0 turns one off.

The bucket tables are bounded: beyond ``max_clients`` the least recently seen clients
are forgotten, roughly (it comes back with a full bucket, so forgetting only ever errs
on the lenient side); a client idle for a generation (``MIN_GENERATION_S``, or a full
refill if longer) is forgotten too, when its bucket is full anyway.

Load-test sources are exempt from every limit: a request from one of
``exempt_networks`` or with the header ``X-Fairq-Loadtest-Key`` equal to
``loadtest_key``. Exemption from the rates and the stream cap is only checked for a
request that would be refused, so it costs nothing otherwise; a join with a code checks
it first (an exempt source's wrong codes are not counted).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter

from fairq.config import ConfigError, env_float, env_int
from gateway.errors import ApiError, Code
from waitingroom import guesses
from waitingroom.errors import TooManyAttempts
from waitingroom.guesses import NO_LIMIT, Guesser, GuessLimit, code_prefix

logger = logging.getLogger(__name__)

LOADTEST_HEADER = "X-Fairq-Loadtest-Key"
MIN_LOADTEST_KEY_CHARS = 16
DEFAULT_JOIN_RATE_PER_S = 1.0
DEFAULT_JOIN_BURST = 10
DEFAULT_STATUS_RATE_PER_S = 2.0
DEFAULT_STATUS_BURST = 30
# Open streams per client: a visitor holds one or two; beyond, the page polls /status. Below
# the status burst, so that a client meets the cap before the rate limit of stream opens.
DEFAULT_STREAMS_PER_CLIENT = 20
IPV6_CLIENT_BITS = 64  # an IPv6 subscriber usually holds a whole /64
UNKNOWN_CLIENT = "unknown"  # the key of requests without a peer address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ROOM_EVENTS = "/api/rooms/{room}/events"
BOOKING_EVENTS = "/api/bookings/{booking_id}/events"

# (method, route) -> rate limit class
LIMITED_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/rooms/{room}/join"): "join",
    ("GET", "/api/rooms/{room}/status"): "status",
    ("GET", ROOM_EVENTS): "status",
}
# the event streams: open ones are capped per client
STREAM_ROUTES = frozenset({("GET", ROOM_EVENTS), ("GET", BOOKING_EVENTS)})


@dataclass(frozen=True, slots=True)
class Limit:
    rate_per_s: float  # 0 disables the limit
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s >= 0):
            raise ConfigError(f"a rate limit must be a finite rate >= 0, got {self.rate_per_s}")
        if self.burst < 1:
            raise ConfigError(f"a rate limit's burst must be at least 1, got {self.burst}")


def env_rate(env: Mapping[str, str], name: str, default: float) -> float:
    """A rate from ``env``: a finite number >= 0 (0: the limit is off)."""
    rate = env_float(env, name, default)
    if not math.isfinite(rate):
        raise ConfigError(f"{name} must be a finite number of requests per second, got {rate}")
    return rate


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
    join: Limit = field(default_factory=lambda: Limit(DEFAULT_JOIN_RATE_PER_S, DEFAULT_JOIN_BURST))
    status: Limit = field(
        default_factory=lambda: Limit(DEFAULT_STATUS_RATE_PER_S, DEFAULT_STATUS_BURST)
    )
    streams_per_client: int = DEFAULT_STREAMS_PER_CLIENT  # open event streams; 0: no cap
    code_guesses: GuessLimit = field(default_factory=GuessLimit)
    max_clients: int = 100_000  # per limit class
    exempt_networks: tuple[IpNetwork, ...] = ()
    loadtest_key: str | None = None
    client_ip_hops: int = 0  # 0: the peer; N: N-th address from the right of X-Forwarded-For

    def __post_init__(self) -> None:
        if self.max_clients < 1:
            raise ConfigError("FAIRQ_RATE_LIMIT_CLIENTS must be at least 1")
        if self.streams_per_client < 0:
            raise ConfigError("FAIRQ_STREAMS_PER_CLIENT must be at least 0 (0: no cap)")
        if self.loadtest_key is not None and len(self.loadtest_key) < MIN_LOADTEST_KEY_CHARS:
            raise ConfigError(
                f"FAIRQ_LOADTEST_KEY must be at least {MIN_LOADTEST_KEY_CHARS} characters"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimitSettings:
        return cls(
            join=Limit(
                env_rate(env, "FAIRQ_JOIN_RATE_PER_S", DEFAULT_JOIN_RATE_PER_S),
                env_int(env, "FAIRQ_JOIN_BURST", DEFAULT_JOIN_BURST, lo=1),
            ),
            status=Limit(
                env_rate(env, "FAIRQ_STATUS_RATE_PER_S", DEFAULT_STATUS_RATE_PER_S),
                env_int(env, "FAIRQ_STATUS_BURST", DEFAULT_STATUS_BURST, lo=1),
            ),
            streams_per_client=env_int(env, "FAIRQ_STREAMS_PER_CLIENT", DEFAULT_STREAMS_PER_CLIENT),
            code_guesses=GuessLimit(
                per_client=env_int(
                    env, "FAIRQ_CODE_GUESSES_PER_CLIENT", guesses.DEFAULT_PER_CLIENT
                ),
                per_prefix=env_int(
                    env, "FAIRQ_CODE_GUESSES_PER_PREFIX", guesses.DEFAULT_PER_PREFIX
                ),
                window_s=env_int(env, "FAIRQ_CODE_GUESS_WINDOW_S", guesses.DEFAULT_WINDOW_S, lo=1),
                prefix_chars=env_int(
                    env, "FAIRQ_CODE_GUESS_PREFIX_CHARS", guesses.DEFAULT_PREFIX_CHARS, lo=1
                ),
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


def address_group(client: str) -> str:
    """What the stream cap and the code-guess counts key a client by: an IPv4 address
    itself, an IPv6 address its /64 (a subscriber usually holds a whole /64, so keying
    single addresses would give one source 2^64 budgets). The rate buckets, on the hot
    path, key the address as it is."""
    if ":" not in client:
        return client
    try:
        return str(ipaddress.IPv6Network((client, IPV6_CLIENT_BITS), strict=False))
    except ValueError:  # not an address (a zone id, a forwarded oddity): itself
        return client


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
    """The limits of one gateway process: ``guard`` gives each route its rate check,
    ``capped`` wraps the stream routes, ``code_guesser`` and ``too_many_attempts`` serve
    the join with a code."""

    def __init__(
        self,
        settings: RateLimitSettings,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._code_guesses = settings.code_guesses
        self.exemptions = Exemptions(settings)
        self._tables: dict[str, TokenBuckets] = {
            name: TokenBuckets(limit, settings.max_clients)
            for name, limit in (("join", settings.join), ("status", settings.status))
            if limit.rate_per_s > 0
        }
        self.limited_total = Counter(
            "fairq_gateway_rate_limited_total",
            "Requests refused by a per-client limit (join, status, streams, code_client,"
            " code_prefix)",
            ["limit"],
            registry=registry,
        )
        self.streams = StreamCap(
            settings.streams_per_client, self.exemptions, self.limited_total.labels("streams").inc
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

    def cap_of(self, method: str, route: str) -> StreamHold | None:
        """What holds one of its client's stream places while a request to ``method``
        ``route`` runs, if it is an event stream and streams are capped (else None)."""
        if (method, route) not in STREAM_ROUTES or not self.streams.cap:
            return None
        return self.streams.hold

    def code_guesser(self, request: web.Request, code: str, secret: bytes) -> Guesser:
        """Whose wrong code ``code`` would be, and the limit it is tried under: none for an
        exempt source (its wrong codes are not counted either)."""
        client = self.exemptions.client_key(request)
        limit = self._code_guesses
        if self.exemptions.exempt(request, client):
            limit = NO_LIMIT
        prefix = code_prefix(code, limit.prefix_chars, secret)
        return Guesser(client=address_group(client), prefix=prefix, limit=limit)

    def too_many_attempts(self, refusal: TooManyAttempts, now_s: float) -> ApiError:
        """The 429 for a join refused by the code-guess limits at ``now_s`` (epoch s)."""
        wait_s = self._code_guesses.retry_after_s(now_s)
        limit = f"code_{refusal.limit}"
        self.limited_total.labels(limit).inc()
        whose = "from your network" if refusal.limit == "client" else "like this one"
        message = f"too many wrong access codes {whose}; try again in {math.ceil(wait_s)}s"
        return too_many(Code.TOO_MANY_ATTEMPTS, message, limit, wait_s)

    def _refuse(self, limit: str, wait_s: float) -> NoReturn:
        self.limited_total.labels(limit).inc()
        raise too_many(
            Code.RATE_LIMITED, f"too many requests; try again in {wait_s:.1f}s", limit, wait_s
        )


def too_many(code: Code, message: str, limit: str, wait_s: float) -> ApiError:
    """A 429 answer with ``Retry-After``, naming the ``limit`` met."""
    return ApiError(
        code,
        message,
        headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
        extra={"limit": limit, "retry_after_s": round(wait_s, 3)},
    )


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)

# runs a stream's handler holding one of its client's places (StreamCap.hold)
StreamHold = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

# How long a client over the stream cap is told to wait before trying again (a place
# frees when one of its streams ends, which this gateway cannot foresee).
STREAM_RETRY_AFTER_S = 30


class StreamCap:
    """Open event streams per client on this gateway, at most ``cap`` each (0: no cap).

    A stream holds a place while its handler runs; the count of a client is dropped when
    its last stream ends, so the table holds only clients with open streams. Exempt
    sources may open more (asked only when over the cap); theirs are counted too.
    """

    def __init__(self, cap: int, exemptions: Exemptions, count_refusal: Callable[[], None]) -> None:
        self.cap = cap
        self._exemptions = exemptions
        self._count_refusal = count_refusal
        self._open: dict[str, int] = {}

    def open_streams(self, client: str) -> int:
        """How many streams ``client`` (as ``address_group`` keys it) holds open now."""
        return self._open.get(client, 0)

    async def hold(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Run ``handler`` holding one of its client's places: 429 ``too_many_streams``
        for a client at the cap."""
        exemptions, held = self._exemptions, self._open
        address = exemptions.client_key(request)
        client = address_group(address)
        count = held.get(client, 0)
        if count >= self.cap and not exemptions.exempt(request, address):
            self._refuse_stream(count)
        held[client] = count + 1
        try:
            return await handler(request)
        finally:
            left = held[client] - 1
            if left:
                held[client] = left
            else:
                del held[client]

    def _refuse_stream(self, count: int) -> NoReturn:
        self._count_refusal()
        message = (
            f"{count} event streams are open from your network already (at most {self.cap});"
            " close one, or poll the status instead"
        )
        raise too_many(Code.TOO_MANY_STREAMS, message, "streams", STREAM_RETRY_AFTER_S)


def _raw(text: str) -> bytes:
    """A header's bytes (aiohttp keeps undecodable bytes as surrogates)."""
    return text.encode("utf-8", "surrogateescape")
