"""deploy/compose.yaml and the files it mounts, checked without a container engine.

- the compose file against the compose specification's JSON schema (the copy
  ``check-jsonschema`` vendors: ``--builtin-schema vendor.compose-spec``, no download);
- HAProxy's configuration with ``haproxy -c`` (Debian's haproxy), Prometheus's with
  ``promtool check config``;
- the Kafka cluster it describes against the one the tests run (``fairq.devservices``):
  the same broker version (deploy/kafka/pom.xml), three KRaft nodes that are all
  voters, and the replication settings of ``kafka_properties`` for three nodes.

Each check also runs on a broken copy, which it must refuse.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fairq.devservices import kafka_properties
from tests.deploy.files import COMPOSE, DEPLOY, HAPROXY, KAFKA_POM, load_yaml, run, tool

PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "compose.yml"


def compose_schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    return run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))


def test_the_compose_file_follows_the_compose_specification() -> None:
    result = compose_schema_check(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("a misspelt key", "    depends_on: [gateway]\n", "    depend_on: [gateway]\n"),
        ("replicas not a number", "      replicas: 3\n", "      replicas: [3]\n"),
        ("an unknown condition", "service_completed_successfully", "service_finished"),
    ],
)
def test_a_broken_compose_file_is_refused(tmp_path: Path, what: str, old: str, new: str) -> None:
    text = COMPOSE.read_text()
    assert old in text, what
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace(old, new, 1))
    assert compose_schema_check(broken).returncode != 0, what


def test_haproxy_accepts_its_configuration(tmp_path: Path) -> None:
    result = run(tool("haproxy"), "-c", "-f", str(HAPROXY))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "haproxy.cfg"
    broken.write_text(HAPROXY.read_text().replace("balance leastconn", "balance fastest"))
    assert run(tool("haproxy"), "-c", "-f", str(broken)).returncode != 0


def test_haproxy_routes_by_readiness_to_every_gateway_replica() -> None:
    text = HAPROXY.read_text()
    assert "option httpchk GET /readyz" in text
    assert re.search(r"server-template \w+ \d+ gateway:8080", text)
    # the gateways count rate limits per X-Forwarded-For's last address (hops 1)
    assert "http-request set-header X-Forwarded-For %[src]" in text
    gateway = load_yaml(COMPOSE)["services"]["gateway"]
    assert gateway["environment"]["FAIRQ_CLIENT_IP_HOPS"] == "1"
    assert gateway["environment"]["FAIRQ_HTTP_PORT"] == "8080"


def test_prometheus_accepts_the_compose_configuration(tmp_path: Path) -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "prometheus" / "compose.yml"
    shutil.copytree(PROMETHEUS_CONFIG.parent, broken.parent)
    broken.write_text(PROMETHEUS_CONFIG.read_text().replace("type: A", "type: AAAAA", 1))
    assert run(tool("promtool"), "check", "config", str(broken)).returncode != 0


def kraft_cluster_id(text: str) -> bool:
    """Whether ``text`` is a KRaft cluster id: 16 bytes in URL-safe base64, unpadded
    (what ``kafka-storage.sh random-uuid`` prints; the storage format refuses others)."""
    try:
        return len(text) == 22 and len(base64.urlsafe_b64decode(text + "==")) == 16
    except ValueError:
        return False


def kafka_problems(compose: Mapping[str, Any], pom: str) -> list[str]:
    """How the compose file's Kafka differs from the three-node cluster of the tests."""
    nodes = {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("apache/kafka:")
    }
    problems = []
    if len(nodes) != 3:
        problems.append(f"{len(nodes)} Kafka nodes, not 3")
    version = re.search(r"<kafka.version>(.*?)</kafka.version>", pom)
    assert version, "deploy/kafka/pom.xml names no kafka.version"
    tested = kafka_properties(1, 9092, 9093, "", Path("/data"), nodes=3)
    replication = {
        key: value
        for key, value in tested.items()
        if "replication" in key or "insync" in key or key.endswith("min.isr")
    }
    for name, service in nodes.items():
        if service["image"] != f"apache/kafka:{version.group(1)}":
            problems.append(f"{name} runs {service['image']}, the tests {version.group(1)}")
        props = {
            key.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
            for key, value in service["environment"].items()
        }
        for key, value in replication.items():
            if props.get(key) != value:
                problems.append(f"{name}: {key} is {props.get(key)}, the tests' cluster {value}")
        voters = props.get("controller.quorum.voters", "").split(",")
        if sorted(v.split("@")[1].split(":")[0] for v in voters if "@" in v) != sorted(nodes):
            problems.append(f"{name}: the quorum voters {voters} are not the {len(nodes)} nodes")
        if not kraft_cluster_id(str(service["environment"].get("CLUSTER_ID", ""))):
            problems.append(f"{name}: CLUSTER_ID is not a UUID in URL-safe base64")
        if props.get("process.roles") != "broker,controller":
            problems.append(f"{name}: not a combined KRaft broker and controller")
    return problems


def test_the_compose_kafka_is_the_cluster_the_tests_run() -> None:
    assert kafka_problems(load_yaml(COMPOSE), KAFKA_POM.read_text()) == []


def test_a_kafka_unlike_the_tested_one_is_reported() -> None:
    pom = KAFKA_POM.read_text()
    text = COMPOSE.read_text()
    for old, new in [
        ('KAFKA_MIN_INSYNC_REPLICAS: "2"', 'KAFKA_MIN_INSYNC_REPLICAS: "1"'),
        ("image: apache/kafka:", "image: apache/kafka:3.7.0-"),
        ("2@kafka-2:9093,", ""),
        ("CLUSTER_ID: ", "CLUSTER_ID: fairq-"),
    ]:
        assert old in text
        assert kafka_problems(yaml.safe_load(text.replace(old, new, 1)), pom), old


def test_redis_keeps_an_append_only_file_and_never_evicts() -> None:
    conf = (DEPLOY / "redis" / "redis.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["appendonly"] == "yes"
    assert settings["maxmemory-policy"] == "noeviction"
    redis = load_yaml(COMPOSE)["services"]["redis"]
    assert "./redis/redis.conf:/usr/local/etc/redis/redis.conf:ro" in redis["volumes"]
