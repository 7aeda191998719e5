"""``fairq up``: Redis, the broker, the topics, one allocator, one admitter, gateways, a demo.

Starts ``redis-server`` and a broker on free ports unless ``REDIS_URL`` /
``KAFKA_BOOTSTRAP`` are set (the broker: Tansu, or one Apache Kafka node with
``FAIRQ_BROKER=kafka``, whose producers are then idempotent), loads the demo
campaign and room, prints where to go, restarts a component that crashes
(``fairq.processes.supervise``), and on Ctrl-C or SIGTERM stops every child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import secrets
import signal
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocator.settings import snapshot_topic
from fairq.config import ConfigError, Kafka, KafkaTimeouts, Topics, env_bool, env_int, env_str
from fairq.demo import demo_campaign
from fairq.devservices import free_port, kafka_broker, kafka_cluster, redis_server
from fairq.processes import ProcessError, spawn, stop, supervise, wait_http_ready
from fairq.topics import DEFAULT_PARTITIONS, ensure_topics

logger = logging.getLogger(__name__)

DEMO = "demo"
BROKERS = ("tansu", "kafka")


@dataclass(frozen=True, slots=True)
class UpSettings:
    http_port: int
    operator_key: str
    signing_keys: str
    identity_secret: str
    opens_in_s: int
    state_dir: Path
    partitions: int
    broker: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UpSettings:
        return cls(
            http_port=env_int(env, "FAIRQ_HTTP_PORT", 8080, lo=1),
            operator_key=env_str(env, "FAIRQ_OPERATOR_KEY", secrets.token_urlsafe(24)),
            signing_keys=env_str(env, "FAIRQ_SIGNING_KEYS", f"k1:{secrets.token_urlsafe(32)}"),
            identity_secret=env_str(env, "FAIRQ_IDENTITY_SECRET", secrets.token_urlsafe(32)),
            opens_in_s=env_int(env, "FAIRQ_DEMO_OPENS_IN_S", 30),
            state_dir=Path(env_str(env, "FAIRQ_STATE_DIR", ".fairq")),
            partitions=env_int(env, "FAIRQ_PARTITIONS", DEFAULT_PARTITIONS, lo=1),
            broker=broker_choice(env),
        )


def broker_choice(env: Mapping[str, str]) -> str:
    broker = env_str(env, "FAIRQ_BROKER", BROKERS[0])
    if broker not in BROKERS:
        raise ConfigError(f"FAIRQ_BROKER must be one of {BROKERS}, got {broker!r}")
    return broker


def start_broker(stack: contextlib.ExitStack, broker: str, log_dir: Path) -> str:
    """Start the chosen dev broker (stopped when ``stack`` closes); its bootstrap."""
    if broker == "kafka":
        return stack.enter_context(kafka_cluster(nodes=1, log_dir=log_dir)).url
    return stack.enter_context(kafka_broker(log_dir)).url


def _call(method: str, url: str, key: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def load_demo(base: str, key: str, opens_in_s: int) -> str:
    tomorrow = dt.date.today() + dt.timedelta(days=1)
    status, body = _call("PUT", f"{base}/api/admin/campaigns/{DEMO}", key, demo_campaign(tomorrow))
    if status == 409:
        note = "demo campaign already present (kept as it was)"
    elif status in (200, 202) and body.get("repeated"):
        note = f"demo campaign already present ({body['already_applied']} commands applied before)"
    elif status == 201:
        note = f"demo campaign loaded: {body['slots']} slots, {body['places']} places"
    else:
        raise ProcessError(f"loading the demo campaign failed: {status} {body}")
    room = {"campaign": DEMO, "opens_in_s": opens_in_s, "rate_per_s": 20, "max_active": 200}
    status, body = _call("PUT", f"{base}/api/admin/rooms/{DEMO}", key, room)
    if status not in (200, 201):
        raise ProcessError(f"creating the demo room failed: {status} {body}")
    return note


def limits_note(env: Mapping[str, str]) -> str:
    """What the banner says of the per-client limits: on by default, and whether a
    rehearsal (``make rehearse``, which sends FAIRQ_LOADTEST_KEY) is exempt from them."""
    if env.get("FAIRQ_LOADTEST_KEY"):
        return "per client, the defaults (README: Secure defaults); FAIRQ_LOADTEST_KEY lifts them"
    return (
        "per client, the defaults (README: Secure defaults); no FAIRQ_LOADTEST_KEY:"
        " a rehearsal from here is limited as one visitor"
    )


def _banner(
    base: str,
    s: UpSettings,
    note: str,
    redis_url: str,
    bootstrap: str,
    limits: str,
    health: dict[str, int],
    broker: str,
) -> str:
    return f"""
fairq is up.
  gateway        {base}
  waiting room   {base}/rooms/{DEMO}   (open it in a browser)
  openapi        {base}/api/openapi.json
  metrics        {base}/metrics
  health         {base}/livez  {base}/readyz
  allocator      http://127.0.0.1:{health["allocator"]}/readyz   (/livez, /metrics)
  admitter       http://127.0.0.1:{health["admitter"]}/readyz   (/livez, /metrics)
  demo room      {base}/api/rooms/{DEMO}   (opens in {s.opens_in_s}s)
  operator key   {s.operator_key}
  console        {base}/operator   (sign in with the operator key)
  call center    {base}/callcenter   (an agent key, FAIRQ_AGENT_KEYS, or the operator key)
  redis          {redis_url}
  kafka          {bootstrap}   ({broker})
  logs           {s.state_dir / "logs"}
  limits         {limits}
  {note}

Try:  curl -s -X POST {base}/api/rooms/{DEMO}/join
Stop: Ctrl-C
"""


def up(env: Mapping[str, str]) -> int:
    s = UpSettings.from_env(env)
    log_dir = s.state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis_url = env.get("REDIS_URL") or stack.enter_context(redis_server(log_dir)).url
        bootstrap = env.get("KAFKA_BOOTSTRAP") or start_broker(stack, s.broker, log_dir)
        topics = Topics.from_env(env)
        snapshots = snapshot_topic(topics.commands)
        kafka = Kafka(bootstrap, timeouts=KafkaTimeouts.from_env(env))
        asyncio.run(ensure_topics(kafka, topics, s.partitions, snapshots=snapshots))
        idempotence = env_bool(env, "FAIRQ_KAFKA_IDEMPOTENCE", s.broker == "kafka")
        child_env = dict(env) | {
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP": bootstrap,
            "FAIRQ_KAFKA_IDEMPOTENCE": str(idempotence).lower(),
            "FAIRQ_OPERATOR_KEY": s.operator_key,
            "FAIRQ_SIGNING_KEYS": s.signing_keys,
            "FAIRQ_IDENTITY_SECRET": s.identity_secret,
            "FAIRQ_HTTP_PORT": str(s.http_port),
        }
        # Each service keeps its health port across restarts; the allocator keeps its
        # name, so that a restarted one takes its dead predecessor's place in the group.
        health = {name: free_port() for name in ("allocator", "admitter")}
        envs = {
            "allocator": child_env
            | {"FAIRQ_HEALTH_PORT": str(health["allocator"])}
            | {"FAIRQ_ALLOCATOR_INSTANCE": env.get("FAIRQ_ALLOCATOR_INSTANCE", "allocator")},
            "admitter": child_env | {"FAIRQ_HEALTH_PORT": str(health["admitter"])},
            "gateway": child_env,
        }
        components = [spawn(name, name, envs[name], log_dir) for name in envs]
        stack.callback(stop, components)
        base = f"http://127.0.0.1:{s.http_port}"
        wait_http_ready(components[-1], f"{base}/readyz")
        note = load_demo(base, s.operator_key, s.opens_in_s)
        broker = "KAFKA_BOOTSTRAP" if env.get("KAFKA_BOOTSTRAP") else s.broker
        banner = _banner(base, s, note, redis_url, bootstrap, limits_note(env), health, broker)
        print(banner, flush=True)
        stopping: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: stopping.append(signum))
        supervise(components, stopping=lambda: bool(stopping))
        print("\nstopping fairq ...", flush=True)
        return 0
    return 1  # unreachable: the with-block returns
