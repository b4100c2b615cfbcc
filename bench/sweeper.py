"""The sweep's DynamoDB cost against completed history.

    PYTHONPATH=layers/common:. python bench/sweeper.py [--history 10000] [--due 100]

Loads N COMPLETED jobs (history) and M jobs due for repair, then runs one sweep
and reports its DynamoDB calls and the items DynamoDB read to answer them
(ScannedCount), which is what read units are billed on. The target (issue 4): the
figures do not grow with the history, because the sweep reads only the sparse
SweepIndex, where completed jobs have no key.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from bench.common import local_stack, put_items, table
from viralspot import bootstrap
from viralspot.adapters.dynamo_jobs import job_to_item
from viralspot.clock import utc_now
from viralspot.errors import ErrorKind
from viralspot.jobs import JobStatus, Source, completed, new_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    args = parser.parse_args()

    rows = []
    with local_stack() as (emulator, stack, calls):
        client = emulator.client("dynamodb")
        jobs_table = stack.refs["JobsTable"]
        now = utc_now()
        loaded = 0
        for history in sorted({0, args.history // 10, args.history}):
            past = now - timedelta(days=1)
            put_items(
                client,
                jobs_table,
                [
                    job_to_item(completed(new_job(f"done_{i}", Source.API, past), past))
                    for i in range(loaded, history)
                ],
            )
            loaded = history
            # Due work: failed jobs whose retry time has come, re-created each round.
            due = [
                new_job(f"due_{i}", Source.FRONTEND, past).model_copy(
                    update={
                        "status": JobStatus.FAILED,
                        "attempts": 1,
                        "error_message": "HTTP 429",
                        "error_kind": ErrorKind.TRANSIENT,
                        "next_retry_at": now - timedelta(minutes=1),
                        "updated_at": past,
                    }
                )
                for i in range(args.due)
            ]
            put_items(client, jobs_table, [job_to_item(j) for j in due])
            ctx = bootstrap.services()
            calls.reset()
            start = time.perf_counter()
            report = ctx.sweep()
            elapsed = (time.perf_counter() - start) * 1000
            rows.append(
                [
                    history,
                    args.due,
                    report.repairs["retried"],
                    calls.of("dynamodb"),
                    calls.operations["dynamodb.Query"],
                    calls.scanned,
                    calls.of("sqs"),
                    f"{elapsed:.0f}",
                ]
            )
    print(
        table(
            [
                "completed history",
                "due",
                "retried",
                "DynamoDB calls",
                "of which Query",
                "items read (ScannedCount)",
                "SQS sends",
                "wall ms",
            ],
            rows,
        )
    )
    print("Target: DynamoDB calls and items read flat as history grows (no table scan).")


if __name__ == "__main__":
    main()
