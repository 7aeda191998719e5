"""schemathesis fuzzes the running gateway against its own OpenAPI document.

A real gateway process (with the allocator and the admitter, ``tests.harness``) on the
test's Redis and Tansu; its document is read from ``/api/openapi.json``. Every check
is on (server errors, status codes, content types, response schemas, headers, the
negative and positive data checks, auth, methods), and every phase (the documented
examples, coverage of each schema's edges, random fuzzing, and stateful sequences).
It runs twice: as an anonymous visitor, and with the operator key. The state-changing
run has a room and a campaign of its own (``fuzz``): every ``{room}`` and
``{campaign}`` it sends is that one, so it changes nothing another test sees, and the
room's routes are reached past their 404.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from fairq.config import Connections
from fairq.demo import small_campaign
from tests.harness import OPERATOR_KEY, running_system

pytestmark = pytest.mark.timeout(900)
ROOM = CAMPAIGN = "fuzz"
MAX_EXAMPLES = 40  # per operation and run: with the coverage phase's, thousands in all


def _prepare(base: str) -> None:
    """The fuzzing's own campaign and room (open, admitting), made as an operator would."""
    op = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    first_day = dt.date.today() + dt.timedelta(days=2)
    with requests.Session() as client:
        client.headers.update(op)
        made = client.put(
            f"{base}/api/admin/campaigns/{CAMPAIGN}", json=small_campaign(first_day), timeout=60
        )
        assert made.status_code in (200, 201, 202), made.text
        room = {"campaign": CAMPAIGN, "opens_in_s": 0, "rate_per_s": 1000, "max_active": 1000}
        put = client.put(f"{base}/api/admin/rooms/{ROOM}", json=room, timeout=60)
        assert put.status_code in (200, 201), put.text


def _config(tmp_path: Path, base: str, key: str | None) -> Path:
    headers = f'headers = {{ Authorization = "Bearer {key}" }}\n' if key else ""
    config = tmp_path / f"schemathesis-{'operator' if key else 'anonymous'}.toml"
    config.write_text(
        f'base-url = "{base}"\n'
        f"{headers}"
        "[generation]\n"
        f"max-examples = {MAX_EXAMPLES}\n"
        "[parameters]\n"
        f'"path.room" = "{ROOM}"\n'
        f'"path.campaign" = "{CAMPAIGN}"\n'
        # A ticket may come as the bearer token, ?ticket= or the cookie, and one valid
        # suffices; ignored_auth spoils one of them while the stateful phase's valid
        # ?ticket= stays, and then takes the 200 for a credential ignored.
        "[[operations]]\n"
        'include-path-regex = "^/api/rooms/\\\\{room\\\\}/(status|events)$"\n'
        "checks.ignored_auth.enabled = false\n"
    )
    return config


def _run(config: Path, base: str, report: Path) -> tuple[int, str, int]:
    """schemathesis's exit code, its output, and the number of cases it ran."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        f"{base}/api/openapi.json",
        "--checks",
        "all",
        "--workers",
        "2",
        "--seed",
        "1",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=800, check=False)
    output = done.stdout + done.stderr
    return done.returncode, output, _cases(report)


def _cases(report: Path) -> int:
    """The test cases the run sent (from its ndjson events)."""
    total = 0
    for line in report.read_text().splitlines():
        if '"ScenarioFinished"' in line:
            total += len(re.findall(r'"case_id"', line)) or 0
    if total:
        return total
    return sum(1 for line in report.read_text().splitlines() if '"response"' in line)


@pytest.mark.parametrize("as_operator", [False, True], ids=["anonymous", "operator"])
def test_the_gateway_conforms_to_its_openapi_document(
    connections: Connections, tmp_path: Path, as_operator: bool
) -> None:
    with running_system(connections, tmp_path, gateways=1) as system:
        base = system.gateways[0]
        _prepare(base)
        config = _config(tmp_path, base, OPERATOR_KEY if as_operator else None)
        code, output, cases = _run(config, base, tmp_path / "events.ndjson")
        print(output[-3000:])
        print(json.dumps({"cases": cases}))
        assert code == 0, output[-20000:]
