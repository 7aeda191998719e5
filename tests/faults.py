"""Faults as tests: a storm of visitors while one part of the system fails.

A scenario starts the whole path in processes (``tests.harness``) on a Redis and a
broker of its own, launches a small campaign, lets a storm of visitors loose
(``tests.storm``), injects its fault once the storm has bookings in flight, waits
until every visitor is done, and then reads the log (``tests.eventlog``). The
faults (issue 17, section 7):

- ``allocator_kill``: the allocator is SIGKILLed and started again at once;
- ``redis_pause``: Redis is stopped (SIGSTOP) for 10 s, then resumed;
- ``broker_pause``: the broker (Tansu) is stopped for 15 s, then resumed;
- ``gateway_restart``: a gateway is SIGKILLed and started again on its port;

and with a cluster of three Apache Kafka brokers (issue 19), the broker that leads the
commands topic's partition 0:

- ``broker_node_kill``: SIGKILLed (and not started again);
- ``broker_node_pause``: stopped (SIGSTOP) for 30 s, then resumed.

``Outcome.violations`` lists every broken promise; ``Outcome.report`` the answers
during the fault and the recovery times: from the fault's end (the resume, or the
restarted process spawned) to the first successful answer of each kind, on the
restarted gateway for ``gateway_restart``; and how long answers paused: the longest
a booking accepted around the fault waited for the allocator's answer.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from allocator.settings import snapshot_topic
from fairq.config import Connections, Kafka, KafkaTimeouts, Topics
from fairq.devservices import KafkaCluster, Server
from fairq.tasks import cancel_and_wait
from fairq.topics import ensure_topics
from tests.conftest import fresh_topics, paused
from tests.eventlog import Audit, audit, read_log
from tests.harness import System, running_system
from tests.storm import (
    Answer,
    Client,
    Recorder,
    Storm,
    StormPlan,
    Visitor,
    client_session,
    launch,
)

REDIS_PAUSE_S = 10.0
BROKER_PAUSE_S = 15.0
BROKER_NODE_PAUSE_S = 30.0  # one broker of three: longer than its session (9 s)
FAULT_AFTER_BOOKINGS = 40  # the fault comes once this many bookings were accepted
TRIGGER_WAIT_S = 60.0  # bounds the wait for the storm to reach the moment of the fault
# What the recovery times are measured on, in the order they are printed.
RECOVERY_KINDS = ("join", "status", "book", "answer", "booking", "confirm", "phone_book")
# The only refusals a storm of valid requests may get: a conflict (already booked, the
# token used, not held any more ...) or a rate limit. A 400, 401, 403 or 404 means that
# the system misjudged a valid request.
STORM_REFUSALS = frozenset({409, 429})
# Snapshots during the storm, so a restarted allocator loads one and replays the rest.
SYSTEM_ENV = {"FAIRQ_SNAPSHOT_EVERY_RECORDS": "200"}


@dataclass(frozen=True, slots=True)
class Servers:
    redis: Server
    kafka: Server  # the broker, or the first node of a cluster
    kafka_nodes: tuple[Server, ...] = ()  # every node of a cluster (node ids 1, 2, ...)


@dataclass(frozen=True, slots=True)
class Window:
    """When a fault began and ended (time.monotonic()), and the gateway it hit if any,
    with when that gateway answered its health check again."""

    start_s: float
    end_s: float
    gateway: str | None = None
    gateway_back_s: float = 0.0

    def excuses(self, answer: Answer) -> bool:
        """Whether ``answer`` is a connection to the restarted gateway while it was down."""
        return answer.gateway == self.gateway and answer.sent_s < self.gateway_back_s


Inject = Callable[[System, Servers], Awaitable[Window]]
RESTARTED_GATEWAY = 0  # the index of the gateway ``restart_gateway`` restarts


async def kill_allocator(system: System, servers: Servers) -> Window:
    start = time.monotonic()
    await system.allocator.signal_and_wait(signal.SIGKILL)
    system.allocator.start()
    return Window(start, time.monotonic())


async def pause_redis(system: System, servers: Servers) -> Window:
    return await _pause(servers.redis, REDIS_PAUSE_S)


async def pause_broker(system: System, servers: Servers) -> Window:
    return await _pause(servers.kafka, BROKER_PAUSE_S)


async def _pause(server: Server, seconds: float) -> Window:
    start = time.monotonic()
    with paused(server):
        await asyncio.sleep(seconds)  # the fault itself
    return Window(start, time.monotonic())


async def kill_broker_node(system: System, servers: Servers) -> Window:
    node = await _leader_of_commands(system, servers)
    start = time.monotonic()
    node.process.send_signal(signal.SIGKILL)
    node.process.wait()
    return Window(start, time.monotonic())


async def pause_broker_node(system: System, servers: Servers) -> Window:
    return await _pause(await _leader_of_commands(system, servers), BROKER_NODE_PAUSE_S)


async def _leader_of_commands(system: System, servers: Servers) -> Server:
    """The node of the cluster that leads partition 0 of the commands topic."""
    assert servers.kafka_nodes, "this fault needs a cluster (Servers.kafka_nodes)"
    topic = Topics.from_env(system.allocator.env).commands
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.kafka.url)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    leader: int = next(p["leader"] for p in described["partitions"] if p["partition"] == 0)
    return servers.kafka_nodes[leader - 1]


async def restart_gateway(system: System, servers: Servers) -> Window:
    gateway = system.gateway_services[RESTARTED_GATEWAY]
    start = time.monotonic()
    await gateway.signal_and_wait(signal.SIGKILL)
    end = time.monotonic()
    await gateway.restart()  # spawned at ``end``; back once it answers its health check
    return Window(start, end, gateway.url, time.monotonic())


@dataclass(frozen=True, slots=True)
class Fault:
    inject: Inject
    gateway: int | None = None  # the gateway it hits: it strikes as a booking goes there


FAULTS: dict[str, Fault] = {
    "allocator_kill": Fault(kill_allocator),
    "redis_pause": Fault(pause_redis),
    "broker_pause": Fault(pause_broker),
    "gateway_restart": Fault(restart_gateway, gateway=RESTARTED_GATEWAY),
}
# On a cluster of three Apache Kafka brokers (Servers.kafka_nodes).
CLUSTER_FAULTS: dict[str, Fault] = {
    "broker_node_kill": Fault(kill_broker_node),
    "broker_node_pause": Fault(pause_broker_node),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    fault: str
    window: Window
    recorder: Recorder
    visitors: list[Visitor]
    audit: Audit
    dead: list[str]  # processes that exited on their own
    log_dir: Path  # the processes' logs

    def violations(self) -> dict[str, list[str]]:
        """Every broken promise, by check (each list empty when all held)."""
        out = self.audit.findings()
        log = self.audit.bookings
        accepted = self.recorder.accepted
        out["not_final"] = [
            f"{b} ({how}): {self.audit.trace(b)}"
            for b, how in accepted.items()
            if b not in log or not log[b].final
        ]
        out["told_otherwise"] = [
            f"{b}: visitor {v.index} saw {seen}, the log says {log[b].state}"
            for v in self.visitors
            for b, seen in v.seen.items()
            if seen and b in log and log[b].final and seen != log[b].state
        ]
        out["unknown_bookings"] = [
            f"{b} ({log[b].state}, partition {log[b].partition}): in the log, no visitor was told"
            for b in log
            if b not in accepted
        ]
        out["bad_answers"] = [
            f"{a.request} via {a.gateway}: {a.problem}" for a in self.recorder.problems()
        ]
        out["valid_requests_refused"] = [
            f"{a.request} via {a.gateway}: {a.status} {a.detail}"
            for a in self.recorder.answers
            if a.status is not None and 400 <= a.status < 500 and a.status not in STORM_REFUSALS
        ]
        out["unreachable"] = [
            f"{a.request} via {a.gateway}: {a.detail}"
            for a in self.recorder.answers
            if a.status is None and a.problem is None and not self.window.excuses(a)
        ]
        out["unfinished"] = [f"visitor {v.index}: {v.outcome}" for v in self.visitors if v.gave_up]
        out["dead"] = self.dead
        return out

    def sold_out(self) -> bool:
        """Whether the storm asked for more pairs than there were (the capacity checks
        mean something only then)."""
        return any(b.reason == "sold_out" for b in self.audit.bookings.values())

    def recovery_s(self) -> dict[str, float | None]:
        """Fault end -> the first successful answer of each kind to a request sent since
        the fault began (None: none came)."""
        w = self.window
        out: dict[str, float | None] = {}
        for kind in RECOVERY_KINDS:
            first = self.recorder.first_success(kind, w.start_s, w.end_s, w.gateway)
            out[kind] = None if first is None else first - w.end_s
        return out

    def longest_wait_s(self, kind: str = "answer") -> float:
        """The longest a successful answer of ``kind`` answered since the fault began
        took; for ``answer``: from a booking accepted to the allocator's answer seen
        (how long answers paused)."""
        return max(
            (
                a.answered_s - a.sent_s
                for a in self.recorder.answers
                if a.kind == kind and a.ok and a.answered_s >= self.window.start_s
            ),
            default=0.0,
        )

    def report(self) -> str:
        w, recovery = self.window, self.recovery_s()
        until = w.end_s + max((s for s in recovery.values() if s is not None), default=0.0)
        during = Counter(
            (a.kind, "no answer" if a.status is None else str(a.status))
            for a in self.recorder.answers
            if a.kind != "answer" and a.sent_s <= until and a.answered_s >= w.start_s
        )
        lines = [
            f"fault {self.fault}: {w.end_s - w.start_s:.1f} s"
            + (f" (gateway {w.gateway})" if w.gateway else "")
            + f"; logs in {self.log_dir}",
            f"  visitors {len(self.visitors)}, answers {len(self.recorder.answers)},"
            f" bookings accepted {len(self.recorder.accepted)},"
            f" final states {dict(Counter(b.state for b in self.audit.bookings.values()))}",
            "  visits ended: "
            + ", ".join(
                f"{o} {n}" for o, n in Counter(v.outcome for v in self.visitors).most_common(8)
            ),
            "  answers during the fault and the recovery: "
            + (", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(during.items())) or "none"),
            "  recovery (fault end -> first success): "
            + ", ".join(
                f"{k} {'none' if s is None else f'{s:.2f} s'}" for k, s in recovery.items()
            ),
            f"  answers paused: a booking waited at most {self.longest_wait_s():.2f} s for"
            f" the allocator's answer, a book request at most {self.longest_wait_s('book'):.2f} s",
        ]
        broken = {k: v for k, v in self.violations().items() if v}
        for check, items in broken.items():
            lines.append(f"  VIOLATED {check} ({len(items)}): " + "; ".join(items[:5]))
        return "\n".join(lines)


async def run_fault(
    fault: str,
    connections: Connections,
    servers: Servers,
    log_dir: Path,
    partitions: int,
    plan: StormPlan | None = None,
) -> Outcome:
    """Start the system, storm it, inject ``fault`` mid-storm, and read the log.

    The fault strikes once ``FAULT_AFTER_BOOKINGS`` bookings were accepted, as the next
    visitor with an access code sends its booking (to the gateway that will be
    restarted, for ``gateway_restart``): a booking is on its way when it comes."""
    plan = plan or StormPlan()
    chosen = (FAULTS | CLUSTER_FAULTS)[fault]
    with running_system(connections, log_dir, extra_env=SYSTEM_ENV) as system:
        async with client_session() as http:
            started = await launch(http, system.gateways[0], plan, partitions)
            recorder = Recorder(
                trigger_after=FAULT_AFTER_BOOKINGS,
                strike_on=None if chosen.gateway is None else system.gateways[chosen.gateway],
            )
            client = Client(http, system.gateways, recorder, time.monotonic() + plan.deadline_s)
            storm = asyncio.create_task(Storm(client, started, plan).run())
            try:
                await _strike_moment(recorder, log_dir)
                window = await chosen.inject(system, servers)
                visitors = await storm
            finally:
                await cancel_and_wait([storm])
        dead = system.dead()
        log = await read_log(connections)
    return Outcome(fault, window, recorder, visitors, audit(log), dead, log_dir)


async def run_cluster_fault(
    fault: str,
    redis: Server,
    cluster: KafkaCluster,
    log_dir: Path,
    partitions: int,
    plan: StormPlan | None = None,
    timeouts: KafkaTimeouts | None = None,
) -> Outcome:
    """``run_fault`` on fresh topics of ``cluster`` (replicated on every node), with
    idempotent producers and the Kafka clients' ``timeouts`` (fairq's defaults if None)."""
    topics = fresh_topics()
    snapshots = snapshot_topic(topics.commands)
    kafka = Kafka(cluster.url)
    await ensure_topics(kafka, topics, partitions, cluster.replication, snapshots)
    connections = Connections(redis.url, cluster.url, topics, True, timeouts or KafkaTimeouts())
    servers = Servers(redis, cluster.nodes[0], cluster.nodes)
    return await run_fault(fault, connections, servers, log_dir, partitions, plan)


async def _strike_moment(recorder: Recorder, log_dir: Path) -> None:
    """Wait (bounded) until the storm reaches the moment the fault is to strike."""
    try:
        await asyncio.wait_for(recorder.booking_sent.wait(), TRIGGER_WAIT_S)
    except TimeoutError:
        answers = Counter((a.kind, a.status) for a in recorder.answers)
        raise AssertionError(
            f"the storm did not reach the moment of the fault within {TRIGGER_WAIT_S:.0f} s"
            f" ({len(recorder.accepted)} bookings accepted; answers {dict(answers)});"
            f" logs in {log_dir}"
        ) from None
