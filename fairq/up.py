"""``fairq up``: Redis, the broker, the topics, allocators, admitters, gateways, a demo.

Starts ``redis-server`` and a broker on free ports unless ``REDIS_URL`` /
``KAFKA_BOOTSTRAP`` are set (the broker: Tansu, or one Apache Kafka node with
``FAIRQ_BROKER=kafka``, whose producers are then idempotent), then as many gateways
(on consecutive ports), admitters and allocators (sharing the partitions through
their consumer group) as asked for, loads the demo campaign and room, prints where
to go, restarts a component that crashes (``fairq.processes.supervise``), and on
Ctrl-C or SIGTERM stops every child process.

The secrets are kept in the state directory (``fairq.stacksecrets``), and the whole
stack's settings are written next to them (``stack.env``, mode 0600) while it runs,
so that one command starts one more process against it (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import shlex
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocator.settings import snapshot_topic
from fairq import envfile
from fairq.config import ConfigError, Kafka, KafkaTimeouts, Topics, env_bool, env_int, env_str
from fairq.demo import demo_campaign
from fairq.devservices import free_port, kafka_broker, kafka_cluster, redis_server
from fairq.processes import (
    Component,
    ProcessError,
    spawn,
    stop,
    supervise_until_signalled,
    wait_http_ready,
)
from fairq.stacksecrets import stack_secrets
from fairq.topics import DEFAULT_PARTITIONS, ensure_topics
from gateway.workers import check_port_free

logger = logging.getLogger(__name__)

DEMO = "demo"
BROKERS = ("tansu", "kafka")
MAX_PROCESSES = 64  # of each kind: beyond, a typo rather than a plan
MAX_PORT = 65535
STACK_FILE = "stack.env"
# Settings of one process, not of the stack: left out of stack.env.
PER_PROCESS = frozenset(
    {
        "FAIRQ_HTTP_PORT",
        "FAIRQ_HEALTH_PORT",
        "FAIRQ_ALLOCATOR_INSTANCE",
        "FAIRQ_GATEWAY_WORKER",
        "FAIRQ_STATE_DIR",
        "FAIRQ_GATEWAYS",
        "FAIRQ_ADMITTERS",
        "FAIRQ_ALLOCATORS",
        "FAIRQ_DEMO_OPENS_IN_S",
        "FAIRQ_BROKER",
        "FAIRQ_PARTITIONS",
    }
)


def env_count(env: Mapping[str, str], name: str) -> int:
    """How many processes of a kind ``name`` asks for: 1 to ``MAX_PROCESSES``, default 1."""
    count = env_int(env, name, 1, lo=1)
    if count > MAX_PROCESSES:
        raise ConfigError(f"{name} must be at most {MAX_PROCESSES}, got {count}")
    return count


@dataclass(frozen=True, slots=True)
class UpSettings:
    http_port: int  # the first gateway's; the others' follow it
    opens_in_s: int
    state_dir: Path
    partitions: int
    broker: str
    gateways: int = 1
    admitters: int = 1
    allocators: int = 1
    gateway_workers: int = 1  # each gateway's processes on its port (gateway.workers)
    # the allocators' names in their group, numbered when several ("" : no fixed names)
    allocator_instance: str = "allocator"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UpSettings:
        s = cls(
            http_port=env_int(env, "FAIRQ_HTTP_PORT", 8080, lo=1),
            opens_in_s=env_int(env, "FAIRQ_DEMO_OPENS_IN_S", 30),
            state_dir=Path(env_str(env, "FAIRQ_STATE_DIR", ".fairq")),
            partitions=env_int(env, "FAIRQ_PARTITIONS", DEFAULT_PARTITIONS, lo=1),
            broker=broker_choice(env),
            gateways=env_count(env, "FAIRQ_GATEWAYS"),
            admitters=env_count(env, "FAIRQ_ADMITTERS"),
            allocators=env_count(env, "FAIRQ_ALLOCATORS"),
            gateway_workers=env_count(env, "FAIRQ_GATEWAY_WORKERS"),
            allocator_instance=env.get("FAIRQ_ALLOCATOR_INSTANCE", "allocator"),
        )
        if s.http_port + s.gateways - 1 > MAX_PORT:
            raise ConfigError(
                f"FAIRQ_HTTP_PORT {s.http_port} leaves no room for {s.gateways} gateways"
                f" on consecutive ports (the last would be {s.http_port + s.gateways - 1})"
            )
        if s.allocators > s.partitions:
            raise ConfigError(
                f"FAIRQ_ALLOCATORS {s.allocators} is more than the partitions"
                f" ({s.partitions}, FAIRQ_PARTITIONS): an allocator without a partition"
                " stands idle"
            )
        return s

    @property
    def gateway_ports(self) -> list[int]:
        return [self.http_port + i for i in range(self.gateways)]

    def allocator_name(self, k: int) -> str:
        """The group name (``FAIRQ_ALLOCATOR_INSTANCE``) of allocator ``k`` (from 1):
        fixed, so that a restarted one takes its dead predecessor's place at once."""
        if not self.allocator_instance or self.allocators == 1:
            return self.allocator_instance
        return f"{self.allocator_instance}-{k}"


def names(kind: str, count: int) -> list[str]:
    """``gateway`` for one, ``gateway-1``, ``gateway-2``... for several."""
    return [kind] if count == 1 else [f"{kind}-{i}" for i in range(1, count + 1)]


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
        return (
            "per client, the defaults (docs/api.md: Secure defaults); FAIRQ_LOADTEST_KEY lifts them"
        )
    return (
        "per client, the defaults (docs/api.md: Secure defaults); no FAIRQ_LOADTEST_KEY:"
        " a rehearsal from here is limited as one visitor"
    )


@dataclass(frozen=True, slots=True)
class Stack:
    """What ``fairq up`` started, for its banner."""

    settings: UpSettings
    operator_key: str
    redis_url: str
    bootstrap: str
    broker: str
    health: dict[str, int]  # admitter / allocator name -> its health port
    stack_file: Path

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.settings.gateway_ports]

    def more(self) -> dict[str, str]:
        """The command that starts one more process of each kind against this stack."""
        s = self.settings
        fairq = f"fairq {{}} --env-file {shlex.quote(str(self.stack_file.resolve()))}"
        instance = f"{s.allocator_instance or 'allocator'}-{s.allocators + 1}"
        return {
            "gateway": fairq.format("gateway") + f" --port {s.http_port + s.gateways}",
            "admitter": fairq.format("admitter"),
            "allocator": fairq.format("allocator") + f" --instance {instance}",
        }


def _banner(stack: Stack, note: str, limits: str) -> str:
    s, base = stack.settings, stack.bases[0]
    workers = f"   ({s.gateway_workers} workers each)" if s.gateway_workers > 1 else ""
    gateways = "\n".join(f"  gateway        {b}{workers}" for b in stack.bases)
    health = "\n".join(
        f"  {name:<14} http://127.0.0.1:{port}/readyz   (/livez, /metrics)"
        for name, port in stack.health.items()
    )
    more = "\n".join(f"  {kind:<10} {command}" for kind, command in stack.more().items())
    return f"""
fairq is up.
{gateways}
  waiting room   {base}/rooms/{DEMO}   (open it in a browser)
  openapi        {base}/api/openapi.json
  metrics        {base}/metrics
  health         {base}/livez  {base}/readyz
{health}
  demo room      {base}/api/rooms/{DEMO}   (opens in {s.opens_in_s}s)
  operator key   {stack.operator_key}
  console        {base}/operator   (sign in with the operator key)
  call center    {base}/callcenter   (an agent key, FAIRQ_AGENT_KEYS, or the operator key)
  redis          {stack.redis_url}
  kafka          {stack.bootstrap}   ({stack.broker})
  secrets        {s.state_dir / "secrets.env"}   (kept for the next start)
  logs           {s.state_dir / "logs"}
  limits         {limits}
  {note}

One more process against this stack (settings and secrets in {stack.stack_file}, mode 0600):
{more}

Try:  curl -s -X POST {base}/api/rooms/{DEMO}/join
Stop: Ctrl-C
"""


def stack_settings(child_env: Mapping[str, str]) -> dict[str, str]:
    """What every process of the stack shares (its connections, secrets, FAIRQ_
    settings), for ``stack.env``: not what is one process's own (``PER_PROCESS``)."""
    return {
        name: value
        for name, value in sorted(child_env.items())
        if (name.startswith("FAIRQ_") or name in ("REDIS_URL", "KAFKA_BOOTSTRAP"))
        and name not in PER_PROCESS
    }


def up(env: Mapping[str, str]) -> int:
    s = UpSettings.from_env(env)
    host = env.get("FAIRQ_HTTP_HOST", "127.0.0.1")
    for port in s.gateway_ports:
        check_port_free(host, port, shared=False)
    secrets = stack_secrets(s.state_dir, env)
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
        child_env = (
            dict(env)
            | {
                "REDIS_URL": redis_url,
                "KAFKA_BOOTSTRAP": bootstrap,
                "FAIRQ_KAFKA_IDEMPOTENCE": str(idempotence).lower(),
                "FAIRQ_GATEWAY_WORKERS": str(s.gateway_workers),
            }
            | secrets
        )
        stack_file = s.state_dir / STACK_FILE
        header = "The running fairq up stack's settings, for one more process (docs/scale-out.md)."
        envfile.write_private(stack_file, stack_settings(child_env), header)
        stack.callback(stack_file.unlink, missing_ok=True)
        # Each service keeps its health port across restarts; each allocator keeps its
        # name, so that a restarted one takes its dead predecessor's place in the group.
        health: dict[str, int] = {}
        components: list[Component] = []
        stack.callback(stop, components)
        for k, name in enumerate(names("allocator", s.allocators), start=1):
            health[name] = free_port()
            allocator_env = {
                "FAIRQ_HEALTH_PORT": str(health[name]),
                "FAIRQ_ALLOCATOR_INSTANCE": s.allocator_name(k),
            }
            components.append(spawn("allocator", name, child_env | allocator_env, log_dir))
        for name in names("admitter", s.admitters):
            health[name] = free_port()
            admitter_env = {"FAIRQ_HEALTH_PORT": str(health[name])}
            components.append(spawn("admitter", name, child_env | admitter_env, log_dir))
        gateways = [
            spawn("gateway", name, child_env | {"FAIRQ_HTTP_PORT": str(port)}, log_dir)
            for name, port in zip(names("gateway", s.gateways), s.gateway_ports, strict=True)
        ]
        components += gateways
        bases = [f"http://127.0.0.1:{port}" for port in s.gateway_ports]
        for gateway, base in zip(gateways, bases, strict=True):
            wait_http_ready(gateway, f"{base}/readyz")
        note = load_demo(bases[0], secrets["FAIRQ_OPERATOR_KEY"], s.opens_in_s)
        broker = "KAFKA_BOOTSTRAP" if env.get("KAFKA_BOOTSTRAP") else s.broker
        started = Stack(
            s, secrets["FAIRQ_OPERATOR_KEY"], redis_url, bootstrap, broker, health, stack_file
        )
        print(_banner(started, note, limits_note(env)), flush=True)
        supervise_until_signalled(components)
        print("\nstopping fairq ...", flush=True)
        return 0
    return 1  # unreachable: the with-block returns
