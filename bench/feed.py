"""What one page of the viral-ideas feed costs, with 100 and with 10,000 analysed profiles.

    PYTHONPATH=layers/common:. python bench/feed.py [--dynamodb-local] [--profiles 100,10000] [--reels 30]

Loads the reels of N analysed profiles into the Content table, then asks the API
handler (in-process, as Lambda runs it) for feed pages and reports, per page, the
DynamoDB calls, the items DynamoDB read (ScannedCount) and the read capacity units
it consumed (ReturnConsumedCapacity=TOTAL, asked for on the handler's own client).
The target (issue 11): a page costs the same with 10,000 profiles as with 100.

The reels are what the worker writes, built by the same functions: the sample
provider's reels (dated back from today, over 120 days), scored by `analyse`, made
items by the adapter's `reel_to_item` with the feed keys, written with
BatchWriteItem. Only the worker's other steps (jobs, profiles) are skipped.

On the emulator (moto) calls and items read are DynamoDB's, but moto reports a
flat 1 capacity unit per Query whatever it reads, and answers a GSI Query by reading
the whole table, so it only runs the 100-profile case. Capacity units are real on
DynamoDB Local (`--dynamodb-local`: devstack/dynamodb_local.py runs AWS's engine;
SQS stays on the emulator).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bench.common import Probe, local_stack, table
from devstack.invoke import LocalApi
from viralspot.adapters.codec import serialize
from viralspot.adapters.dynamo_content import reel_to_item
from viralspot.analytics import analyse
from viralspot.feed import MAX_WINDOW_DAYS, FeedProfile
from viralspot.providers.sample import SampleProvider

BATCH = 25
RUNS = 5  # timed repetitions per page


def load(client: Any, table_name: str, first: int, last: int, reels: int) -> int:
    """Profiles bench_<first>..bench_<last-1>, `reels` each, as the worker stores them."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    provider = SampleProvider(reference_time=today)
    written = 0
    batch: list[dict[str, Any]] = []
    for i in range(first, last):
        name = f"bench_{i:05d}"
        profile = provider.fetch_profile(name)
        analysis = analyse(provider.fetch_reels(name, reels), profile.followers_count)
        owner = FeedProfile(followers_count=profile.followers_count, category=profile.category)
        for reel in analysis.reels:
            batch.append(
                {"PutRequest": {"Item": serialize(reel_to_item(name, reel, "sample", owner))}}
            )
            if len(batch) == BATCH:
                written += _write(client, table_name, batch)
                batch = []
    if batch:
        written += _write(client, table_name, batch)
    return written


def _write(client: Any, table_name: str, batch: list[dict[str, Any]]) -> int:
    pending = batch
    while pending:
        answer = client.batch_write_item(RequestItems={table_name: pending})
        pending = answer.get("UnprocessedItems", {}).get(table_name, [])
    return len(batch)


def measure(api: LocalApi, calls: Probe, query: dict[str, Any]) -> dict[str, Any]:
    def page() -> dict[str, Any]:
        code, _, body = api.request("GET", f"/api/viral-ideas/reels?{urlencode(query)}")
        assert code == 200, body
        data: dict[str, Any] = body["data"]
        return data

    calls.reset()
    data = page()
    figures = {
        "reels": data["count"],
        "queries": calls.operations["dynamodb.Query"],
        "other calls": len(calls.calls) - calls.operations["dynamodb.Query"],
        "items read": calls.scanned,
        "RCU": round(calls.consumed, 1),
        "next_cursor": data.get("next_cursor"),
    }
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        page()
        samples.append((time.perf_counter() - start) * 1000)
    figures["median ms"] = round(statistics.median(samples))
    return figures


def pages(category: str) -> list[tuple[str, Callable[[str | None], dict[str, Any]]]]:
    oldest = (datetime.now(UTC).date() - timedelta(days=MAX_WINDOW_DAYS)).isoformat()
    return [
        ("first page (defaults: last 30 days, ≥ 2x, 20)", lambda _: {}),
        ("its next page (cursor)", lambda cursor: {"cursor": cursor} if cursor else {}),
        ("limit 100", lambda _: {"limit": 100}),
        (f"category {category!r}", lambda _: {"category": category}),
        (f"since {MAX_WINDOW_DAYS} days ago (widest window)", lambda _: {"since": oldest}),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--dynamodb-local",
        action="store_true",
        help="DynamoDB on DynamoDB Local (make dynamodb-local) instead of moto",
    )
    parser.add_argument(
        "--profiles",
        help="comma-separated sizes (default 100,10000 on DynamoDB Local; 100 on moto, "
        "which answers a GSI Query by reading the whole table and times out beyond)",
    )
    parser.add_argument("--reels", type=int, default=30, help="reels per profile")
    args = parser.parse_args()
    default_sizes = "100,10000" if args.dynamodb_local else "100"
    sizes = sorted(int(n) for n in (args.profiles or default_sizes).split(","))

    engine = "DynamoDB Local" if args.dynamodb_local else "moto"
    rows = []
    with local_stack(dynamodb_local=args.dynamodb_local, capacity=True) as (emulator, stack, calls):
        client = emulator.client("dynamodb")
        api = LocalApi(stack)
        category = SampleProvider().fetch_profile("bench_00000").category or "Chef"
        loaded = 0
        for size in sizes:
            start = time.perf_counter()
            load(client, stack.refs["ContentTable"], loaded, size, args.reels)
            print(
                f"loaded {size:,} profiles ({size * args.reels:,} reels) "
                f"in {time.perf_counter() - start:.0f} s",
                flush=True,
            )
            loaded = size
            cursor = None
            for label, params in pages(category):
                figures = measure(api, calls, params(cursor))
                if cursor is None:
                    cursor = figures["next_cursor"]
                rows.append(
                    [
                        f"{size:,}",
                        label,
                        figures["reels"],
                        figures["queries"],
                        figures["other calls"],
                        figures["items read"],
                        figures["RCU"],
                        figures["median ms"],
                    ]
                )
    print(f"\nEngine: {engine}; {args.reels} reels per profile.")
    print(
        table(
            [
                "profiles",
                "page",
                "reels",
                "Query calls",
                "other calls",
                "items read",
                "RCU (consumed)",
                "median ms",
            ],
            rows,
        )
    )
    print(
        "Target: per page, the same Query calls at every size, and items read and RCU that\n"
        "stop growing once every (week, shard) stream holds more than a first read takes\n"
        "(with few profiles some streams hold less, so a page reads less)."
    )


if __name__ == "__main__":
    main()
