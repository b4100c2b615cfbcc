"""Capacity units per request path on DynamoDB Local, the project against the seed.

    PYTHONPATH=layers/common:. .venv/bin/python bench/capacity.py [--requests 3]
        [--levels 0,1000,2000] [--big] [--bulk 50] [--ms-per-round-trip 10]

Runs the API function in-process (devstack's LocalApi: the real handler) with
DynamoDB on DynamoDB Local, AWS's own engine, and SQS on moto; and the seed's
algorithm (bench/seed_baseline.py) on the same engine, in the same run. Capacity
comes from DynamoDB's own ConsumedCapacity (bench.common.Probe: botocore hooks on
the handlers' client and on the seed's, asking every call for
ReturnConsumedCapacity=INDEXES), not from a model of it.

For each backlog level (active jobs; every one of them PENDING at HIGH priority and
enqueued before the probes, so every one is ahead of them: the worst case for a
queue position), each request path is measured `--requests` times (median):

- new: POST /api/profile/{new}/request (frontend: HIGH);
- duplicate: the same for a username already queued behind the whole backlog;
- processed: the same for a profile analysed yesterday;
- status: GET /api/profile/{queued}/status (its position counted);
- queue-status: GET /api/viral-ideas/queue-status;
- bulk: POST /api/profile/bulk-request with `--bulk` new usernames (source bulk).

Figures per path: AWS calls (DynamoDB + SQS), DynamoDB write calls, round trips
(sequential steps; calls run side by side count once), read and write units as
DynamoDB Local reports them, and as AWS documents them for the same work (Probe's
docstring: Local reports 4 write units per small transactional item where AWS
charges 2 per KB; Local reports 0 for a read that finds nothing where AWS charges
the minimum). Then the partition-key spread of the Jobs table's indexes, and the
cost per million requests of each path at the on-demand prices of bench/cost.py.

The backlog is written straight into the tables (job items built by the adapter's
own job_to_item, queue counters consistent with them), not through the API: that
is set-up, not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bench.common import Probe, fan_out_attributed, local_stack, put_items, table
from bench.cost import MEMORY_GB, PRICES
from bench.seed_baseline import SeedIntake
from devstack import dynamodb_local as ddbl
from devstack.invoke import LocalApi
from devstack.template import Stack
from viralspot import intake
from viralspot.adapters import aws, dynamo_jobs
from viralspot.adapters.codec import serialize
from viralspot.adapters.dynamo_jobs import STATS_PREFIX, job_to_item
from viralspot.adapters.dynamo_profiles import profile_to_item
from viralspot.clock import utc_now
from viralspot.jobs import Job, Source, new_job
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import STAT_SHARDS, transition
from viralspot.sharding import INDEX_SHARDS, sharded

API_FUNCTION = "RequestProfileFunction"
PATHS = ("new", "duplicate", "processed", "status", "queue-status", "bulk")


@dataclass
class Figures:
    """One path's per-request figures over its runs."""

    calls: list[int] = field(default_factory=list)
    sqs: list[int] = field(default_factory=list)
    writes: list[int] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    rru: list[float] = field(default_factory=list)
    wru: list[float] = field(default_factory=list)
    aws_rru: list[float] = field(default_factory=list)
    aws_wru: list[float] = field(default_factory=list)
    aws_by_target: Counter[tuple[str, str]] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    failures: int = 0

    def add(self, probe: Probe) -> None:
        self.calls.append(len(probe.calls))
        self.sqs.append(probe.of("sqs"))
        self.writes.append(probe.writes)
        self.round_trips.append(probe.round_trips)
        self.rru.append(probe.rru)
        self.wru.append(probe.wru)
        self.aws_rru.append(probe.aws_rru)
        self.aws_wru.append(probe.aws_wru)
        self.aws_by_target.update(probe.aws_by_target)
        self.operations.update(probe.operations)

    def median(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return statistics.median(values) if values else 0.0

    @property
    def units(self) -> float:
        """Read plus write units, as AWS charges them: the figure compared across levels."""
        return self.median("aws_rru") + self.median("aws_wru")

    def targets(self) -> str:
        """AWS units per request by table and index, reads and writes apart."""
        runs = max(1, len(self.calls))
        return ", ".join(
            f"{target} {units / runs:g} {'RRU' if kind == 'R' else 'WRU'}"
            for (target, kind), units in sorted(self.aws_by_target.items())
            if units
        )


@dataclass
class Level:
    backlog: int
    active: int = 0
    project: dict[str, Figures] = field(default_factory=dict)
    seed: dict[str, Figures] = field(default_factory=dict)
    spread: list[list[Any]] = field(default_factory=list)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The handler prints one EMF metrics line per invocation: not ours to show."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def measured(probe: Probe, figures: Figures, request: Callable[[], bool]) -> None:
    probe.reset()
    ok = request()
    figures.add(probe)
    if not ok:
        figures.failures += 1


class Project:
    """The API function through its HTTP routes, on the stack's tables."""

    def __init__(self, stack: Stack, raw: Any) -> None:
        self.api = LocalApi(stack)
        self.raw = raw
        self.jobs_table = stack.refs["JobsTable"]
        self.profiles_table = stack.refs["ProfilesTable"]

    def post(self, username: str, source: str = "frontend") -> dict[str, Any]:
        with quiet():
            status, _, body = self.api.request(
                "POST", f"/api/profile/{username}/request?source={source}"
            )
        return body.get("data", {}) if status == 200 and isinstance(body, dict) else {}

    def get(self, url: str) -> bool:
        with quiet():
            status, _, _ = self.api.request("GET", url)
        return status == 200

    def bulk(self, usernames: list[str]) -> bool:
        with quiet():
            status, _, body = self.api.request(
                "POST",
                "/api/profile/bulk-request",
                body={"usernames": usernames, "source": "bulk"},
            )
        return status == 200 and body.get("data", {}).get("succeeded") == len(usernames)

    def add_processed(self, username: str) -> None:
        now = utc_now()
        profile = Profile(
            username=username,
            tier=Tier.PRIMARY,
            created_at=now - timedelta(days=30),
            updated_at=now - timedelta(days=1),
            last_scraped_at=now - timedelta(days=1),
        )
        self.raw.put_item(TableName=self.profiles_table, Item=serialize(profile_to_item(profile)))

    def load_backlog(self, usernames: list[str], since: Any) -> None:
        """PENDING HIGH jobs, dispatched, a millisecond apart from `since`, and the queue
        counters they imply (spread over the counter shards as the adapter spreads them)."""
        jobs: list[Job] = []
        for i, name in enumerate(usernames):
            at = since + timedelta(milliseconds=i)
            job = new_job(name, Source.FRONTEND, at)
            jobs.append(job.model_copy(update={"dispatched_at": at, "updated_at": at}))
        put_items(self.raw, self.jobs_table, [job_to_item(job) for job in jobs])
        totals: Counter[str] = Counter()
        for job in jobs:
            totals.update(transition(None, job))
        for shard in range(STAT_SHARDS):
            share = {
                name: n // STAT_SHARDS + (1 if shard < n % STAT_SHARDS else 0)
                for name, n in totals.items()
            }
            share = {name: n for name, n in share.items() if n}
            if not share:
                continue
            names = {f"#c{i}": name for i, name in enumerate(share)}
            self.raw.update_item(
                TableName=self.jobs_table,
                Key={"username": {"S": sharded(STATS_PREFIX, shard)}},
                UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(share))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    f":c{i}": {"N": str(n)} for i, n in enumerate(share.values())
                },
            )

    def index_spread(self) -> tuple[Counter[str], Counter[str]]:
        """Items per partition-key value of ActiveQueueIndex and SweepIndex."""
        active: Counter[str] = Counter()
        sweep: Counter[str] = Counter()
        start: dict[str, Any] | None = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.jobs_table,
                "ProjectionExpression": "queue_pk, sweep_pk",
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self.raw.scan(**kwargs)
            for item in response.get("Items", []):
                if "queue_pk" in item:
                    active[item["queue_pk"]["S"]] += 1
                if "sweep_pk" in item:
                    sweep[item["sweep_pk"]["S"]] += 1
            start = response.get("LastEvaluatedKey")
            if not start:
                return active, sweep


def spread_row(index: str, counts: Counter[str]) -> list[Any]:
    total = sum(counts.values())
    if not total:
        return [index, 0, 0, "—", "—", "—"]
    key, busiest = counts.most_common(1)[0]
    share = busiest / total
    return [
        index,
        total,
        len(counts),
        f"{key} ({busiest})",
        f"{share:.3f}",
        "yes" if share <= 1 / 8 else "no",
    ]


def run_level(
    level: Level,
    requests: int,
    bulk_size: int,
    *,
    project: Project,
    project_probe: Probe,
    seed: SeedIntake,
    seed_probe: Probe,
) -> None:
    tag = f"l{level.backlog}"
    # A username queued behind the whole backlog, on both sides: the duplicate and the
    # status poll ask about it.
    queued = f"cap_{tag}_queued"
    project.post(queued)
    seed.request(queued)
    p = {path: Figures() for path in PATHS}
    s = {path: Figures() for path in PATHS}
    for i in range(requests):
        name = f"cap_{tag}_new_{i}"
        measured(
            project_probe, p["new"], lambda n=name: project.post(n).get("profile_type") == "new"
        )
        measured(seed_probe, s["new"], lambda n=name: seed.request(n).get("profile_type") == "new")
        measured(
            project_probe,
            p["duplicate"],
            lambda: project.post(queued).get("skip_reason") == "already_in_queue",
        )
        measured(
            seed_probe,
            s["duplicate"],
            lambda: seed.request(queued).get("skip_reason") == "already_in_queue",
        )
        measured(
            project_probe,
            p["processed"],
            lambda: project.post("cap_processed").get("skip_reason") == "already_processed",
        )
        measured(
            seed_probe,
            s["processed"],
            lambda: seed.request("cap_processed").get("skip_reason") == "already_processed",
        )
        measured(project_probe, p["status"], lambda: project.get(f"/api/profile/{queued}/status"))
        measured(seed_probe, s["status"], lambda: "queue_position" in seed.status(queued))
        measured(
            project_probe, p["queue-status"], lambda: project.get("/api/viral-ideas/queue-status")
        )
        measured(seed_probe, s["queue-status"], lambda: "total_pending" in seed.pending_job_stats())
        names = [f"cap_{tag}_bulk_{i}_{j}" for j in range(bulk_size)]
        measured(project_probe, p["bulk"], lambda n=names: project.bulk(n))
        measured(
            seed_probe, s["bulk"], lambda n=names: all(r["success"] for r in seed.bulk(n, "bulk"))
        )
    level.project, level.seed = p, s
    active, sweep = project.index_spread()
    level.active = sum(active.values())
    level.spread = [spread_row("ActiveQueueIndex", active), spread_row("SweepIndex", sweep)]


def fmt(value: float) -> str:
    return f"{value:g}"


def path_rows(figures: dict[str, Figures]) -> list[list[Any]]:
    rows = []
    for path in PATHS:
        f = figures[path]
        rows.append(
            [
                path,
                f"{fmt(f.median('calls') - f.median('sqs'))} + {fmt(f.median('sqs'))}",
                fmt(f.median("writes")),
                fmt(f.median("round_trips")),
                f"{fmt(f.median('rru'))} / {fmt(f.median('wru'))}",
                f"{fmt(f.median('aws_rru'))} / {fmt(f.median('aws_wru'))}",
                f.failures or "",
            ]
        )
    return rows


HEADERS = [
    "path",
    "calls (DynamoDB + SQS)",
    "write calls",
    "round trips",
    "RRU / WRU (Local)",
    "RRU / WRU (AWS)",
    "wrong answers",
]


def cost_per_million(f: Figures, ms_per_round_trip: float) -> tuple[float, str]:
    """USD per million requests of one path: API Gateway, Lambda (requests, and an
    assumed duration: 10 ms of own code plus `ms_per_round_trip` per round trip),
    DynamoDB on-demand (AWS units), SQS requests."""
    duration_s = (10 + ms_per_round_trip * f.median("round_trips")) / 1000
    parts = {
        "API Gateway": PRICES["api_gateway_rest_per_million"],
        "Lambda": PRICES["lambda_per_million_requests"]
        + duration_s * MEMORY_GB[API_FUNCTION] * PRICES["lambda_per_gb_second"] * 1e6,
        "DynamoDB": f.median("aws_rru") * PRICES["dynamodb_per_million_rru"]
        + f.median("aws_wru") * PRICES["dynamodb_per_million_wru"],
        "SQS": f.median("sqs") * PRICES["sqs_per_million_requests"],
    }
    detail = ", ".join(f"{name} {value:.2f}" for name, value in parts.items())
    return sum(parts.values()), f"{detail} (Lambda {duration_s * 1000:.0f} ms assumed)"


def report(levels: list[Level], args: argparse.Namespace, seconds: float) -> None:
    print(
        f"Capacity per request path on DynamoDB Local ({args.requests} runs each, median; "
        f"bulk of {args.bulk}); every backlog job is HIGH and ahead of the probes."
    )
    for level in levels:
        print()
        print(
            f"### Backlog {level.backlog:,} active jobs ({level.active:,} in ActiveQueueIndex after the level)"
        )
        print()
        print("Project (API handler, read-first intake, sharded indexes)")
        print(table(HEADERS, path_rows(level.project)))
        print()
        print("Seed (bench/seed_baseline.py: check, check, check, insert, verify, Scan-count)")
        print(table(HEADERS, path_rows(level.seed)))
        print()
        print("Project, AWS units per request by table and index (mean of the runs)")
        print(
            table(
                ["path", "units by target"],
                [[path, level.project[path].targets()] for path in PATHS],
            )
        )
        print()
        print("Partition-key spread of the Jobs table's indexes (items per key value)")
        print(
            table(
                ["index", "items", "key values", "busiest key (items)", "its share", "<= 1/8"],
                level.spread,
            )
        )

    print()
    print("### Goals")
    print()
    goals: list[list[Any]] = []
    for level in levels:
        for path in ("duplicate", "processed"):
            writes = level.project[path].median("writes")
            goals.append(
                [
                    f"{path}: 0 write calls (backlog {level.backlog:,})",
                    fmt(writes),
                    "yes" if writes == 0 else "no",
                ]
            )
    by_backlog = {level.backlog: level for level in levels}
    pairs = [
        (a, b) for a, b in ((1000, 2000), (1000, 10000)) if a in by_backlog and b in by_backlog
    ]
    for low, high in pairs:
        for path in ("new", "status", "queue-status", "duplicate"):
            a = by_backlog[low].project[path].units
            b = by_backlog[high].project[path].units
            goals.append(
                [
                    f"{path}: AWS units at {low:,} vs {high:,} active jobs, within 1",
                    f"{fmt(a)} vs {fmt(b)}",
                    "yes" if abs(a - b) <= 1 else "no",
                ]
            )
    for level in levels:
        if level.active >= 16 * INDEX_SHARDS:
            for row in level.spread:
                goals.append(
                    [
                        f"{row[0]}: busiest key <= 1/8 of items (backlog {level.backlog:,})",
                        row[4],
                        row[5],
                    ]
                )
    print(table(["goal", "figure", "met"], goals))

    top = levels[-1]
    print()
    scenario_report(top, args.ms_per_round_trip)
    print()
    front_door_report(top, args.template)
    print()
    print(
        f"### Cost per million requests at backlog {top.backlog:,} (bench/cost.py prices; "
        "AWS units; a bulk request counts once)"
    )
    print()
    rows = []
    for path in PATHS:
        total, detail = cost_per_million(top.project[path], args.ms_per_round_trip)
        seed_total, _ = cost_per_million(top.seed[path], args.ms_per_round_trip)
        rows.append([path, f"${total:,.2f}", detail, f"${seed_total:,.2f}"])
    print(table(["path", "project USD / million", "of which", "seed USD / million"], rows))
    print()
    print(f"({seconds:.0f} s)")


# Limits the arithmetic is checked against (AWS documentation; docs/scale.md cites them).
NEW_TABLE_RRU, NEW_TABLE_WRU = 12_000, 4_000  # a new on-demand table, and each new GSI
PARTITION_RCU, PARTITION_WCU = 3_000, 1_000  # per partition, so per partition-key value
APIGW_ACCOUNT_RPS = 10_000  # API Gateway, per account and region (default quota)
LAMBDA_CONCURRENCY = 1_000  # concurrent executions per account and region (default quota)

# Request mixes, per second. DESIGN.md "Scale": 10,000 requests/s, most of them
# repeats of popular names, 1,000 new profiles/s. How the repeats split is assumed.
SCENARIOS: dict[str, dict[str, float]] = {
    "1,000 requests/s, all new": {"new": 1_000},
    "1,000 requests/s, 10% new": {
        "new": 100,
        "processed": 600,
        "duplicate": 150,
        "status": 150,
    },
    "10,000 requests/s, 1,000 new": {
        "new": 1_000,
        "processed": 6_000,
        "duplicate": 1_500,
        "status": 1_500,
    },
}
# The paths that read a queue position (every shard key and every counter key once).
POSITIONED = ("new", "duplicate", "status")


def per_target(f: Figures) -> dict[tuple[str, str], float]:
    runs = max(1, len(f.calls))
    return {key: units / runs for key, units in f.aws_by_target.items()}


def short(target: str) -> str:
    """ "JobsTable/ActiveQueueIndex" -> "Jobs/ActiveQueueIndex" (the template's names)."""
    return target.replace("Table", "", 1) if "/" in target else target.removesuffix("Table")


def load_of(mix: dict[str, float], level: Level) -> dict[tuple[str, str], float]:
    load: Counter[tuple[str, str]] = Counter()
    for path, rate in mix.items():
        for key, units in per_target(level.project[path]).items():
            load[key] += rate * units
    return dict(load)


def duration_s(f: Figures, ms_per_round_trip: float) -> float:
    return (10 + ms_per_round_trip * f.median("round_trips")) / 1000


def limits_of(
    mix: dict[str, float], level: Level, ms_per_round_trip: float
) -> list[tuple[str, float, float]]:
    """(limit, load, capacity) for every limit the mix approaches: the table and index
    throughput of a new on-demand table, the hottest partition-key values, the front
    door and Lambda."""
    load = load_of(mix, level)
    rows: list[tuple[str, float, float]] = []
    for (target, kind), units in sorted(load.items()):
        capacity = NEW_TABLE_RRU if kind == "R" else NEW_TABLE_WRU
        unit = "RRU" if kind == "R" else "WRU"
        rows.append((f"{short(target)}: {unit}/s, new on-demand table", units, capacity))
    positions = sum(rate for path, rate in mix.items() if path in POSITIONED)
    status = per_target(level.project["status"])
    shard_read = sum(u for (t, k), u in status.items() if k == "R" and "ActiveQueueIndex" in t)
    counters_read = sum(
        u for (t, k), u in per_target(level.project["queue-status"]).items() if k == "R"
    )
    rows.append(
        (
            f"one ActiveQueueIndex shard key (ACTIVE#NN): RCU/s, {positions:,.0f} position reads/s",
            positions * shard_read / INDEX_SHARDS,
            PARTITION_RCU,
        )
    )
    rows.append(
        (
            f"one counter item (#stats#NN): RCU/s, {positions:,.0f} position reads/s",
            positions * counters_read / (STAT_SHARDS + 1),
            PARTITION_RCU,
        )
    )
    new = mix.get("new", 0.0)
    # A new job's counter update is one item of its transaction: 2 WRU on AWS.
    rows.append(("one counter item (#stats#NN): WCU/s", new * 2 / STAT_SHARDS, PARTITION_WCU))
    aqi_writes = sum(u for (t, k), u in load.items() if k == "W" and "ActiveQueueIndex" in t)
    rows.append(("one ActiveQueueIndex shard key: WCU/s", aqi_writes / INDEX_SHARDS, PARTITION_WCU))
    total = sum(mix.values())
    rows.append(("API Gateway requests/s (account quota)", total, APIGW_ACCOUNT_RPS))
    concurrency = sum(
        rate * duration_s(level.project[path], ms_per_round_trip) for path, rate in mix.items()
    )
    rows.append(("API function concurrency (account quota)", concurrency, LAMBDA_CONCURRENCY))
    return rows


def scenario_report(level: Level, ms_per_round_trip: float) -> None:
    print(
        f"### Arithmetic at backlog {level.backlog:,}: load against limits "
        "(AWS units per request as measured above; 'x' = how far the mix scales before the limit)"
    )
    for name, mix in SCENARIOS.items():
        print()
        parts = ", ".join(f"{path} {rate:,.0f}" for path, rate in mix.items())
        total = sum(mix.values())
        cost = sum(
            rate * cost_per_million(level.project[path], ms_per_round_trip)[0] / 1e6
            for path, rate in mix.items()
        )
        print(
            f"{name} ({parts}): ${cost * 3600:,.2f} per hour, "
            f"${cost / total * 1e6:,.2f} per million requests"
        )
        rows = [
            [limit, f"{load:,.0f}", f"{capacity:,.0f}", f"{capacity / load:.2f}" if load else "—"]
            for limit, load, capacity in limits_of(mix, level, ms_per_round_trip)
        ]
        rows.sort(key=lambda row: float(row[3]) if row[3] != "—" else float("inf"))
        print(table(["limit", "load", "limit value", "x"], rows))


# The public routes that reach DynamoDB, and the path whose cost bounds each one.
ROUTE_COST = {
    "POST /api/profile/{username}/request": "new",
    "GET /api/profile/{username}/status": "status",
    "GET /api/viral-ideas/queue-status": "queue-status",
    "POST /api/profile/bulk-request": "bulk",
}


def front_door_report(level: Level, template: dict[str, Any]) -> None:
    """Every route at its stage throttle at once (API Gateway applies the stage's limit
    to each method): does the load stay inside a new on-demand table?"""
    params = template["Parameters"]
    rate = float(params["ApiThrottleRateLimit"]["Default"])
    burst = float(params["ApiThrottleBurstLimit"]["Default"])
    bulk = float(params["ApiBulkThrottleRateLimit"]["Default"])
    mix = {path: (bulk if path == "bulk" else rate) for path in ROUTE_COST.values()}
    print(
        f"### Front door: each route at its throttle at once (ApiThrottleRateLimit {rate:,.0f}, "
        f"burst {burst:,.0f}; ApiBulkThrottleRateLimit {bulk:,.0f}), against a new on-demand table"
    )
    print()
    load = load_of(mix, level)
    rows = []
    for (target, kind), units in sorted(load.items()):
        capacity = NEW_TABLE_RRU if kind == "R" else NEW_TABLE_WRU
        rows.append(
            [
                f"{short(target)} {'RRU' if kind == 'R' else 'WRU'}/s",
                f"{units:,.0f}",
                f"{capacity:,}",
                "yes" if units <= capacity else "no",
            ]
        )
    print(table(["table or index", "load", "new table", "inside"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3, help="runs per path and level")
    parser.add_argument(
        "--levels", default="0,1000,2000", help="backlogs of active jobs, ascending"
    )
    parser.add_argument("--big", action="store_true", help="add a level of 10,000 active jobs")
    parser.add_argument("--bulk", type=int, default=50, help="usernames per bulk request")
    parser.add_argument(
        "--ms-per-round-trip",
        type=float,
        default=10.0,
        help="assumed DynamoDB/SQS latency per round trip, for the Lambda duration of the cost table",
    )
    args = parser.parse_args(argv)
    backlogs = sorted({int(v) for v in args.levels.split(",") if v.strip()})
    if args.big:
        backlogs = sorted({*backlogs, 10_000})
    missing = ddbl.unavailable_reason()
    if missing:
        # As the tests do without the engine: say why, and let `make bench` go on.
        print(f"bench/capacity.py skipped: {missing}")
        return 0
    started = time.perf_counter()
    with local_stack(dynamodb_local=True) as (emulator, stack, _calls):
        args.template = stack.template
        raw = emulator.client("dynamodb")
        project = Project(stack, raw)
        project_probe = Probe()
        project_probe.attach(aws.dynamodb())
        project_probe.attach(aws.sqs())
        seed = SeedIntake(emulator.client("dynamodb"))
        seed.create_tables()
        seed_probe = Probe().attach(seed.client)
        project.add_processed("cap_processed")
        seed.add_profile("cap_processed")
        levels: list[Level] = []
        loaded = 0
        since = utc_now() - timedelta(days=1)
        with fan_out_attributed(dynamo_jobs._fan_out()), fan_out_attributed(intake._recorder()):
            for backlog in backlogs:
                names = [f"backlog_{i:07d}" for i in range(loaded, backlog)]
                at = since + timedelta(milliseconds=loaded)
                project.load_backlog(names, at)
                seed.load_active(names, at)
                loaded = backlog
                level = Level(backlog)
                run_level(
                    level,
                    args.requests,
                    args.bulk,
                    project=project,
                    project_probe=project_probe,
                    seed=seed,
                    seed_probe=seed_probe,
                )
                levels.append(level)
                print(f"backlog {backlog:,}: measured", file=sys.stderr, flush=True)
    report(levels, args, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
