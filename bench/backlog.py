"""A crawler backlog of 100,000 jobs: what the sweeper, a MEDIUM request and the
admin operations cost behind it.

    PYTHONPATH=layers/common:. python bench/backlog.py [--jobs 100000] [--messages 1000]
        [--lost-low 600] [--dead-letters 1000] [--exhausted 1000] [--sweeps 3] [--moto]

Seeds the Jobs table (DynamoDB Local by default, AWS's own engine: real indexes,
real ConsumedCapacity; `--moto` for the emulator) with `--jobs` LOW jobs waiting
with a message, written as the adapter writes them (`job_to_item`, 25 to a
BatchWriteItem) with queue counters that agree, and puts the messages of the first
`--messages` of them on the low queue. Only those: moto's SQS costs time in
proportion to a queue's length on every send (its queue attributes count every
message), so 100,000 real messages would take hours to seed and would slow every
later send; nothing measured here reads the low queue's messages. Then measures,
through the real services and handlers:

1. sweeps against that backlog: messages sent (goal: 0, every job has its message),
   capacity units and wall time;
2. a HIGH job whose send failed, behind `--lost-low` LOW jobs whose sends failed
   too: how many sweeps until it is dispatched, and until the LOW ones are;
3. a MEDIUM request made behind the backlog: messages ahead of it on its queue;
4. queue-status, one process-pending call and a redrive of `--dead-letters`
   dead letters and `--exhausted` jobs whose retries ran out, each through the
   API handler: wall time against the API function's 10 s timeout.

Figures go to docs/benchmarks.md ("A crawler backlog of 100,000").
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bench.common import CallTimes, Probe, local_stack, put_items, send_bodies, table
from devstack.invoke import LocalApi
from viralspot import bootstrap
from viralspot.adapters import aws
from viralspot.adapters.dynamo_jobs import STATS_PREFIX, job_to_item
from viralspot.clock import utc_now
from viralspot.errors import DispatchFailed
from viralspot.jobs import ErrorKind, Job, JobMessage, JobStatus, Source, new_job
from viralspot.queue_stats import transition
from viralspot.sharding import sharded
from viralspot.sweeper import SweepReport

API_TIMEOUT_MS = 10_000
SEED_THREADS = 4


def crawled(i: int, at: datetime, *, sent: bool) -> Job:
    job = new_job(f"crawl_{i:06d}", Source.CRAWLER, at, depth=1, discovered_from="seed")
    return job.model_copy(update={"dispatched_at": at if sent else None})


def exhausted(i: int, at: datetime) -> Job:
    """A crawled job whose retries ran out at `at`: what redrive re-opens."""
    job = new_job(f"spent_{i:06d}", Source.CRAWLER, at, depth=1, discovered_from="seed")
    return job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "attempts": 3,
            "error_message": "HTTP 500 (benchmark)",
            "error_kind": ErrorKind.TRANSIENT,
            "updated_at": at,
        }
    )


def seed(dynamodb: Any, jobs_table: str, jobs: list[Job]) -> None:
    """The jobs as intake leaves them, and counters that agree."""
    chunks = [jobs[i : i + 1000] for i in range(0, len(jobs), 1000)]

    def one(chunk: list[Job]) -> None:
        put_items(dynamodb, jobs_table, [job_to_item(j) for j in chunk])

    with ThreadPoolExecutor(max_workers=SEED_THREADS) as pool:
        list(pool.map(one, chunks))
    counts: Counter[str] = Counter()
    for job in jobs:
        counts.update(transition(None, job))
    if not counts:  # jobs that have ended count nowhere
        return
    # One more counter shard beside the ones the code writes: readers sum them all.
    key = sharded(STATS_PREFIX, 0)
    dynamodb.update_item(
        TableName=jobs_table,
        Key={"username": {"S": key}},
        UpdateExpression="ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(counts))),
        ExpressionAttributeNames={f"#c{i}": name for i, name in enumerate(counts)},
        ExpressionAttributeValues={f":c{i}": {"N": str(n)} for i, n in enumerate(counts.values())},
    )


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


class Refusing:
    """The dispatcher during an SQS outage: every send fails."""

    def dispatch(self, job: Job) -> None:
        raise DispatchFailed("SQS unavailable (benchmark)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--lost-low", type=int, default=600)
    parser.add_argument("--dead-letters", type=int, default=1_000)
    parser.add_argument("--exhausted", type=int, default=1_000)
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument(
        "--moto", action="store_true", help="DynamoDB on moto instead of DynamoDB Local"
    )
    args = parser.parse_args()

    with local_stack(dynamodb_local=not args.moto) as (emulator, stack, calls):
        ctx = bootstrap.services()
        # The container's clients, which every adapter of the services shares.
        capacity = Probe().attach(aws.dynamodb())
        times = CallTimes().install(aws.dynamodb()).install(aws.sqs())
        dynamodb, sqs = emulator.client("dynamodb"), emulator.client("sqs")
        refs = stack.refs
        engine = "moto" if args.moto else "DynamoDB Local"

        print(f"Load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        started = time.perf_counter()
        now = utc_now()
        first = now - timedelta(hours=2)
        # Distinct arrival instants, a millisecond apart, as discovery makes them.
        backlog = [
            crawled(i, first + timedelta(milliseconds=i), sent=True) for i in range(args.jobs)
        ]
        seed(dynamodb, refs["JobsTable"], backlog)
        send_bodies(
            sqs,
            refs["LowQueue"],
            [JobMessage.of(j).model_dump_json() for j in backlog[: args.messages]],
        )
        print(
            f"Seeded {args.jobs:,} LOW jobs waiting with a message on {engine}"
            f" ({depth(sqs, refs['LowQueue']):,} of the messages on the low queue) in"
            f" {time.perf_counter() - started:.0f} s."
        )

        def sweep(clock: Callable[[], datetime]) -> tuple[SweepReport, dict[str, Any]]:
            calls.reset()
            capacity.reset()
            times.reset()
            before = {name: depth(sqs, refs[name]) for name in ("HighQueue", "LowQueue")}
            start = time.perf_counter()
            report = ctx.sweep()
            wall = (time.perf_counter() - start) * 1000
            sent = {name: depth(sqs, refs[name]) - n for name, n in before.items()}
            return report, {
                "sent_high": sent["HighQueue"],
                "sent_low": sent["LowQueue"],
                "dynamodb": calls.of("dynamodb"),
                "read": capacity.rru,
                "write": capacity.wru,
                "ms": wall,
                "dynamodb_ms": times.ms["dynamodb"],
                "sqs_ms": times.ms["sqs"],
            }

        # 1. Sweeps against the backlog: every job has its message.
        rows = []
        for n in range(1, args.sweeps + 1):
            report, m = sweep(utc_now)
            rows.append(
                [
                    n,
                    report.examined,
                    m["sent_high"] + m["sent_low"],
                    m["dynamodb"],
                    f"{m['read']:.1f}",
                    f"{m['write']:.1f}",
                    f"{m['ms']:.0f}",
                    f"{m['dynamodb_ms']:.0f}",
                    f"{m['sqs_ms']:.0f}",
                ]
            )
        print(f"\n1. Sweeps against {args.jobs:,} LOW jobs waiting with a message ({engine})\n")
        print(
            table(
                [
                    "sweep",
                    "jobs examined",
                    "messages sent",
                    "DynamoDB calls",
                    "read units",
                    "write units",
                    "wall ms",
                    "in DynamoDB ms",
                    "in SQS ms",
                ],
                rows,
            )
        )

        # 2. A HIGH job whose send failed, behind LOW jobs whose sends failed too.
        lost_at = utc_now()
        lost_low = [
            crawled(args.jobs + i, lost_at + timedelta(milliseconds=i), sent=False)
            for i in range(args.lost_low)
        ]
        seed(dynamodb, refs["JobsTable"], lost_low)
        answer = replace(ctx, queues=Refusing()).intake("a_person", Source.FRONTEND).answer
        assert answer.fallback_mode, answer
        grace = timedelta(minutes=ctx.settings.pending_grace_minutes, seconds=1)
        rows = []
        high_after: int | None = None
        n = 0
        while n < 100:
            n += 1
            report, m = sweep(lambda: utc_now() + grace)
            if m["sent_high"] and high_after is None:
                high_after = n
            rows.append(
                [
                    n,
                    m["sent_high"],
                    m["sent_low"],
                    m["dynamodb"],
                    f"{m['read']:.1f}",
                    f"{m['write']:.1f}",
                    f"{m['ms']:.0f}",
                    f"{m['dynamodb_ms']:.0f}",
                    f"{m['sqs_ms']:.0f}",
                ]
            )
            if not report.examined:
                break
        print(
            f"\n2. A HIGH job whose send failed, behind {args.lost_low:,} LOW jobs whose sends"
            f" failed and the {args.jobs:,} waiting (SweepMaxJobs"
            f" {ctx.settings.sweep_max_jobs}): dispatched by sweep {high_after}\n"
        )
        print(
            table(
                [
                    "sweep",
                    "HIGH sent",
                    "LOW sent",
                    "DynamoDB calls",
                    "read units",
                    "write units",
                    "wall ms",
                    "in DynamoDB ms",
                    "in SQS ms",
                ],
                rows,
            )
        )

        # 3. A MEDIUM request made behind the backlog.
        api = LocalApi(stack)
        low_waiting = depth(sqs, refs["LowQueue"])
        ahead = depth(sqs, refs["MediumQueue"])
        _, _, body = api.request("POST", "/api/profile/an_api_user/request?source=api")
        data = body["data"]
        print(
            f"\n3. A MEDIUM request behind the backlog: {ahead} message(s) ahead of it on the"
            f" medium queue ({low_waiting:,} LOW messages wait on the low queue);"
            f" queue_position {data['queue_position']}, estimated_time"
            f" {data['estimated_time']!r}\n"
        )

        # 4. The admin and status routes at this size, through the API handler.
        spent = now - timedelta(hours=1)
        seed(
            dynamodb,
            refs["JobsTable"],
            [exhausted(i, spent + timedelta(milliseconds=i)) for i in range(args.exhausted)],
        )
        send_bodies(
            sqs,
            refs["LowDeadLetterQueue"],
            [json.dumps({"dead": i}) for i in range(args.dead_letters)],
        )
        rows = []
        for label, method, path in (
            ("queue-status", "GET", "/api/viral-ideas/queue-status"),
            ("process-pending (one call)", "POST", "/api/viral-ideas/process-pending"),
            (
                f"redrive ({args.dead_letters:,} dead letters, by hand: moto has no move"
                f" tasks; {args.exhausted:,} jobs whose retries ran out)",
                "POST",
                f"/api/viral-ideas/redrive?max_messages={args.dead_letters}",
            ),
        ):
            calls.reset()
            capacity.reset()
            times.reset()
            start = time.perf_counter()
            code, _, body = api.request(method, path, admin=True)
            wall = (time.perf_counter() - start) * 1000
            assert code == 200, (path, body)
            data = body["data"]
            if label == "queue-status":
                what = f"{data['totals']['PENDING']:,} PENDING counted"
            elif label.startswith("process-pending"):
                what = (
                    f"{data['dispatched']:,} re-sent of {data['examined']:,} examined,"
                    f" has_more {data['has_more']}"
                )
            else:
                again = data["reopened"]
                what = (
                    f"{data['total']:,} moved; {again['dispatched']:,} re-opened of"
                    f" {again['examined']:,} examined, has_more {again['has_more']}"
                )
            rows.append(
                [
                    label,
                    what,
                    calls.of("dynamodb"),
                    calls.of("sqs"),
                    f"{capacity.rru:.1f}",
                    f"{capacity.wru:.1f}",
                    f"{wall:.0f}",
                    f"{times.ms['dynamodb']:.0f}",
                    f"{times.ms['sqs']:.0f}",
                    "yes" if wall < API_TIMEOUT_MS else "NO",
                ]
            )
        print(f"4. Operations at {args.jobs + args.lost_low:,} waiting jobs ({engine})\n")
        print(
            table(
                [
                    "route",
                    "result",
                    "DynamoDB calls",
                    "SQS calls",
                    "read units",
                    "write units",
                    "wall ms",
                    "in DynamoDB ms",
                    "in SQS ms",
                    "< 10 s",
                ],
                rows,
            )
        )
        if args.moto:
            print("\n(moto reports no ConsumedCapacity: the unit columns read 0.)")
        print(
            "\n'in ... ms': time inside the engine's calls, summed over threads"
            " (process-pending runs its writes and sends side by side)."
        )
        print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
