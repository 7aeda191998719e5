"""deploy/kubernetes against the Kubernetes schemas and what fairq's processes need.

``kubernetes-validate`` (PyPI) carries the schemas of each Kubernetes release, so the
check runs offline; strict, so a misspelt field is refused rather than ignored. Then
what the schemas cannot say: every fairq container probes /livez and /readyz on the
port its process serves them on, asks for resources and has limits, runs as a non-root
user, reads the Secret the kustomization generates; every workload has a
PodDisruptionBudget, the gateways an autoscaler. Each check also runs on a broken copy.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from fairq import envfile
from tests.deploy.files import (
    KUBERNETES,
    KUSTOMIZATION,
    SECRETS_EXAMPLE,
    container_env,
    load_yaml,
    manifests,
    pod_containers,
)

WORKLOADS = ("Deployment", "StatefulSet")
# the port each process serves /livez and /readyz on (docs/operators.md "Health and supervision")
HEALTH_PORT_VARIABLE = {"gateway": "FAIRQ_HTTP_PORT", "admitter": "FAIRQ_HEALTH_PORT",
                        "allocator": "FAIRQ_HEALTH_PORT"}  # fmt: skip

Docs = list[tuple[Path, dict[str, Any]]]


def schema_problems(docs: Docs) -> list[str]:
    problems = []
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{path.name} {doc.get('kind')}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            problems.append(f"{path.name}: no schema for {e}")
    return problems


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    docs = list(manifests())
    kinds = {doc["kind"] for _, doc in docs}
    assert {"Deployment", "StatefulSet", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "Service", "ConfigMap", "Job"} <= kinds  # fmt: skip
    assert schema_problems(docs) == []


@pytest.mark.parametrize("break_it", ["port_as_text", "misspelt_field", "no_selector"])
def test_a_manifest_the_schemas_refuse_is_reported(break_it: str) -> None:
    docs = copy.deepcopy(list(manifests()))
    gateway = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    container = pod_containers(gateway)[0]
    if break_it == "port_as_text":
        container["ports"][0]["containerPort"] = "eighty"
    elif break_it == "misspelt_field":
        container["livenesProbe"] = container.pop("livenessProbe")
    else:
        del gateway["spec"]["selector"]
    assert len(schema_problems(docs)) == 1


def fairq_containers(docs: Docs) -> Iterable[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(process, container, its workload) for every long-running fairq container."""
    for _, doc in docs:
        if doc["kind"] in WORKLOADS:
            for container in pod_containers(doc):
                yield container["args"][0], container, doc


def probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container["ports"] if p["name"] == port))


def workload_problems(docs: Docs, secret: str) -> list[str]:
    problems = []
    budgets = [doc["spec"]["selector"] for _, doc in docs if doc["kind"] == "PodDisruptionBudget"]
    scaled = {
        doc["spec"]["scaleTargetRef"]["name"]
        for _, doc in docs
        if doc["kind"] == "HorizontalPodAutoscaler"
    }
    for process, container, workload in fairq_containers(docs):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        port = int(container_env(container).get(HEALTH_PORT_VARIABLE[process], "-1"))
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            found = container.get(probe)
            if not found or found["httpGet"]["path"] != path:
                problems.append(f"{name}: no {probe} on {path}")
            elif probe_port(container, found) != port:
                problems.append(f"{name}: {probe} on {probe_port(container, found)}, not {port}")
        resources = container.get("resources", {})
        if not {"cpu", "memory"} <= set(resources.get("requests", {})):
            problems.append(f"{name}: no cpu and memory requests")
        if "memory" not in resources.get("limits", {}):
            problems.append(f"{name}: no memory limit")
        pod = workload["spec"]["template"]["spec"]
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: may run as root")
        refs = [e.get("secretRef", {}).get("name") for e in container.get("envFrom", [])]
        if process == "gateway" and secret not in refs:
            problems.append(f"{name}: does not read the Secret {secret}")
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if not any(b["matchLabels"].items() <= labels.items() for b in budgets):
            problems.append(f"{name}: no PodDisruptionBudget")
        if process == "gateway" and workload["metadata"]["name"] not in scaled:
            problems.append(f"{name}: no HorizontalPodAutoscaler")
    return problems


def generated_secret() -> str:
    (generator,) = load_yaml(KUSTOMIZATION)["secretGenerator"]
    return str(generator["name"])


def test_every_fairq_workload_is_probed_sized_budgeted_and_keyed() -> None:
    docs = list(manifests())
    assert {p for p, _, _ in fairq_containers(docs)} == set(HEALTH_PORT_VARIABLE)
    assert workload_problems(docs, generated_secret()) == []


@pytest.mark.parametrize(
    "break_it", ["probe_port", "readiness_path", "no_limits", "no_budget", "no_autoscaler"]
)
def test_a_workload_missing_what_it_needs_is_reported(break_it: str) -> None:
    docs = copy.deepcopy(list(manifests()))
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in docs}
    allocator = pod_containers(by_kind["StatefulSet", "fairq-allocator"])[0]
    if break_it == "probe_port":
        allocator["livenessProbe"]["httpGet"]["port"] = 8080
    elif break_it == "readiness_path":
        allocator["readinessProbe"]["httpGet"]["path"] = "/livez"
    elif break_it == "no_limits":
        del allocator["resources"]["limits"]
    else:
        kind = "PodDisruptionBudget" if break_it == "no_budget" else "HorizontalPodAutoscaler"
        docs = [
            (p, d) for p, d in docs if (d["kind"], d["metadata"]["name"]) != (kind, "fairq-gateway")
        ]
    assert len(workload_problems(docs, generated_secret())) == 1


def test_the_kustomization_lists_every_manifest_and_the_secret_keys() -> None:
    kustomization = load_yaml(KUSTOMIZATION)
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert set(kustomization["resources"]) == files
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    keys = set(envfile.read(SECRETS_EXAMPLE))
    assert keys == {"FAIRQ_SIGNING_KEYS", "FAIRQ_OPERATOR_KEY", "FAIRQ_IDENTITY_SECRET"}
