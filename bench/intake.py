"""Benchmark of the intake path: round trips and AWS calls per request, and latency.

Runs the API function in-process (devstack.invoke.LocalApi, API Gateway proxy
events) against the embedded AWS emulator (a moto server on loopback) with the
tables and queues of infra/template.yaml, and for each intake outcome measures

- the round trips one request makes (sequential steps: the shard queries and the
  counter read of a queue position, and the record of a send beside them, run side
  by side and count once; bench.common.Probe on the handler's own DynamoDB and SQS
  clients, with the adapters' pools attributed to the request), against the
  design's targets (DESIGN.md "Read first, decide atomically": new <= 4,
  duplicate <= 2, already processed 1), and the AWS calls behind them;
- the median and p95 wall-clock latency of the handler over N requests.

Latency is the emulator's, on loopback, in one process: useful to compare runs and
spot regressions, not a prediction of latency on AWS.

Usage (from the repository root; the layer and the root must be importable):

    PYTHONPATH=layers/common:. .venv/bin/python bench/intake.py [--requests N]

Exit status 1 if a path makes more round trips than its target.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

try:
    from bench.common import Probe, fan_out_attributed, local_stack, percentile
    from devstack.invoke import LocalApi
    from viralspot import intake
    from viralspot.adapters import dynamo_jobs
    from viralspot.adapters.codec import serialize
    from viralspot.adapters.dynamo_jobs import job_to_item
    from viralspot.clock import to_iso, utc_now
    from viralspot.jobs import JobStatus, Source, new_job
except ImportError as exc:  # pragma: no cover - a usage error, not a code path
    sys.exit(
        f"bench/intake.py: {exc}. Run it from the repository root with the layer on the path:\n"
        "    PYTHONPATH=layers/common:. .venv/bin/python bench/intake.py"
    )

FUNCTION = "RequestProfileFunction"
MIN_REQUESTS = 20


@dataclass
class PathResult:
    name: str
    target: int
    expected_skip: str | None
    latencies: list[float] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)
    calls_per_request: list[int] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0

    @property
    def max_round_trips(self) -> int:
        return max(self.round_trips, default=0)

    @property
    def ok(self) -> bool:
        return self.max_round_trips <= self.target and self.unexpected == 0

    def breakdown(self) -> str:
        n = max(1, len(self.calls_per_request))
        return ", ".join(
            f"{op.split('.', 1)[1]} x{count / n:g}" for op, count in sorted(self.operations.items())
        )


@contextlib.contextmanager
def quiet_stdout(enabled: bool) -> Iterator[None]:
    """Send the handler's structured logs and EMF metrics (stdout) to /dev/null.

    At the file-descriptor level, so the logging and serialisation still cost what
    they cost in Lambda; only the bytes are dropped."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def measure(
    api: LocalApi,
    probe: Probe,
    result: PathResult,
    urls: list[str],
    *,
    deadline: float,
) -> None:
    """Request every url in turn; stop early (after MIN_REQUESTS) past `deadline`
    (time.monotonic), so a slow machine still finishes within the time budget."""
    for i, url in enumerate(urls):
        if i >= MIN_REQUESTS and time.monotonic() > deadline:
            break
        probe.reset()
        started = time.perf_counter()
        status, _, body = api.request("POST", url)
        result.latencies.append((time.perf_counter() - started) * 1000)
        result.round_trips.append(probe.round_trips)
        result.calls_per_request.append(len(probe.calls))
        result.operations.update(probe.operations)
        data = body.get("data", {}) if isinstance(body, dict) else {}
        if status != 200 or data.get("skip_reason") != result.expected_skip:
            result.unexpected += 1


def run(requests: int, *, budget: float, show_logs: bool) -> list[PathResult]:
    started = time.monotonic()
    with local_stack() as (emulator, stack, probe):
        dynamodb = emulator.client("dynamodb")
        api = LocalApi(stack)

        now = utc_now()
        # A fully processed profile, and one completed two minutes ago.
        dynamodb.put_item(
            TableName=stack.refs["ProfilesTable"],
            Item=serialize(
                {
                    "username": "bench_processed",
                    "tier": "primary",
                    "created_at": to_iso(now - timedelta(days=30)),
                    "last_scraped_at": to_iso(now - timedelta(days=1)),
                }
            ),
        )
        done = now - timedelta(minutes=2)
        completed = new_job("bench_recent", Source.FRONTEND, done - timedelta(minutes=1))
        completed = completed.model_copy(
            update={"status": JobStatus.COMPLETED, "completed_at": done, "updated_at": done}
        )
        dynamodb.put_item(TableName=stack.refs["JobsTable"], Item=serialize(job_to_item(completed)))
        dynamodb.put_item(
            TableName=stack.refs["ProfilesTable"],
            Item=serialize(
                {
                    "username": "bench_recent",
                    "tier": "primary",
                    "created_at": to_iso(done),
                    "last_scraped_at": to_iso(done),
                }
            ),
        )

        # Cheapest first: time they leave unused goes to the dearer paths. "new" runs
        # last so the active index the others count over stays small.
        paths: list[tuple[PathResult, Callable[[int], str]]] = [
            (
                PathResult("already processed", 1, "already_processed"),
                lambda _: "/api/profile/bench_processed/request",
            ),
            (
                PathResult("recently completed", 1, "recently_completed"),
                lambda _: "/api/profile/bench_recent/request",
            ),
            (
                PathResult("duplicate", 2, "already_in_queue"),
                lambda _: "/api/profile/bench_dup/request",
            ),
            (PathResult("new", 4, None), lambda i: f"/api/profile/bench_new_{i}/request"),
        ]
        with (
            quiet_stdout(not show_logs),
            fan_out_attributed(dynamo_jobs._fan_out()),
            fan_out_attributed(intake._recorder()),
        ):
            # Warm up: imports, clients, connection pools (a Lambda's cold start is
            # not what this measures).
            api.request("POST", "/api/profile/bench_warmup/request")
            api.request("POST", "/api/profile/bench_dup/request")
            for done_paths, (result, url) in enumerate(paths):
                left = max(0.0, budget - (time.monotonic() - started))
                share = left / (len(paths) - done_paths)
                urls = [url(i) for i in range(requests)]
                measure(api, probe, result, urls, deadline=time.monotonic() + share)
        return [result for result, _ in paths]


def report(results: list[PathResult], requests: int, seconds: float) -> str:
    lines = [
        f"### Intake benchmark: up to {requests} requests per path (emulator, in-process)",
        "",
        "| path | requests | round trips | target | AWS calls | calls | median ms | p95 ms | result |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for r in results:
        low, high = min(r.round_trips, default=0), r.max_round_trips
        trips = f"{high}" if low == high else f"{low}-{high}"
        calls = statistics.median(r.calls_per_request) if r.calls_per_request else 0
        verdict = (
            "ok" if r.ok else "OVER TARGET" if r.max_round_trips > r.target else "WRONG ANSWER"
        )
        lines.append(
            f"| {r.name} | {len(r.latencies)} | {trips} | <= {r.target} | {calls:g} | {r.breakdown()} | "
            f"{statistics.median(r.latencies):.1f} | {percentile(r.latencies, 0.95):.1f} | {verdict} |"
        )
    lines += ["", f"Total {seconds:.1f} s."]
    short = [r.name for r in results if len(r.latencies) < requests]
    if short:
        lines.append(f"- stopped early (time budget): {', '.join(short)}")
    for r in results:
        if r.unexpected:
            lines.append(f"- {r.name}: {r.unexpected} answers were not '{r.expected_skip}'")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path")
    parser.add_argument(
        "--budget",
        type=float,
        default=90.0,
        help=f"seconds for the whole run; a path stops early (after {MIN_REQUESTS} requests)"
        " past its share of what is left",
    )
    parser.add_argument("--show-logs", action="store_true", help="keep the handler's stdout")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error("--requests must be at least 1")
    started = time.perf_counter()
    results = run(args.requests, budget=args.budget, show_logs=args.show_logs)
    print(report(results, args.requests, time.perf_counter() - started))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
