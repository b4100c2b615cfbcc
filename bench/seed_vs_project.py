"""The seed's request algorithm against the project's, on the same emulator, in one run.

    PYTHONPATH=layers/common:. python bench/seed_vs_project.py \
        [--requests 150] [--history 10000] [--racers 50] [--rounds 5]

Both sides run against one moto server in one process, interleaved request by
request (seed, project, project, seed, ...) so that machine noise hits both:

- the seed: bench/seed_baseline.py, the seed's steps ported to DynamoDB tables
  SeedProfiles / SeedQueue (one call per step, an unconditional insert, the
  position counted with a filtered Scan);
- the project: POST /api/profile/{username}/request through devstack's LocalApi
  (the real handler: Powertools resolver, validation, metrics), and the same
  decision at the service level (`viralspot.intake.request_profile`) without the
  HTTP wrapper.

Figures: AWS calls and items read (ScannedCount) per request for a new username,
a duplicate (already queued) and an already processed profile; median and p95
latency; duplicates created by N concurrent requests for one username; and the
position read's cost as COMPLETED history grows. Calls and items read are the
portable figures; moto's latency is not DynamoDB's (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
from botocore.config import Config

from bench.common import Probe, local_stack, percentile, put_items, table
from bench.seed_baseline import SeedIntake, now_iso
from devstack.emulator import REGION, Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from viralspot import bootstrap, intake
from viralspot.adapters import aws
from viralspot.adapters.codec import serialize
from viralspot.adapters.dynamo_jobs import DynamoJobStore, job_to_item
from viralspot.adapters.dynamo_profiles import profile_to_item
from viralspot.clock import utc_now
from viralspot.intake import Outcome
from viralspot.jobs import Source, completed, new_job
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import POSITION_CAP
from viralspot.sharding import INDEX_SHARDS


class _Discard:
    """stdout for the handler: Powertools prints one EMF metrics line per invocation."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(_Discard()):
        yield


class OpTimer:
    """Wall time spent inside AWS calls, by operation (botocore before/after-call).

    A request's position read runs its calls side by side on a pool, so each thread
    keeps its own start, and `total` is the wall time during which at least one call
    was in flight (the union of the calls' intervals), not the sum of their durations.
    Per-operation figures are sums (used for operations a request makes one at a time)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._intervals: list[tuple[float, float]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def register(self, boto_client: Any) -> None:
        boto_client.meta.events.register("before-call.*.*", self.before)
        boto_client.meta.events.register("after-call.*.*", self.after)

    def before(self, **_: Any) -> None:
        self._local.started = time.perf_counter()

    def after(self, event_name: str = "", **_: Any) -> None:
        started = getattr(self._local, "started", None)
        if started is None:
            return
        ended = time.perf_counter()
        self._local.started = None
        op = event_name.split(".", 2)[-1]
        with self._lock:
            self.ms[op] = self.ms.get(op, 0.0) + (ended - started) * 1000
            self._intervals.append((started, ended))

    def reset(self) -> None:
        with self._lock:
            self.ms = {}
            self._intervals = []

    @property
    def total(self) -> float:
        covered, reach = 0.0, float("-inf")
        for start, end in sorted(self._intervals):
            if end <= reach:
                continue
            covered += end - max(start, reach)
            reach = end
        return covered * 1000


TIMER = OpTimer()


@dataclass
class Sample:
    """Per-request figures of one side for one path."""

    ms: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    dynamodb: list[int] = field(default_factory=list)
    scanned: list[int] = field(default_factory=list)
    aws_ms: list[float] = field(default_factory=list)
    op_ms: list[dict[str, float]] = field(default_factory=list)

    def add(self, ms: float, calls: Probe) -> None:
        self.ms.append(ms)
        self.calls.append(len(calls.calls))
        self.dynamodb.append(calls.of("dynamodb"))
        self.scanned.append(calls.scanned)
        self.aws_ms.append(TIMER.total)
        self.op_ms.append(dict(TIMER.ms))

    def own_ms(self) -> float:
        """Median time outside AWS calls: the code's own cost (handler, models, JSON)."""
        return statistics.median(t - a for t, a in zip(self.ms, self.aws_ms, strict=True))

    def op_median(self, op: str) -> float:
        return statistics.median(d.get(op, 0.0) for d in self.op_ms)

    def median(self) -> float:
        return statistics.median(self.ms)

    def p95(self) -> float:
        return percentile(self.ms, 0.95)


def measure(fn: Callable[[], Any], calls: Probe, sample: Sample) -> Any:
    calls.reset()
    TIMER.reset()
    start = time.perf_counter()
    result = fn()
    sample.add((time.perf_counter() - start) * 1000, calls)
    return result


def client(emulator: Emulator, service: str, pool: int = 10) -> Any:
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=emulator.endpoint(service),
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator's fixed dummy
        config=Config(max_pool_connections=pool),
    )


class Project:
    """The project's intake, through the HTTP handler or straight at the service."""

    def __init__(self, stack: Stack) -> None:
        self.api = LocalApi(stack)
        self.ctx = bootstrap.services()

    def http(self, username: str) -> dict[str, Any]:
        with quiet():
            status, _, body = self.api.request(
                "POST", f"/api/profile/{username}/request?source=frontend"
            )
        if status != 200:
            raise RuntimeError(f"POST {username}: {status} {body}")
        data: dict[str, Any] = body["data"]
        return data

    def service(self, username: str, jobs: DynamoJobStore | None = None) -> intake.Decision:
        services = self.ctx if jobs is None else replace(self.ctx, jobs=jobs)
        return services.intake(username, Source.FRONTEND)


@dataclass
class PathFigures:
    seed: Sample = field(default_factory=Sample)
    http: Sample = field(default_factory=Sample)
    service: Sample = field(default_factory=Sample)


def run_paths(
    requests: int, seed: SeedIntake, seed_calls: Probe, project: Project, calls: Probe
) -> dict[str, PathFigures]:
    """Interleaved: every iteration runs the seed once and the project once, the
    project alternating HTTP and service, the order alternating too. The tables
    grow alike (one new job per side per iteration)."""
    figures = {path: PathFigures() for path in ("new", "duplicate", "processed")}
    # Fixtures: one username queued on both sides, one processed on both sides.
    seed.request("dup_target")
    project.service("dup_target")
    seed.add_profile("done_target")
    now = utc_now()
    aws.dynamodb().put_item(
        TableName=project.ctx.settings.profiles_table,
        Item=serialize(
            profile_to_item(
                Profile(
                    username="done_target",
                    tier=Tier.PRIMARY,
                    created_at=now,
                    updated_at=now,
                    last_scraped_at=now,
                )
            )
        ),
    )
    # Warm-up, not measured: the first HTTP request imports the handler module.
    for name in ("warm_up", "dup_target", "done_target"):
        seed.request(name)
        project.http(name)
        project.service(name)
    for i in range(requests):
        variant = "http" if i % 4 < 2 else "service"
        for path, name in (
            ("new", f"new_{i}"),
            ("duplicate", "dup_target"),
            ("processed", "done_target"),
        ):
            fig = figures[path]
            project_side = (
                partial(measure, partial(project.http, name), calls, fig.http)
                if variant == "http"
                else partial(measure, partial(project.service, name), calls, fig.service)
            )
            sides = [
                partial(measure, partial(seed.request, name), seed_calls, fig.seed),
                project_side,
            ]
            if i % 2:
                sides.reverse()
            for side in sides:
                side()
    return figures


@dataclass
class Race:
    seed_rows: list[int] = field(default_factory=list)
    seed_new_answers: list[int] = field(default_factory=list)
    project_jobs_created: list[int] = field(default_factory=list)
    project_messages: list[int] = field(default_factory=list)
    project_rows: list[int] = field(default_factory=list)


def _race(racers: int, fn: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(racers)
    results: list[Any] = [None] * racers
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = fn()
        except BaseException as exc:  # reported after the round
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} racers failed; first: {errors[0]!r}")
    return results


def run_races(racers: int, rounds: int, emulator: Emulator, stack: Stack, project: Project) -> Race:
    """`racers` threads released by one Barrier, all asking for one username."""
    race = Race()
    # A client per side with a pool big enough that no racer waits for a connection.
    seed = SeedIntake(client(emulator, "dynamodb", pool=racers + 4))
    jobs = DynamoJobStore(
        stack.refs["JobsTable"],
        stack.refs["ProfilesTable"],
        client=client(emulator, "dynamodb", pool=racers + 4),
    )
    sqs = client(emulator, "sqs")
    high_queue = stack.refs["HighQueue"]
    dynamodb = client(emulator, "dynamodb")

    def depth() -> int:
        attrs = sqs.get_queue_attributes(
            QueueUrl=high_queue, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    for r in range(rounds):
        name = f"race_{r}"
        answers = _race(racers, partial(seed.request, name))
        race.seed_rows.append(seed.rows_for(name))
        race.seed_new_answers.append(sum(1 for a in answers if a.get("profile_type") == "new"))
        before = depth()
        decisions = _race(racers, partial(project.service, name, jobs))
        race.project_jobs_created.append(sum(1 for d in decisions if d.outcome is Outcome.NEW))
        race.project_messages.append(depth() - before)
        item = dynamodb.get_item(
            TableName=stack.refs["JobsTable"], Key={"username": {"S": name}}
        ).get("Item")
        race.project_rows.append(1 if item else 0)
    return race


@dataclass
class HistoryRow:
    history: int
    seed: Sample
    project: Sample
    seed_request: Sample
    project_request: Sample


def run_history(
    levels: list[int],
    runs: int,
    emulator: Emulator,
    stack: Stack,
    seed: SeedIntake,
    seed_calls: Probe,
    project: Project,
    calls: Probe,
) -> list[HistoryRow]:
    """COMPLETED history loaded into both queues, then the position count alone and
    whole new requests (service level), interleaved, at each level."""
    loader = client(emulator, "dynamodb")
    # The project's store on a client with botocore's default timeouts, as the seed's:
    # moto copies every table a transaction touches, which at 10,000 rows on a busy
    # machine outlasts the handler client's 3 s read timeout (sized for DynamoDB).
    patient = client(emulator, "dynamodb", pool=INDEX_SHARDS + 4)
    calls.attach(patient, capacity=False)
    TIMER.register(patient)
    jobs = DynamoJobStore(stack.refs["JobsTable"], stack.refs["ProfilesTable"], client=patient)
    past = datetime.now(UTC) - timedelta(days=1)
    loaded = 0
    rows = []
    for level in levels:
        names = [f"done_{i}" for i in range(loaded, level)]
        put_items(
            loader,
            stack.refs["JobsTable"],
            [job_to_item(completed(new_job(n, Source.API, past), past)) for n in names],
        )
        seed.load_completed(names, past)
        loaded = level
        row = HistoryRow(level, Sample(), Sample(), Sample(), Sample())
        for i in range(runs):
            probe = new_job(f"probe_{level}_{i}", Source.FRONTEND, utc_now())
            sides = [
                partial(
                    measure,
                    partial(seed.estimate_queue_position, "HIGH", now_iso()),
                    seed_calls,
                    row.seed,
                ),
                partial(
                    measure,
                    partial(jobs.position_facts, probe, POSITION_CAP),
                    calls,
                    row.project,
                ),
                partial(
                    measure,
                    partial(seed.request, f"hist_{level}_{i}"),
                    seed_calls,
                    row.seed_request,
                ),
                partial(
                    measure,
                    partial(project.service, f"hist_{level}_{i}", jobs),
                    calls,
                    row.project_request,
                ),
            ]
            if i % 2:
                sides = [sides[1], sides[0], sides[3], sides[2]]
            for side in sides:
                side()
        rows.append(row)
    return rows


def ratio(project: float, seed: float) -> str:
    if seed == 0:
        return "—"
    return f"{project / seed:.2f}"


def ms(value: float) -> str:
    return f"{value:.1f}"


def med(values: list[int]) -> float:
    return statistics.median(values)


def num(value: float) -> str:
    return f"{value:g}"


def report(
    paths: dict[str, PathFigures], race: Race, history: list[HistoryRow], args: argparse.Namespace
) -> None:
    headers = [
        "measure",
        "seed",
        "project (HTTP handler)",
        "project (service)",
        "project/seed",
        "goal",
    ]
    rows: list[list[Any]] = []
    labels = {
        "new": "new username",
        "duplicate": "duplicate (queued)",
        "processed": "already processed",
    }
    for path, fig in paths.items():
        label = labels[path]
        rows.append(
            [
                f"AWS calls per request, {label} (DynamoDB + SQS)",
                f"{num(med(fig.seed.dynamodb))} + 0",
                f"{num(med(fig.http.dynamodb))} + {num(med(fig.http.calls) - med(fig.http.dynamodb))}",
                f"{num(med(fig.service.dynamodb))} + {num(med(fig.service.calls) - med(fig.service.dynamodb))}",
                ratio(med(fig.service.calls), med(fig.seed.calls)),
                "round trips: bench/capacity.py",
            ]
        )
        rows.append(
            [
                f"items read per request, {label} (median)",
                num(med(fig.seed.scanned)),
                num(med(fig.http.scanned)),
                num(med(fig.service.scanned)),
                ratio(med(fig.service.scanned), med(fig.seed.scanned)),
                "",
            ]
        )
    for path, fig in paths.items():
        label = labels[path]
        rows.append(
            [
                f"latency ms, {label}: median / p95",
                f"{ms(fig.seed.median())} / {ms(fig.seed.p95())}",
                f"{ms(fig.http.median())} / {ms(fig.http.p95())}",
                f"{ms(fig.service.median())} / {ms(fig.service.p95())}",
                f"{ratio(fig.http.median(), fig.seed.median())} (HTTP), "
                f"{ratio(fig.service.median(), fig.seed.median())} (service)",
                "<= 0.5 (median)",
            ]
        )
    for path, fig in paths.items():
        rows.append(
            [
                f"of which outside AWS calls (own code), {labels[path]}: median ms",
                ms(fig.seed.own_ms()),
                ms(fig.http.own_ms()),
                ms(fig.service.own_ms()),
                ratio(fig.http.own_ms(), fig.seed.own_ms()) + " (HTTP)",
                "",
            ]
        )
    seed_dups = sum(n - 1 for n in race.seed_rows)
    rows.append(
        [
            f"{args.racers} concurrent requests, one username, x{args.rounds} rounds: "
            "queue rows / jobs created per round",
            f"{statistics.mean(race.seed_rows):g} rows (min {min(race.seed_rows)}, max {max(race.seed_rows)})",
            "—",
            f"{statistics.mean(race.project_rows):g} job item, "
            f"{statistics.mean(race.project_jobs_created):g} 'new' answer, "
            f"{statistics.mean(race.project_messages):g} SQS message",
            "—",
            "exactly 1",
        ]
    )
    rows.append(
        [
            f"duplicates created, total over {args.rounds} rounds",
            str(seed_dups),
            "—",
            str(
                sum(max(0, n - 1) for n in race.project_jobs_created)
                + sum(max(0, n - 1) for n in race.project_messages)
            ),
            "—",
            "0",
        ]
    )
    for h in history:
        rows.append(
            [
                f"position read, {h.history:,} completed in history: calls / items read / ms",
                f"{num(med(h.seed.calls))} / {num(med(h.seed.scanned))} / {ms(h.seed.median())}",
                "—",
                f"{num(med(h.project.calls))} / {num(med(h.project.scanned))} / {ms(h.project.median())}",
                f"{ratio(med(h.project.scanned), med(h.seed.scanned))} (items), "
                f"{ratio(h.project.median(), h.seed.median())} (ms)",
                "flat with history",
            ]
        )
    for h in history:
        rows.append(
            [
                f"new request, {h.history:,} completed in history: calls / items read / ms",
                f"{num(med(h.seed_request.calls))} / {num(med(h.seed_request.scanned))} / "
                f"{ms(h.seed_request.median())}",
                "—",
                f"{num(med(h.project_request.calls))} / {num(med(h.project_request.scanned))} / "
                f"{ms(h.project_request.median())}",
                f"{ratio(h.project_request.median(), h.seed_request.median())} (ms)",
                "flat with history",
            ]
        )
    for h in history:
        rows.append(
            [
                f"  of which ms in Scan (seed) / TransactWriteItems (project), {h.history:,} history",
                ms(h.seed_request.op_median("Scan")),
                "—",
                ms(h.project_request.op_median("TransactWriteItems")),
                "",
                "moto copies the tables on each transaction",
            ]
        )
    print(
        f"Seed vs project, one moto server, interleaved: {args.requests} requests per path "
        f"(project: half via HTTP handler, half service-level); position read median of {args.runs}"
    )
    print(table(headers, rows))
    print(
        "Items read = ScannedCount summed over the request's calls (what read units bill on). "
        "The seed sends no SQS message (its queue is the table); the project sends one per new job."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=150, help="requests per path")
    parser.add_argument("--history", type=int, default=10_000, help="largest completed history")
    parser.add_argument("--racers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5, help="samples per history level")
    args = parser.parse_args()

    started = time.perf_counter()
    with local_stack() as (emulator, stack, calls):
        seed = SeedIntake(client(emulator, "dynamodb"))
        seed.create_tables()
        seed_calls = Probe().attach(seed.client, capacity=False)
        for boto_client in (seed.client, aws.dynamodb(), aws.sqs()):
            TIMER.register(boto_client)
        project = Project(stack)
        paths = run_paths(args.requests, seed, seed_calls, project, calls)
        race = run_races(args.racers, args.rounds, emulator, stack, project)
        levels = sorted({0, args.history // 10, args.history})
        history = run_history(levels, args.runs, emulator, stack, seed, seed_calls, project, calls)
    report(paths, race, history, args)
    print(f"({time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
