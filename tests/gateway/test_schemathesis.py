"""schemathesis fuzzes the running gateway against its own OpenAPI document.

A real gateway process (with the allocator and the admitter, ``tests.harness``) on the
test's Redis and Tansu; its document is read from ``/api/openapi.json``. Every check
is on (server errors, status codes, content types, response schemas, headers, the
negative and positive data checks, auth, methods; two settings are said where they are
made), and every phase (coverage of each schema's edges, random fuzzing, stateful
sequences).
It runs twice: as an anonymous visitor, and with the operator key. The state-changing
run has a room and a campaign of its own (``fuzz``): every ``{room}`` and
``{campaign}`` it sends is that one, so it changes nothing another test sees, and the
room's routes are reached past their 404.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from fairq.config import Connections
from fairq.demo import small_campaign
from tests.harness import OPERATOR_KEY, running_system

pytestmark = pytest.mark.timeout(600)
ROOM = CAMPAIGN = "fuzz"
MAX_EXAMPLES = 25  # per operation and run: with the coverage phase's, thousands in all
STATEFUL_STEPS = 10


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
        room: dict[str, Any] = {
            "campaign": CAMPAIGN,
            "opens_in_s": 0,
            "rate_per_s": 1000,
            "max_active": 1000,
        }
        put = client.put(f"{base}/api/admin/rooms/{ROOM}", json=room, timeout=60)
        assert put.status_code in (200, 201), put.text


def _config(tmp_path: Path, base: str, key: str | None) -> Path:
    headers = f'headers = {{ Authorization = "Bearer {key}" }}\n' if key else ""
    config = tmp_path / f"schemathesis-{'operator' if key else 'anonymous'}.toml"
    config.write_text(
        f'base-url = "{base}"\n'
        f"{headers}"
        "max-stream-events = 1\n"  # an event stream's first event, then the next case
        "[generation]\n"
        f"max-examples = {MAX_EXAMPLES}\n"
        "[parameters]\n"
        f'"path.room" = "{ROOM}"\n'
        f'"path.campaign" = "{CAMPAIGN}"\n'
        # A schema-valid body may still name a county, center or identity key the
        # campaign does not have, or be a campaign document parse_campaign refuses: that
        # is data, answered 400 with a documented code, not a contract broken.
        "[checks.positive_data_acceptance]\n"
        'expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]\n'
        "[phases.stateful]\n"
        f"max-steps = {STATEFUL_STEPS}\n"
    )
    return config


# The anonymous run leaves ignored_auth out: it feeds the ticket a join answers with into
# ?ticket= of the status and its stream (the document says a ticket may come so), takes
# that valid ticket for a made-up one, and reads the 200 as auth ignored. The operator
# run has it on, for every route.
ANONYMOUS_SKIPS = ("ignored_auth",)


def _run(config: Path, base: str, skip: tuple[str, ...]) -> tuple[int, str, int]:
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
        # one worker: with two, hypothesis's lambda-source cache races between the
        # threads now and then ("AST constructor recursion depth mismatch")
        "--workers",
        "1",
        "--seed",
        "1",
        "--request-timeout",
        "30",
        *(["--exclude-checks", ",".join(skip)] if skip else []),
    ]
    done = subprocess.run(  # in the test's directory: schemathesis keeps a cache where it runs
        command, capture_output=True, text=True, timeout=500, check=False, cwd=config.parent
    )
    output = done.stdout + done.stderr
    return done.returncode, output, _cases(output)


def _cases(output: str) -> int:
    """The test cases the run generated, as its summary says."""
    found = re.search(r"([0-9]+) generated", output)
    return int(found.group(1)) if found else 0


@pytest.mark.parametrize("as_operator", [False, True], ids=["anonymous", "operator"])
def test_the_gateway_conforms_to_its_openapi_document(
    connections: Connections, tmp_path: Path, as_operator: bool
) -> None:
    with running_system(connections, tmp_path, gateways=1) as system:
        base = system.gateways[0]
        _prepare(base)
        config = _config(tmp_path, base, OPERATOR_KEY if as_operator else None)
        code, output, cases = _run(config, base, () if as_operator else ANONYMOUS_SKIPS)
        (tmp_path / "schemathesis.out").write_text(output)
        print(output[-2500:])
        assert code == 0, output[-20000:]
        assert cases >= 1000, output[-2500:]
