"""One command for a launch rehearsal: a scenario in, a report and a verdict out.

    python -m loadtest.rehearse --scenario reference-small [--host URL] [--metrics URL ...]
        [--workers N]

Against a running fairq (``make up``; the operator key and the load-test key from
``FAIRQ_OPERATOR_KEY`` / ``FAIRQ_LOADTEST_KEY``), it

1. loads the scenario's campaign and opens its room (fresh names, so runs do not
   meet), the room opening after the scenario's pre-queue window;
2. runs locust on ``loadtest/launchday.py`` with the scenario (its load shape) in
   one process, or with ``--workers N`` in locust's distributed mode: a master (the
   shape, the merged outcomes) and N worker processes on this machine (more on other
   machines with ``--remote-workers M --master-bind ADDR``: the master prints the
   command they run), while
   ``loadtest.scrape`` reads every ``/metrics`` (the gateway's, and each
   ``--metrics`` URL or the scenario's ``metrics``) once a second, and a
   click-to-held probe (``loadtest.bench_click_to_held``) books once a second in a
   room of its own;
3. waits until every booking in the log has its answer, then checks the invariants
   from the log itself (``tests.eventlog.audit``; needs ``KAFKA_BOOTSTRAP`` and
   ``FAIRQ_TOPIC_PREFIX`` as the processes have them: ``make up`` prints them);
4. writes ``report.html`` (``loadtest.report``) with the raw data beside it, prints
   the verdict, and the report's path as its last line. The exit code is the verdict:
   0 every service level met and every check clean, 1 not, 2 the rehearsal could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import shlex
import socket
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fairq.config import Connections, Topics
from fairq.demo import small_campaign
from loadtest import bench_click_to_held as probe
from loadtest.click_path import Cut, breakdown, read_cuts, table
from loadtest.report import Run, judge, render
from loadtest.scenario import Scenario, ScenarioError, load
from loadtest.scrape import Scraper

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "launchday.py"
LOCUST_START_S = 3  # locust's start-up, before its first user: the opening waits for it
WORKER_START_S = 2  # the local workers' start-up (the master waits for them; in parallel)
WORKER_QUIT_S = 30  # a worker still running this long after the master ended is killed
PROBE_EVERY_S = 1.0
SETTLE_TIMEOUT_S = 60.0  # for the last bookings' answers, after locust stops
SETTLE_POLL_S = 1.0
MAX_WORKERS = 64
LOCAL = "127.0.0.1"  # the master's default address: no other machine can join
RUN_FILE = "run.json"  # what a rehearsal gathered, for --rejudge


@dataclass(frozen=True, slots=True)
class Options:
    scenario: Scenario
    scenario_path: str
    host: str
    operator_key: str
    loadtest_key: str
    metrics: list[str]
    out: Path
    kafka_bootstrap: str
    topics: Topics | None
    locust_args: list[str] = field(default_factory=list)
    rejudge: Path | None = None
    workers: int = 0  # locust's distributed mode: a master and this many local workers
    remote_workers: int = 0  # ... and this many on other machines, which it waits for
    master_bind: str = LOCAL  # where the master listens for its workers
    master_port: int = 0  # 0: a free port

    @property
    def distributed(self) -> bool:
        return bool(self.workers or self.remote_workers)


def parse(argv: Sequence[str], env: Mapping[str, str]) -> Options:
    """The command line and the environment (read here only), with clear errors."""
    parser = argparse.ArgumentParser(prog="loadtest.rehearse", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", default="reference-small", help="a name or a TOML file")
    parser.add_argument("--host", default=env.get("LOCUST_HOST", "http://127.0.0.1:8080"))
    parser.add_argument(
        "--metrics", action="append", default=[], help="another /metrics URL to scrape"
    )
    parser.add_argument("--out", type=Path, default=Path("rehearsals"))
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run locust distributed: a master and this many worker processes (0: one process)",
    )
    parser.add_argument(
        "--remote-workers",
        type=int,
        default=0,
        help="workers on other machines the master waits for (they join with the command"
        " it prints; needs --master-bind)",
    )
    parser.add_argument(
        "--master-bind",
        default=LOCAL,
        help=f"the address the master listens on for its workers ({LOCAL}: this machine's only)",
    )
    parser.add_argument(
        "--master-port", type=int, default=0, help="the master's port (0: a free one)"
    )
    parser.add_argument(
        "--rejudge",
        type=Path,
        help="judge a past rehearsal's data (its directory) against --scenario's levels again",
    )
    parser.add_argument("locust_args", nargs="*", help="after --: more options for locust")
    args = parser.parse_args(argv)
    for flag, n in (("--workers", args.workers), ("--remote-workers", args.remote_workers)):
        if not 0 <= n <= MAX_WORKERS:
            parser.error(f"{flag} must be in 0..{MAX_WORKERS}, got {n}")
    if args.remote_workers and (args.master_bind == LOCAL or _unspecified(args.master_bind)):
        parser.error(
            "--remote-workers needs --master-bind: an address of this machine the other"
            f" machines reach, the one their command names (not {LOCAL}, the default, nor"
            " 0.0.0.0)"
        )
    if not 0 <= args.master_port <= 65535:
        parser.error(f"--master-port must be in 0..65535, got {args.master_port}")
    try:
        scenario = load(args.scenario)
    except ScenarioError as e:
        parser.error(str(e))
    operator_key = env.get("FAIRQ_OPERATOR_KEY", "")
    loadtest_key = env.get("FAIRQ_LOADTEST_KEY", "")
    if not args.rejudge and not (operator_key and loadtest_key):
        parser.error(
            "set FAIRQ_OPERATOR_KEY (to load the scenario's campaign and room) and "
            "FAIRQ_LOADTEST_KEY (the gateway's: it lifts the per-client limits)"
        )
    host = args.host.rstrip("/")
    bootstrap = env.get("KAFKA_BOOTSTRAP", "")
    return Options(
        scenario=scenario,
        scenario_path=args.scenario,
        host=host,
        operator_key=operator_key,
        loadtest_key=loadtest_key,
        metrics=[f"{host}/metrics", *scenario.metrics, *args.metrics],
        out=args.out,
        kafka_bootstrap=bootstrap,
        topics=Topics.from_env(env) if bootstrap else None,
        locust_args=args.locust_args,
        rejudge=args.rejudge,
        workers=args.workers,
        remote_workers=args.remote_workers,
        master_bind=args.master_bind,
        master_port=args.master_port,
    )


async def prepare(http: aiohttp.ClientSession, o: Options, name: str) -> float:
    """The scenario's campaign and room (both called ``name``); the room's opening time."""
    s, headers = o.scenario, {"Authorization": f"Bearer {o.operator_key}"}
    inv = s.inventory
    doc = small_campaign(
        dt.date.today() + dt.timedelta(days=2),
        counties=inv.counties,
        centers_per_county=inv.centers_per_county,
        places=inv.places,
    ) | {"hold_s": inv.hold_s}
    async with http.put(f"{o.host}/api/admin/campaigns/{name}", json=doc, headers=headers) as r:
        if r.status != 201:
            raise RuntimeError(f"loading the campaign: {r.status} {await r.text()}")
    start_s = LOCUST_START_S + (WORKER_START_S if o.workers else 0)
    opens_in_s = start_s + round(s.arrivals.pre_opening_s)
    room = {
        "campaign": name,
        "opens_in_s": opens_in_s,
        "prequeue_s": opens_in_s,
        "rate_per_s": s.room.rate_per_s,
        "max_active": s.room.max_active,
        "pow_difficulty": s.room.pow_difficulty,
    }
    async with http.put(f"{o.host}/api/admin/rooms/{name}", json=room, headers=headers) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"opening the room: {r.status} {await r.text()}")
        body = await r.json()
    return dt.datetime.fromisoformat(body["opens_at"]).timestamp()


async def run_locust(o: Options, room: str, out: Path) -> int:
    """Locust's exit code (the worst of its processes'); the keys go in its environment."""
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    command = [
        *locust,
        *("--headless", "--only-summary"),
        *("-H", o.host, "--scenario", str(o.scenario_path), "--room", room),
        *("--outcomes-json", str(out / "outcomes.json")),
        *("--timeline-json", str(out / "timeline.json")),
        *("--json-file", str(out / "locust-stats")),
        *o.locust_args,
    ]
    env = os.environ | {
        "FAIRQ_OPERATOR_KEY": o.operator_key,
        "FAIRQ_LOADTEST_KEY": o.loadtest_key,
    }
    commands = {"locust.log": command}
    if o.distributed:
        port = o.master_port or _free_port(o.master_bind)
        command += ["--master", "--master-bind-host", o.master_bind]
        command += ["--master-bind-port", str(port)]
        command += ["--expect-workers", str(o.workers + o.remote_workers)]
        worker = [*locust, *worker_args(o.master_bind, port)]
        commands |= {f"locust-worker-{i}.log": worker for i in range(1, o.workers + 1)}
        if o.remote_workers:
            print(
                f"waiting for {o.remote_workers} worker(s) on other machines: run there, with"
                " FAIRQ_OPERATOR_KEY and FAIRQ_LOADTEST_KEY set as here,\n  "
                + shlex.join(remote_worker_command(o.master_bind, port)),
                file=sys.stderr,
                flush=True,
            )
    with contextlib.ExitStack() as logs:
        processes = [
            await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env=env,
                stdout=logs.enter_context((out / name).open("wb")),
                stderr=asyncio.subprocess.STDOUT,
            )
            for name, argv in commands.items()
        ]
        workers = processes[1:]
        try:
            code = await processes[0].wait()
            if workers:  # the master told them to quit as it ended
                waits = [asyncio.create_task(p.wait()) for p in workers]
                await asyncio.wait(waits, timeout=WORKER_QUIT_S)
            return max([code, *(p.returncode or 0 for p in workers)])
        finally:
            for p in processes:
                if p.returncode is None:
                    p.kill()
                    await p.wait()


def _unspecified(address: str) -> bool:
    """0.0.0.0 or ::, which a worker cannot be told to connect to."""
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:  # a host name
        return False


def command_of(o: Options) -> list[str]:
    """The command line that runs this rehearsal again (the keys from the environment)."""
    command = ["python", "-m", "loadtest.rehearse", "--scenario", o.scenario_path]
    command += ["--host", o.host]
    if o.workers:
        command += ["--workers", str(o.workers)]
    if o.remote_workers:
        command += ["--remote-workers", str(o.remote_workers), "--master-bind", o.master_bind]
    if o.master_port:
        command += ["--master-port", str(o.master_port)]
    return command


def worker_args(master: str, port: int) -> list[str]:
    """A locust worker's options: whom it reports to (the scenario comes from there)."""
    return ["--worker", "--master-host", master, "--master-port", str(port)]


def remote_worker_command(master: str, port: int) -> list[str]:
    """What a worker on another machine runs (from a checkout of fairq, its venv active)."""
    return ["locust", "-f", str(LOCUSTFILE.relative_to(ROOT)), *worker_args(master, port)]


def _free_port(host: str = LOCAL) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def probe_while(
    http: aiohttp.ClientSession, o: Options, county: str, stop: asyncio.Event
) -> list[probe.Probe]:
    """A click-to-held probe every ``PROBE_EVERY_S`` until ``stop`` or sold out."""
    probes: list[probe.Probe] = []
    while not stop.is_set():
        started = time.monotonic()
        try:
            probes.append(await probe.click_to_held(http, o.host, county, o.loadtest_key))
        except probe.SoldOut:
            break
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as e:
            print(f"click-to-held probe failed: {e}", file=sys.stderr)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                stop.wait(), max(0.0, PROBE_EVERY_S - time.monotonic() + started)
            )
    return probes


Window = tuple[float, float]  # wall clock: from, until


@dataclass(frozen=True, slots=True)
class OperatorStep:
    """One request of the operator's (what it does, for an error message)."""

    what: str
    method: str
    path: str  # under /api/admin/rooms/{room}
    body: dict[str, Any] | None = None
    # a body made from the room's statistics as they are just before (GET .../stats)
    body_of: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


async def operator_window(
    http: aiohttp.ClientSession,
    o: Options,
    room: str,
    at: float,
    for_s: float,
    steps: tuple[OperatorStep, OperatorStep],
) -> Window | None:
    """The operator's first step at ``at`` (wall clock), the second ``for_s`` later: the
    window between (wall clock); None if ``for_s`` is 0 (the scenario has none)."""
    if not for_s:
        return None
    headers = {"Authorization": f"Bearer {o.operator_key}"}
    window: list[float] = []
    await asyncio.sleep(max(0.0, at - time.time()))
    for step, wait_s in zip(steps, (for_s, 0.0), strict=True):
        url = f"{o.host}/api/admin/rooms/{room}"
        body = step.body
        if step.body_of is not None:
            async with http.get(f"{url}/stats", headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"{step.what}: {resp.status} {await resp.text()}")
                body = step.body_of(await resp.json())
        async with http.request(step.method, url + step.path, json=body, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{step.what}: {resp.status} {await resp.text()}")
        window.append(time.time())
        await asyncio.sleep(wait_s)
    return window[0], window[1]


def operator_steps(
    http: aiohttp.ClientSession, o: Options, room: str, opens_at: float
) -> dict[str, Coroutine[Any, Any, Window | None]]:
    """What the scenario's operator does during the storm: the pause (admission paused,
    then resumed) and the cap (max_active lowered, then set back)."""
    r = o.scenario.room
    pause = (
        OperatorStep("pause the room", "POST", "/pause"),
        OperatorStep("resume the room", "POST", "/resume"),
    )
    cap = (
        OperatorStep(
            "lower the cap",
            "PUT",
            "/admission",
            body_of=lambda stats: {"max_active": r.capped_to(int(stats["active"]))},
        ),
        OperatorStep("set the cap back", "PUT", "/admission", {"max_active": r.max_active}),
    )
    start = opens_at + r.pause_after_opening_s
    capped = opens_at + r.cap_after_opening_s
    return {
        "paused": operator_window(http, o, room, start, r.pause_s, pause),
        "capped": operator_window(http, o, room, capped, r.cap_s, cap),
    }


async def audit_log(o: Options) -> tuple[dict[str, list[str]] | None, str]:
    """The log's findings once every Book has an answer (or SETTLE_TIMEOUT_S passed)."""
    if o.topics is None:
        return None, "The log was not read: set KAFKA_BOOTSTRAP and FAIRQ_TOPIC_PREFIX."
    from tests.eventlog import audit, read_log  # the test suite's invariants, read from the log

    connections = Connections(redis_url="", kafka_bootstrap=o.kafka_bootstrap, topics=o.topics)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        try:
            result = audit(await read_log(connections))
        except ValueError as e:  # a log the audit does not model
            return {"bad_histories": [f"the audit cannot judge this log: {e}"]}, str(e)
        unanswered = sorted(set(result.books) - set(result.bookings))
        if not unanswered or time.monotonic() > deadline:
            break
        await asyncio.sleep(SETTLE_POLL_S)
    findings = result.findings() | {"unanswered": [f"{b}: no answer" for b in unanswered]}
    note = (
        f"Read from the log ({o.topics.commands}, {o.topics.events}): {len(result.books)} "
        f"bookings sent, {len(result.bookings)} answered, {len(result.slots)} slots."
    )
    return findings, note


async def rehearse(o: Options) -> tuple[Path, bool]:
    name = f"rh-{time.strftime('%H%M%S')}-{uuid.uuid4().hex[:4]}"
    out = o.out / f"{o.scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    scraper = Scraper(o.metrics, where={"room": name, "campaign": name})
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        opens_at = await prepare(http, o, name)
        await probe.open_probe_room(http, o.host, o.operator_key, name)
        started_at = time.time()
        scraping = asyncio.create_task(scraper.run(http, stop))
        probing = asyncio.create_task(probe_while(http, o, "county-1", stop))
        operator = {
            key: asyncio.create_task(step)
            for key, step in operator_steps(http, o, name, opens_at).items()
        }
        try:
            try:
                code = await run_locust(o, name, out)
            finally:
                stop.set()
                probes = await probing
                for task in operator.values():
                    if not task.done():  # the storm ended first: the window did not close
                        task.cancel()
                await asyncio.gather(*operator.values(), return_exceptions=True)
            windows = {k: None if t.cancelled() else t.result() for k, t in operator.items()}
            findings, note = await audit_log(o)
            cuts = await read_click_path(o, probes)
            await scraper.once(http)  # the settled system
        finally:  # the scraper ends with the session, whatever failed
            await scraping
    run = Run(
        scenario=o.scenario,
        host=o.host,
        started_at=started_at,
        opens_at=opens_at,
        timeline=_read_json(out / "timeline.json"),
        outcomes=_read_json(out / "outcomes.json"),
        scrape=scraper.to_json(),
        log_findings=findings,
        log_note=note,
        probes=probes,
        paused=windows["paused"],
        capped=windows["capped"],
        locust_exit=code,
        click_path=breakdown(cuts),
        command=shlex.join(command_of(o)),
    )
    (out / RUN_FILE).write_text(json.dumps(run.to_json()), encoding="utf-8")
    return write_report(run, out)


async def read_click_path(o: Options, probes: Sequence[probe.Probe]) -> list[Cut]:
    """The probes cut in stages where the log sees them; none if the log is not known."""
    if o.topics is None or not probes:
        return []
    cuts = await read_cuts(o.kafka_bootstrap, o.topics.commands, o.topics.events, probes)
    print(table(breakdown(cuts)), flush=True)
    return cuts


def write_report(run: Run, out: Path) -> tuple[Path, bool]:
    """Judge the run, write ``out/report.html``, print the verdict."""
    report = judge(run)
    path = out / "report.html"
    path.write_text(render(report), encoding="utf-8")
    print("\n".join(report.verdict_lines()), flush=True)
    return path, report.passed


def rejudge(run_dir: Path, scenario: Scenario) -> tuple[Path, bool]:
    """A rehearsal's data judged again, against ``scenario``'s service levels."""
    try:
        data = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RuntimeError(f"no rehearsal data in {run_dir}: {e}") from e
    return write_report(Run.from_json(data, scenario), run_dir)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        if options.rejudge:
            path, passed = rejudge(options.rejudge, options.scenario)
        else:
            path, passed = asyncio.run(rehearse(options))
    except (RuntimeError, aiohttp.ClientError) as e:
        print(f"the rehearsal could not run: {e}", file=sys.stderr)
        return 2
    print(path.resolve(), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
