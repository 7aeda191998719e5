"""Gateway settings, read from the environment at the entry point only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from allocator.settings import DEFAULT_GROUP
from fairq.config import ConfigError, Connections, env_float, env_int, env_str
from gateway.producer import DEFAULT_SEND_TIMEOUT_S
from gateway.ratelimit import RateLimitSettings

MIN_SECRET_BYTES = 16


def parse_agent_keys(raw: str) -> dict[str, str]:
    """``agent:key[,agent:key...]`` → {agent: key}; empty means no agents (operators only)."""
    agents: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        agent, sep, key = part.partition(":")
        if not sep or not agent or len(key) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"FAIRQ_AGENT_KEYS must look like 'agent:key,...' with keys of at least"
                f" {MIN_SECRET_BYTES} characters"
            )
        agents[agent] = key
    return agents


def parse_identity_secret(raw: str) -> bytes:
    """The secret identity keys and access codes are hashed with (HMAC-SHA-256); empty
    turns identity keys off and leaves new codes under plain SHA-256 hashes."""
    if raw and len(raw.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"FAIRQ_IDENTITY_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return raw.encode()


def parse_flag(env: Mapping[str, str], name: str) -> bool:
    """``1``/``true``/``yes`` or ``0``/``false``/``no`` (unset: false)."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def parse_signing_keys(raw: str) -> dict[str, bytes]:
    """``kid:secret[,kid:secret...]`` → {kid: secret}. The first one signs."""
    keys: dict[str, bytes] = {}
    for part in raw.split(","):
        kid, sep, secret = part.strip().partition(":")
        if not sep or not kid or not secret:
            raise ConfigError("FAIRQ_SIGNING_KEYS must look like 'kid:secret[,kid:secret...]'")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"signing key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
        keys[kid] = secret.encode()
    return keys


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    connections: Connections
    operator_key: str
    signing_keys: dict[str, bytes]
    signing_kid: str
    host: str = "127.0.0.1"
    port: int = 8080
    refresh_s: float = 0.2  # how often each room's counters are re-read from Redis
    answer_wait_s: float = 5.0  # how long confirm/cancel wait for the allocator's answer
    booking_grace_s: int = 120  # active-booker deadline after a hold would run out
    shutdown_drain_s: float = 5.0
    redis_connections: int = 64  # the pool's size; requests queue for a free connection
    inventory_wait_s: float = 30.0  # how long inventory loading waits for the allocator's answers
    # how long a command's send waits for the broker's acknowledgement; past it the
    # answer is 503 and the command is in doubt (see ``gateway.placement``)
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    sse_keepalive_s: float = 15.0
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    agent_keys: dict[str, str] = field(default_factory=dict)  # call-center agents
    # keys the hashes of identity keys given at confirm (empty: none are taken); the same
    # on every gateway, and never rotated (a new secret makes every stored hash unknown)
    identity_secret: bytes = b""
    console_session_s: int = 8 * 3600  # how long an operator console session lasts
    # whether ``X-Forwarded-Proto: https`` from the proxy in front means TLS (Secure cookie)
    trust_forwarded_proto: bool = False
    history_step_s: float = 5.0  # one point of each room's charts per this many seconds
    allocator_group: str = DEFAULT_GROUP  # whose lag the console shows
    # One of ``fairq gateway --workers N``'s processes (``gateway.workers``): it shares
    # ``port`` with its siblings (SO_REUSEPORT) and also serves on a port of its own,
    # ``worker_ports_from + worker - 1`` (0: a free one, logged), for its own /metrics.
    worker: int | None = None
    worker_ports_from: int = 0
    # how long a booking's view stays in the read model after its last change (lookups
    # and exports of it end then; the events log keeps it): well past a season
    readmodel_retention_days: int = 400

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        keys = parse_signing_keys(env_str(env, "FAIRQ_SIGNING_KEYS"))
        operator_key = env_str(env, "FAIRQ_OPERATOR_KEY")
        if len(operator_key) < MIN_SECRET_BYTES:
            raise ConfigError(f"FAIRQ_OPERATOR_KEY must be at least {MIN_SECRET_BYTES} characters")
        return cls(
            connections=Connections.from_env(env),
            operator_key=operator_key,
            signing_keys=keys,
            signing_kid=next(iter(keys)),
            host=env_str(env, "FAIRQ_HTTP_HOST", "127.0.0.1"),
            port=env_int(env, "FAIRQ_HTTP_PORT", 8080, lo=0),
            refresh_s=env_float(env, "FAIRQ_REFRESH_S", 0.2, lo=0.01),
            answer_wait_s=env_float(env, "FAIRQ_ANSWER_WAIT_S", 5.0),
            shutdown_drain_s=env_float(env, "FAIRQ_SHUTDOWN_DRAIN_S", 5.0),
            redis_connections=env_int(env, "FAIRQ_REDIS_CONNECTIONS", 64, lo=1),
            inventory_wait_s=env_float(env, "FAIRQ_INVENTORY_WAIT_S", 30.0),
            send_timeout_s=env_float(env, "FAIRQ_SEND_TIMEOUT_S", DEFAULT_SEND_TIMEOUT_S, lo=0.1),
            rate_limits=RateLimitSettings.from_env(env),
            agent_keys=parse_agent_keys(env.get("FAIRQ_AGENT_KEYS", "")),
            identity_secret=parse_identity_secret(env.get("FAIRQ_IDENTITY_SECRET", "")),
            console_session_s=env_int(env, "FAIRQ_CONSOLE_SESSION_S", 8 * 3600, lo=60),
            trust_forwarded_proto=parse_flag(env, "FAIRQ_TRUST_FORWARDED_PROTO"),
            history_step_s=env_float(env, "FAIRQ_HISTORY_STEP_S", 5.0, lo=0.05),
            allocator_group=env_str(env, "FAIRQ_ALLOCATOR_GROUP", DEFAULT_GROUP),
            worker=worker_number(env),
            worker_ports_from=env_int(env, "FAIRQ_WORKER_PORTS_FROM", 0),
            readmodel_retention_days=env_int(env, "FAIRQ_READMODEL_RETENTION_DAYS", 400, lo=1),
        )

    @property
    def worker_port(self) -> int:
        """The port of this worker's own (0: any free port)."""
        if self.worker is None or not self.worker_ports_from:
            return 0
        return self.worker_ports_from + self.worker - 1


def worker_number(env: Mapping[str, str]) -> int | None:
    """``FAIRQ_GATEWAY_WORKER``, set by ``fairq gateway --workers N`` for its processes."""
    if not env.get("FAIRQ_GATEWAY_WORKER"):
        return None
    return env_int(env, "FAIRQ_GATEWAY_WORKER", 0, lo=1)
