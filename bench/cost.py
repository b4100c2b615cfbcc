"""What the stack costs: idle per month, and per 1,000 requests, at on-demand prices.

    PYTHONPATH=layers/common:. .venv/bin/python bench/cost.py [--requests N]
        [--provider-seconds S]

Runs the deployed handlers in-process on the emulator, the way `make run` does (API
proxy events, the SQS event source emulation of devstack/workers.py, the sweeper),
and counts what AWS bills for: API Gateway requests, Lambda invocations, SQS
requests (the event source mapping's receives and deletes included), DynamoDB
request units (from the size of every item written and read, by DynamoDB's rounding
rules), log bytes, X-Ray traces. Prices below are us-east-1 list prices as of
2026-12, without the free tier; change PRICES for another region.

What the emulator cannot tell is an input, not a measurement: Lambda duration is the
handler's in-process time here (a floor: AWS calls cost milliseconds on AWS, not
microseconds) plus, for the worker, --provider-seconds of waiting on the data
provider per profile (the sample provider answers at once; RapidAPI takes seconds).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

from bench.common import local_stack, table
from devstack.emulator import client_for
from devstack.invoke import LocalApi, handler_for
from devstack.workers import LocalFunction, scheduled_event, sqs_sources
from viralspot.adapters import aws

# us-east-1 on-demand list prices, 2026-12 (USD). Free tiers are left out.
PRICES = {
    "api_gateway_rest_per_million": 3.50,
    "lambda_per_million_requests": 0.20,
    "lambda_per_gb_second": 0.0000166667,  # x86_64
    "sqs_per_million_requests": 0.40,  # standard queues, per 64 KB chunk
    "dynamodb_per_million_wru": 0.625,
    "dynamodb_per_million_rru": 0.125,
    "cloudwatch_logs_per_gb_ingested": 0.50,
    "xray_per_million_traces": 5.00,
}
MEMORY_GB = {
    "RequestProfileFunction": 0.5,
    "ProcessProfileFunction": 0.5,
    "RetryFailedFunction": 0.25,
}
# Lambda's own START / END / REPORT lines per invocation.
PLATFORM_LOG_BYTES = 300
# An idle SQS event source mapping keeps five long polls (20 s) open per queue.
IDLE_POLLERS_PER_QUEUE = 5
SECONDS_PER_MONTH = 30 * 24 * 3600


# ------------------------------------------------------------ DynamoDB units


def _value_size(value: dict[str, Any]) -> int:
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(str(raw).encode())
    if kind == "N":
        return len(str(raw).lstrip("-").replace(".", "")) // 2 + 2
    if kind == "B":
        return len(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in raw)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in raw)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in raw.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB bills an item for: names plus values (its documented rules)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def write_units(item: dict[str, Any] | None) -> int:
    return max(1, math.ceil(item_size(item or {}) / 1024))


@dataclass
class Units:
    wru: float = 0.0
    rru: float = 0.0

    def read(self, items: list[dict[str, Any]], *, consistent: bool, per_item: bool) -> None:
        sizes = [item_size(i) for i in items] or [0]
        blocks = (
            sum(max(1, math.ceil(s / 4096)) for s in sizes)
            if per_item
            else max(1, math.ceil(sum(sizes) / 4096))
        )
        self.rru += blocks * (1 if consistent else 0.5)


@dataclass(frozen=True)
class Index:
    keys: tuple[str, ...]
    projects_all: bool


def indexes_of(template: dict[str, Any]) -> dict[str, list[Index]]:
    """Each table's secondary indexes: a write to an item carrying an index's keys
    also writes the index (the whole item for ALL, the keys for KEYS_ONLY)."""
    found: dict[str, list[Index]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        found[name] = [
            Index(
                keys=tuple(k["AttributeName"] for k in index["KeySchema"]),
                projects_all=index["Projection"]["ProjectionType"] == "ALL",
            )
            for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            for index in props.get(kind, [])
        ]
    return found


@dataclass
class Meter:
    """Hooks on the handlers' DynamoDB client: request units by DynamoDB's rules."""

    indexes: dict[str, list[Index]]
    units: Units = field(default_factory=Units)
    stored: Callable[[str, dict[str, Any]], dict[str, Any] | None] = lambda _t, _k: None

    def write(self, table_name: str, item: dict[str, Any] | None, factor: int = 1) -> None:
        units = write_units(item)
        for index in self.indexes.get(table_name, []):
            if item and all(key in item for key in index.keys):
                units += write_units(item) if index.projects_all else 1
        self.units.wru += factor * units

    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["metered_params"] = params
        op = model.name
        if op == "PutItem":
            self.write(params["TableName"], params["Item"])
        elif op == "BatchWriteItem":
            for table_name, requests in params["RequestItems"].items():
                for request in requests:
                    self.write(table_name, request.get("PutRequest", {}).get("Item"))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                ((_kind, body),) = entry.items()
                item = body.get("Item") or self.stored(body["TableName"], body["Key"])
                # Transactions bill twice; a ConditionCheck is billed like a write
                # of the item it checks (an upper bound).
                self.write(body["TableName"], item, factor=2)

    def after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        params = context.get("metered_params", {})
        op = model.name
        consistent = bool(params.get("ConsistentRead"))
        if op == "UpdateItem":
            self.write(params["TableName"], self.stored(params["TableName"], params["Key"]))
        elif op == "GetItem":
            self.units.read([parsed.get("Item", {})], consistent=consistent, per_item=True)
        elif op == "BatchGetItem":
            for table_items in parsed.get("Responses", {}).values():
                self.units.read(table_items, consistent=True, per_item=True)
        elif op == "Query":
            # A COUNT query still reads its index entries: about 100 bytes each here.
            items = parsed.get("Items") or [{"k": {"S": "x" * 100}}] * int(
                parsed.get("ScannedCount", 0)
            )
            self.units.read(items, consistent=consistent, per_item=False)


# ------------------------------------------------------------ the run


@dataclass
class Bill:
    api_requests: int = 0
    invocations: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    sqs_requests: int = 0
    units: Units = field(default_factory=Units)
    log_bytes: int = 0
    traces: int = 0

    def dollars(self, provider_seconds: float) -> dict[str, float]:
        gb_seconds = sum(
            MEMORY_GB[f]
            * (self.seconds[f] + (provider_seconds * n if f == "ProcessProfileFunction" else 0))
            for f, n in self.invocations.items()
        )
        log_bytes = self.log_bytes + PLATFORM_LOG_BYTES * sum(self.invocations.values())
        return {
            "API Gateway": self.api_requests * PRICES["api_gateway_rest_per_million"] / 1e6,
            "Lambda requests": sum(self.invocations.values())
            * PRICES["lambda_per_million_requests"]
            / 1e6,
            "Lambda duration": gb_seconds * PRICES["lambda_per_gb_second"],
            "SQS": self.sqs_requests * PRICES["sqs_per_million_requests"] / 1e6,
            "DynamoDB writes": self.units.wru * PRICES["dynamodb_per_million_wru"] / 1e6,
            "DynamoDB reads": self.units.rru * PRICES["dynamodb_per_million_rru"] / 1e6,
            "CloudWatch Logs": log_bytes / 1e9 * PRICES["cloudwatch_logs_per_gb_ingested"],
            "X-Ray": self.traces * PRICES["xray_per_million_traces"] / 1e6,
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100, help="requests per scenario")
    parser.add_argument("--provider-seconds", type=float, default=3.0)
    args = parser.parse_args()

    with local_stack() as (_emulator, stack, calls):
        meter = Meter(indexes_of(stack.template))
        dynamodb = aws.dynamodb()
        # Reads made to size an item must not count: a client of its own, unhooked.
        raw = client_for(_emulator.url, "dynamodb")
        meter.stored = lambda t, k: raw.get_item(TableName=t, Key=k).get("Item")
        dynamodb.meta.events.register("before-parameter-build.dynamodb.*", meter.before)
        dynamodb.meta.events.register("after-call.dynamodb.*", meter.after)

        bill = Bill()
        functions: dict[str, LocalFunction] = {}

        def timed(function_id: str) -> Any:
            handler = handler_for(function_id, stack.template)

            def run(event: dict[str, Any], context: Any) -> Any:
                start = time.perf_counter()
                try:
                    return handler(event, context)
                finally:
                    bill.invocations[function_id] += 1
                    bill.seconds[function_id] += time.perf_counter() - start
                    bill.traces += 1

            return run

        for function_id in (
            "RequestProfileFunction",
            "ProcessProfileFunction",
            "RetryFailedFunction",
        ):
            functions[function_id] = LocalFunction(function_id, timed(function_id), 180)
        api = LocalApi(stack)
        pollers = [
            s.poller(functions[s.function_id], sqs=aws.sqs(), wait_seconds=0)
            for s in sqs_sources(stack)
        ]

        def request(path: str, method: str = "POST") -> None:
            bill.api_requests += 1
            status, _, _ = api_call(method, path)
            assert status == 200, (status, path)

        def api_call(method: str, path: str) -> tuple[int, Any, Any]:
            # LocalApi imports and calls the handler itself; count it as one invocation.
            start = time.perf_counter()
            try:
                return api.request(method, path)
            finally:
                bill.invocations["RequestProfileFunction"] += 1
                bill.seconds["RequestProfileFunction"] += time.perf_counter() - start
                bill.traces += 1

        def drain_queues() -> None:
            while sum(p.poll_once(wait_seconds=0).received for p in pollers):
                pass

        rows: list[list[Any]] = []
        scenarios: list[tuple[str, Callable[[int], None]]] = [
            (
                "new profile (HIGH), analysed, with its 5 similar profiles crawled at LOW",
                lambda i: (request(f"/api/profile/cost_new_{i}/request"), drain_queues()),
            ),
            (
                "repeat of a processed profile",
                lambda i: request(f"/api/profile/cost_new_{i}/request"),
            ),
            ("status poll", lambda i: request(f"/api/profile/cost_new_{i}/status", "GET")),
            (
                "posts page (20 reels)",
                lambda i: request(f"/api/profile/cost_new_{i}/posts?limit=20", "GET"),
            ),
        ]
        logs = io.StringIO()
        for label, step in scenarios:
            before = (
                Counter(bill.invocations),
                Counter(bill.seconds),
                bill.api_requests,
                calls.of("sqs"),
                meter.units.wru,
                meter.units.rru,
                bill.traces,
            )
            logs.seek(0)
            logs.truncate()
            with redirect_stdout(logs):
                for i in range(args.requests):
                    step(i)
            part = Bill(
                api_requests=bill.api_requests - before[2],
                invocations=bill.invocations - before[0],
                seconds=bill.seconds - before[1],
                sqs_requests=calls.of("sqs") - before[3],
                units=Units(meter.units.wru - before[4], meter.units.rru - before[5]),
                log_bytes=len(logs.getvalue().encode()),
                traces=bill.traces - before[6],
            )
            scale = 1000 / args.requests
            dollars = part.dollars(args.provider_seconds)
            rows.append(
                [
                    label,
                    f"{sum(part.invocations.values()) * scale:,.0f}",
                    f"{part.sqs_requests * scale:,.0f}",
                    f"{part.units.wru * scale:,.0f} / {part.units.rru * scale:,.0f}",
                    f"${sum(dollars.values()) * scale:.3f}",
                    ", ".join(
                        f"{k} {v * scale:.3f}" for k, v in dollars.items() if v * scale >= 0.0005
                    ),
                ]
            )

        # Idle: the schedule and the pollers, nothing else.
        sweeps = SECONDS_PER_MONTH // 60
        sweeper = functions["RetryFailedFunction"]
        before_units = Units(meter.units.wru, meter.units.rru)
        before_seconds = bill.seconds["RetryFailedFunction"]
        before_runs = bill.invocations["RetryFailedFunction"]
        logs.seek(0)
        logs.truncate()
        sample_runs = 20
        with redirect_stdout(logs):
            for _ in range(sample_runs):
                sweeper.invoke(scheduled_event("arn:aws:events:us-east-1:123456789012:rule/cost"))
        runs = bill.invocations["RetryFailedFunction"] - before_runs
        idle = Bill(
            invocations=Counter({"RetryFailedFunction": sweeps}),
            seconds=Counter(
                {
                    "RetryFailedFunction": (bill.seconds["RetryFailedFunction"] - before_seconds)
                    / runs
                    * sweeps
                }
            ),
            sqs_requests=IDLE_POLLERS_PER_QUEUE * len(pollers) * SECONDS_PER_MONTH // 20,
            units=Units(
                (meter.units.wru - before_units.wru) / runs * sweeps,
                (meter.units.rru - before_units.rru) / runs * sweeps,
            ),
            log_bytes=int(len(logs.getvalue().encode()) / runs * sweeps),
            traces=sweeps,
        )
        idle_dollars = idle.dollars(0.0)

    print(
        f"Per 1,000 requests ({args.requests} run per scenario, worker waits {args.provider_seconds:g} s on the provider per profile; us-east-1 list prices 2026-12, no free tier)"
    )
    print(
        table(
            [
                "scenario",
                "Lambda invocations",
                "SQS requests",
                "DynamoDB WRU / RRU",
                "cost",
                "of which (USD)",
            ],
            rows,
        )
    )
    print()
    print("Idle, per month: the sweeper every minute and the queues' pollers")
    print(
        table(
            ["sweeps", "SQS requests (pollers)", "DynamoDB WRU / RRU", "cost", "of which (USD)"],
            [
                [
                    f"{sweeps:,}",
                    f"{idle.sqs_requests:,}",
                    f"{idle.units.wru:,.0f} / {idle.units.rru:,.0f}",
                    f"${sum(idle_dollars.values()):.2f}",
                    ", ".join(f"{k} {v:.3f}" for k, v in idle_dollars.items() if v >= 0.0005),
                ]
            ],
        )
    )
    free = dict(idle_dollars)
    free["Lambda requests"] = free["Lambda duration"] = free["X-Ray"] = 0.0
    free["SQS"] = max(0, idle.sqs_requests - 1_000_000) * PRICES["sqs_per_million_requests"] / 1e6
    print(
        f"With the always-free tier (Lambda 1M requests and 400,000 GB-s, SQS 1M requests, "
        f"X-Ray 100,000 traces a month): ${sum(free.values()):.2f}."
    )
    print(
        "Storage is extra: DynamoDB $0.25 per GB-month, point-in-time recovery $0.20 per GB-month."
    )


if __name__ == "__main__":
    sys.exit(main())
