"""The deployment files of ``deploy/`` as data, for the static checks of tests/deploy.

Containers cannot be built or run here (no container engine), so the files are checked
as text and data: against their schemas, with their own tools, and against the code
(the topic settings of ``fairq.topics``, the variables the settings read).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fairq.cli import parser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
HAPROXY = DEPLOY / "haproxy" / "haproxy.cfg"
KUBERNETES = DEPLOY / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
SYSTEMD = DEPLOY / "systemd"
ENV_EXAMPLE = DEPLOY / "fairq.env.example"
SECRETS_EXAMPLE = KUBERNETES / "secrets.env.example"
DEPLOY_README = DEPLOY / "README.md"
KAFKA_POM = DEPLOY / "kafka" / "pom.xml"

FAIRQ_COMMANDS = ("gateway", "admitter", "allocator", "topics")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def manifests(directory: Path = KUBERNETES) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes resource in ``directory`` (the kustomization is not one)."""
    for path in sorted(directory.glob("*.yaml")):
        if path == KUSTOMIZATION:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


@dataclass(frozen=True)
class Process:
    """One fairq process a deployment file starts: which command, where, with what
    variables set for it alone (shared files are checked against every process)."""

    where: str
    command: str
    env: Mapping[str, str]


def compose_processes(compose: Mapping[str, Any]) -> Iterator[Process]:
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if command and command[0] in FAIRQ_COMMANDS:
            yield Process(f"compose service {name}", command[0], service.get("environment", {}))


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "<from field>")) for e in container.get("env", [])}


def pod_containers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template (none for other kinds)."""
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
        "template", {}
    )
    return list(template.get("spec", {}).get("containers", []))


def kubernetes_processes(docs: list[tuple[Path, dict[str, Any]]]) -> Iterator[Process]:
    for path, doc in docs:
        for container in pod_containers(doc):
            args = container.get("args") or []
            if args and args[0] in FAIRQ_COMMANDS:
                where = f"{path.name} {doc['kind']}/{doc['metadata']['name']}"
                yield Process(where, args[0], container_env(container))


def systemd_processes(directory: Path = SYSTEMD) -> Iterator[Process]:
    for path in sorted(directory.glob("*.service")):
        text = path.read_text()
        start = re.search(r"^ExecStart=(.*)$", text, re.M)
        assert start, f"{path.name} has no ExecStart"
        words = shlex.split(start.group(1))
        command = words[words.index(next(w for w in words if w.endswith("fairq"))) + 1]
        env: dict[str, str] = {}
        for line in re.findall(r"^Environment=(.*)$", text, re.M):
            for word in shlex.split(line):
                name, _, value = word.partition("=")
                env[name] = value
        yield Process(f"systemd {path.name}", command, env)


def topics_command(args: list[str]) -> tuple[int, int]:
    """``fairq topics --partitions N --replication-factor R`` → (N, R), as fairq reads it."""
    parsed = parser().parse_args(args)
    return int(parsed.partitions), int(parsed.replication_factor)


def tool(name: str) -> str:
    """A command from this interpreter's virtualenv (PyPI's) or from PATH (Debian's;
    haproxy is in /usr/sbin, which a user's PATH may lack)."""
    venv = str(Path(sys.executable).parent)
    path = (
        shutil.which(name, path=venv) or shutil.which(name) or shutil.which(name, path="/usr/sbin")
    )
    assert path, f"{name} is missing: `make test` installs it (see the Makefile)"
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
