"""Resident memory of the local stack (`make run`) while it processes jobs.

    PYTHONPATH=layers/common:. python bench/local_stack.py \
        [--jobs 1000] [--batch 50] [--backlog 60] [--no-discovery] [--max-minutes 40]
    PYTHONPATH=layers/common:. python bench/local_stack.py --item-floor 20000

Starts the real local stack as a subprocess (`python -m devstack` on free
127.0.0.1 ports: gateway, API function, queue pollers, the worker with the
sample provider, the sweeper, and the embedded emulator), then feeds it bulk
requests for fresh usernames (`source=bulk`, 50 per call) whenever fewer than
`--backlog` jobs are live, until `--jobs` jobs are COMPLETED. Discovery is on,
as in `make run` (each profile queues its similar profiles at LOW), unless
`--no-discovery`.

Every `--sample-seconds` it reads the resident set size (VmRSS) of the stack's
whole process tree from /proc, and prints one row per milestone: jobs
completed, RSS, RSS growth per completed job since idle. At the end it counts
the items the emulator holds, and the growth per stored item. The last row is
the figure docs/benchmarks.md quotes. Nothing leaves 127.0.0.1.

`--item-floor N` measures the emulator alone instead: N sample reels written
into its Content table through the real adapter, in this process, and the
resident memory that costs per item: the floor under the figure above.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import table
from bench.load import HOST, emulator_client, free_port, make_run, resource_names

MIB = 1024 * 1024


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and every process below it."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        pending += _children(current)
    return total


def process_split(pid: int) -> str:
    """RSS of the stack's own process and of each child (the API containers)."""
    parts = [f"stack {tree_rss_one(pid) / MIB:.0f} MiB"]
    parts += [f"child {tree_rss(child) / MIB:.0f} MiB" for child in _children(pid)]
    return ", ".join(parts)


def tree_rss_one(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def thread_count(pid: int) -> int:
    return sum(1 for _ in Path(f"/proc/{pid}/task").glob("*"))


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def submit(port: int, names: list[str], attempts: int = 3) -> None:
    """One bulk request; again (intake is idempotent) if the API function timed out,
    as it can when the machine is busy and 50 transactions take over its 10 s."""
    for attempt in range(attempts):
        status, body = call(
            port, "POST", "/api/profile/bulk-request", {"usernames": names, "source": "bulk"}
        )
        if status == 200:
            return
        print(f"bulk-request answered {status}: {body}; retrying", file=sys.stderr)
        time.sleep(5 * (attempt + 1))
    raise RuntimeError(f"bulk-request kept failing ({status})")


def live_jobs(port: int) -> int:
    status, body = call(port, "GET", "/api/viral-ideas/queue-status")
    if status != 200:
        raise RuntimeError(f"queue-status answered {status}: {body}")
    return int(sum(body["data"]["totals"].values()))


def own_rss() -> int:
    return tree_rss(os.getpid())


def item_floor(count: int) -> None:
    """RSS per item of moto's DynamoDB store, nothing else running."""
    import gc

    from devstack.harness import local_stack
    from viralspot.adapters.dynamo_content import DynamoContentStore
    from viralspot.analytics import analyse
    from viralspot.providers.sample import SampleProvider

    with local_stack() as harness:
        store = DynamoContentStore(
            harness.stack.refs["ContentTable"], client=harness.emulator.client("dynamodb")
        )
        provider = SampleProvider()
        reels = analyse(provider.fetch_reels("floor_profile", 100), 10_000).reels
        store.put_reels("warm_up", reels, "sample")
        gc.collect()
        before = own_rss()
        for index in range(count // 100):
            store.put_reels(f"floor_{index:05d}", reels, "sample")
        gc.collect()
        after = own_rss()
        raw = sum(len(json.dumps(r.model_dump(mode="json"))) for r in reels) / len(reels)
    written = count // 100 * 100
    print(
        table(
            [
                "items written",
                "RSS before MiB",
                "RSS after MiB",
                "KiB per item",
                "item as JSON, bytes",
            ],
            [
                [
                    written,
                    f"{before / MIB:.0f}",
                    f"{after / MIB:.0f}",
                    f"{(after - before) / written / 1024:.1f}",
                    f"{raw:.0f}",
                ]
            ],
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000, help="completed jobs to reach")
    parser.add_argument("--batch", type=int, default=50, help="usernames per bulk request")
    parser.add_argument("--backlog", type=int, default=60, help="live jobs kept waiting")
    parser.add_argument("--no-discovery", action="store_true", help="DiscoveryMaxDepth=0")
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--max-minutes", type=float, default=40)
    parser.add_argument("--prefix", default="mem", help="username prefix")
    parser.add_argument(
        "--item-floor", type=int, metavar="N", help="measure the emulator's item store alone"
    )
    args = parser.parse_args()
    if args.item_floor:
        item_floor(args.item_floor)
        return

    api_port, emulator_port = free_port(), free_port()
    overrides = ["BackoffBaseSeconds=1", "PendingGraceMinutes=1"]
    if args.no_discovery:
        overrides.append("DiscoveryMaxDepth=0")
    command = [
        "--sweep-interval",
        "10",
        "--parameter-overrides",
        *overrides,
    ]
    milestones = sorted({*(round(args.jobs * f) for f in (0.1, 0.25, 0.5, 0.75)), args.jobs})
    rows: list[list[Any]] = []
    with make_run(api_port, emulator_port, *command, stop_seconds=30) as process:
        dynamodb = emulator_client("dynamodb", emulator_port)
        jobs_table = resource_names()[0]
        idle_rss = tree_rss(process.pid)
        rows.append([0, f"{idle_rss / MIB:.0f}", "—", thread_count(process.pid), "0", "idle"])
        start = time.monotonic()
        deadline = start + args.max_minutes * 60
        submitted = 0
        peak = idle_rss
        items: dict[str, int] = {}
        split = ""
        final_rss = idle_rss
        next_milestone = 0
        first_rss: int | None = None
        while time.monotonic() < deadline:
            live = live_jobs(api_port)
            stored = int(dynamodb.describe_table(TableName=jobs_table)["Table"]["ItemCount"])
            completed = stored - live
            if first_rss is None and completed > 0:
                first_rss = tree_rss(process.pid)
            rss = tree_rss(process.pid)
            peak = max(peak, rss)
            while next_milestone < len(milestones) and completed >= milestones[next_milestone]:
                per_job = (rss - idle_rss) / completed if completed else 0.0
                rows.append(
                    [
                        completed,
                        f"{rss / MIB:.0f}",
                        f"{per_job / 1024:.0f}",
                        thread_count(process.pid),
                        f"{time.monotonic() - start:.0f}",
                        f"{stored} jobs stored, {live} live",
                    ]
                )
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
                next_milestone += 1
            if next_milestone >= len(milestones):
                items = {
                    name: int(dynamodb.describe_table(TableName=name)["Table"]["ItemCount"])
                    for name in dynamodb.list_tables()["TableNames"]
                }
                final_rss = rss
                split = process_split(process.pid)
                break
            if live < args.backlog and completed + live < args.jobs:
                names = [f"{args.prefix}_{submitted + i:06d}" for i in range(args.batch)]
                submit(api_port, names)
                submitted += args.batch
            time.sleep(args.sample_seconds)
        else:
            print(f"stopped after {args.max_minutes:g} minutes", file=sys.stderr)

    print(
        f"\nResident memory of `python -m devstack` (process tree), "
        f"discovery {'off' if args.no_discovery else 'on'}, {submitted} usernames requested, "
        f"peak {peak / MIB:.0f} MiB, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        table(
            ["jobs completed", "RSS MiB", "KiB per job", "threads", "seconds", "note"],
            rows,
        )
    )
    if items:
        stored = sum(items.values())
        print(
            f"\nItems in the emulator: {', '.join(f'{n} {c:,}' for n, c in sorted(items.items()))}"
            f"; growth since idle {(final_rss - idle_rss) / MIB:.0f} MiB = "
            f"{(final_rss - idle_rss) / stored / 1024:.1f} KiB per stored item; by process: {split}"
        )


if __name__ == "__main__":
    main()
