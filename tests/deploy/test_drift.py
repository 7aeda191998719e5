"""The deployment files and the code cannot drift apart.

- Topics: every place in ``deploy/`` that creates topics (the compose file's and the
  Kubernetes Job's ``fairq topics``, the ``kafka-topics.sh`` commands in
  deploy/README.md) asks for the partitions, replicas, ``min.insync.replicas``,
  retention and compaction that ``fairq.topics.topic_specs`` declares; every
  deployment uses one partition count, and the allocators are sized to it.
- Variables: every variable a deployment file sets for a fairq process is one that
  process's settings read (recorded by reading them through a mapping that notes every
  name asked for), so a typo or a removed setting fails here instead of being ignored.

Each check is a function returning what is wrong; the tests run it on the real files
(nothing wrong) and on a deliberately broken copy (the break is reported).
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from allocator.settings import AllocatorSettings, snapshot_topic
from fairq import envfile, eventloop
from fairq.cli import log_level
from fairq.config import Connections, Topics
from fairq.topics import topic_specs
from gateway.settings import GatewaySettings
from gateway.workers import WorkerSettings
from tests.deploy.files import (
    COMPOSE,
    DEPLOY_README,
    DOCKERFILE,
    ENV_EXAMPLE,
    SECRETS_EXAMPLE,
    Process,
    compose_processes,
    kubernetes_processes,
    load_yaml,
    manifests,
    pod_containers,
    systemd_processes,
    topics_command,
)
from waitingroom.settings import AdmitterSettings

# (partitions, replication) -> {topic: (partitions, replication, configs)}
TopicSettings = dict[str, tuple[int, int, dict[str, str]]]


def declared(partitions: int, replication: int) -> TopicSettings:
    """What ``fairq topics`` creates (``fairq.cli._topics``), by topic name."""
    topics = Topics()
    specs = topic_specs(topics, partitions, replication, snapshot_topic(topics.commands))
    return {t.name: (t.num_partitions, t.replication_factor, dict(t.topic_configs)) for t in specs}


# --- topics -------------------------------------------------------------------------


def topic_jobs(compose: Mapping[str, Any], docs: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    """The ``fairq topics`` command lines of the compose file and the manifests."""
    jobs = []
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:1] == ["topics"]:
            jobs.append(shlex.join(command))
    for _, doc in docs:
        for container in pod_containers(doc):
            args = container.get("args") or []
            if args[:1] == ["topics"]:
                jobs.append(shlex.join(args))
    return jobs


def shell_commands(markdown: str) -> list[list[str]]:
    """The commands of the ``sh`` blocks of a Markdown text (continued lines joined)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.replace("$KAFKA_BOOTSTRAP", "kafka:9092"), comments=True)
            if words:
                commands.append(words)
    return commands


def kafka_topics_settings(markdown: str) -> TopicSettings:
    """The topics the text's ``kafka-topics.sh --create`` commands create."""
    found: TopicSettings = {}
    for words in shell_commands(markdown):
        if words[0] != "kafka-topics.sh" or "--create" not in words:
            continue
        options: dict[str, str] = {}
        configs: dict[str, str] = {}
        for flag, value in itertools.pairwise(words):
            if flag == "--config":
                key, _, setting = value.partition("=")
                configs[key] = setting
            elif flag.startswith("--"):
                options[flag] = value
        found[options["--topic"]] = (
            int(options["--partitions"]),
            int(options["--replication-factor"]),
            configs,
        )
    return found


def kafka_configs_changes(markdown: str) -> list[tuple[str, dict[str, str]]]:
    """(topic, settings) of the text's ``kafka-configs.sh --alter --add-config`` commands."""
    changes = []
    for words in shell_commands(markdown):
        if words[0] == "kafka-configs.sh" and "--add-config" in words:
            options = dict(itertools.pairwise(words))
            pairs = (item.split("=", 1) for item in options["--add-config"].split(","))
            changes.append((options["--entity-name"], {k: v for k, v in pairs}))
    return changes


def topic_problems(jobs: Iterable[str], markdown: str, allocators: Iterable[int]) -> list[str]:
    problems = []
    counts = set()
    for job in jobs:
        partitions, replication = topics_command(shlex.split(job))
        counts.add(partitions)
        if replication != 3:
            problems.append(f"{job!r}: {replication} replicas, production needs 3")
    for topic, (partitions, replication, configs) in kafka_topics_settings(markdown).items():
        if topic != Topics().state:  # the state topic has one partition everywhere
            counts.add(partitions)
        want = declared(partitions, replication).get(topic)
        if want is None:
            problems.append(f"kafka-topics.sh creates {topic}, which fairq does not use")
        elif want != (partitions, replication, configs):
            problems.append(f"kafka-topics.sh creates {topic} as {configs}; fairq: {want}")
    for topic, changed in kafka_configs_changes(markdown):
        want = declared(1, 3).get(topic)
        if want is None or not changed.items() <= want[2].items():
            problems.append(f"kafka-configs.sh sets {changed} on {topic}; fairq: {want}")
    documented = set(kafka_topics_settings(markdown))
    missing = set(declared(1, 3)) - documented
    if missing:
        problems.append(f"deploy/README.md does not say how to create {sorted(missing)}")
    if len(counts) > 1:
        problems.append(f"the deployments create topics with different partitions: {counts}")
    for replicas in allocators:
        for partitions in counts:
            if replicas > partitions or partitions % replicas:
                problems.append(
                    f"{replicas} allocators do not share {partitions} partitions evenly"
                )
    return problems


def allocator_counts(
    compose: Mapping[str, Any], docs: list[tuple[Path, dict[str, Any]]]
) -> list[int]:
    """How many allocators each deployment runs: the compose file's allocator services,
    each manifest's replicas."""
    in_compose = sum(p.command == "allocator" for p in compose_processes(compose))
    return [in_compose] + [
        int(doc["spec"]["replicas"])
        for _, doc in docs
        if any((c.get("args") or [])[:1] == ["allocator"] for c in pod_containers(doc))
    ]


def test_the_deployments_create_the_topics_fairq_declares() -> None:
    compose, docs = load_yaml(COMPOSE), list(manifests())
    jobs = topic_jobs(compose, docs)
    assert len(jobs) == 2, jobs  # the compose file's and the Kubernetes Job's
    allocators = allocator_counts(compose, docs)
    assert allocators == [2, 4]
    assert topic_problems(jobs, DEPLOY_README.read_text(), allocators) == []


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        (
            "in-sync replicas",
            "--config min.insync.replicas=2 \\\n",
            "--config min.insync.replicas=1 \\\n",
        ),
        ("retention", "retention.ms=-1 --config retention.bytes=-1", "retention.ms=604800000"),
        ("compaction", "cleanup.policy=compact", "cleanup.policy=delete"),
        ("an altered retention", "--add-config retention.ms=-1,", "--add-config retention.ms=1,"),
    ],
)
def test_a_documented_topic_setting_unlike_the_code_is_reported(
    what: str, old: str, new: str
) -> None:
    readme = DEPLOY_README.read_text()
    assert old in readme, what
    assert topic_problems([], readme.replace(old, new, 1), []) != []


def test_a_deployment_with_other_topic_settings_is_reported() -> None:
    readme = DEPLOY_README.read_text()
    base = "topics --partitions 8 --replication-factor 3"
    assert topic_problems([base, "topics --partitions 8 --replication-factor 1"], readme, [4])
    assert topic_problems([base, "topics --partitions 12 --replication-factor 3"], readme, [4])
    assert topic_problems([base], readme, [3])  # 3 allocators cannot share 8 partitions
    assert topic_problems([base], readme, [16])


# --- variables ----------------------------------------------------------------------


class Recording(dict[str, str]):
    """An environment that notes every name read from it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def variables_read() -> dict[str, set[str]]:
    """The variables each fairq command reads, by reading its settings (and the log
    level and event loop every command reads) from a recording environment."""
    valid = envfile.read(SECRETS_EXAMPLE) | {
        "REDIS_URL": "redis://redis:6379/0",
        "KAFKA_BOOTSTRAP": "kafka:9092",
    }
    readers: dict[str, Any] = {
        "gateway": lambda env: (GatewaySettings.from_env(env), WorkerSettings.from_env(env)),
        "admitter": AdmitterSettings.from_env,
        "allocator": AllocatorSettings.from_env,
        "topics": Connections.from_env,  # fairq.cli._topics
    }
    read = {}
    for command, reader in readers.items():
        env = Recording(valid)
        reader(env)
        log_level(env)
        eventloop.from_env(env)
        read[command] = env.read
    return read


def variable_problems(
    processes: Iterable[Process], shared: Mapping[str, Iterable[str]], read: Mapping[str, set[str]]
) -> list[str]:
    """Variables set for one process that its command does not read, and variables of a
    shared file (every process gets it) that no command reads."""
    problems = [
        f"{p.where} sets {name}, which `fairq {p.command}` does not read"
        for p in processes
        for name in p.env
        if name not in read[p.command]
    ]
    anyone = set().union(*read.values())
    problems += [
        f"{where} sets {name}, which no fairq process reads"
        for where, names in shared.items()
        for name in names
        if name not in anyone
    ]
    return problems


def dockerfile_env(text: str) -> list[str]:
    """The names the ENV instructions of the Dockerfile's last stage (the image) set
    (``ENV A=1 B=2``, continued lines)."""
    image = re.split(r"^FROM ", text, flags=re.M)[-1]
    names = []
    for instruction in re.findall(r"^ENV (.*?)(?<!\\)$", image, re.M | re.S):
        names += [word.split("=", 1)[0] for word in shlex.split(instruction.replace("\\\n", " "))]
    return names


def deployment_variables() -> tuple[list[Process], dict[str, list[str]]]:
    compose = load_yaml(COMPOSE)
    docs = list(manifests())
    processes = [
        *compose_processes(compose),
        *kubernetes_processes(docs),
        *systemd_processes(),
    ]
    config_maps = {
        f"ConfigMap {doc['metadata']['name']}": list(doc["data"])
        for _, doc in docs
        if doc["kind"] == "ConfigMap"
    }
    fairq_image = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}  # Python's own
    shared = {
        "deploy/fairq.env.example": list(envfile.read(ENV_EXAMPLE)),
        "deploy/kubernetes/secrets.env.example": list(envfile.read(SECRETS_EXAMPLE)),
        "deploy/Dockerfile": [
            n for n in dockerfile_env(DOCKERFILE.read_text()) if n not in fairq_image
        ],
        **config_maps,
    }
    return processes, shared


def test_every_variable_the_deployments_set_is_one_fairq_reads() -> None:
    processes, shared = deployment_variables()
    commands = {p.command for p in processes}
    assert commands == {"gateway", "admitter", "allocator", "topics"}, commands
    assert "FAIRQ_HEALTH_PORT" in shared["deploy/Dockerfile"]  # the ENV lines were found
    assert variable_problems(processes, shared, variables_read()) == []


def test_a_variable_fairq_does_not_read_is_reported() -> None:
    processes, shared = deployment_variables()
    read = variables_read()
    typo = Process("compose service gateway", "gateway", {"FAIRQ_HTTP_PROT": "8080"})
    wrong_process = Process("a manifest", "gateway", {"FAIRQ_ALLOCATOR_INSTANCE": "x"})
    assert len(variable_problems([*processes, typo, wrong_process], shared, read)) == 2
    assert variable_problems(processes, {**shared, "fairq.env": ["FAIRQ_SIGNING_KEY"]}, read)
