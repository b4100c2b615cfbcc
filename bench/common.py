"""Shared set-up for the benchmarks: the emulator with the template's resources, the
functions' environment, and counters of AWS calls made through the handlers' clients.

Run benchmarks from the repository root as `make bench` does
(PYTHONPATH=layers/common:. python bench/<name>.py).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack import dynamodb_local as ddbl
from devstack.emulator import EMULATOR_ENV, Emulator
from devstack.template import Stack, create_stack, load_template
from viralspot import bootstrap
from viralspot.adapters import aws

# DynamoDB operations that can report the capacity they consumed.
_CAPACITY_OPERATIONS = (
    "Query",
    "Scan",
    "GetItem",
    "BatchGetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
)


@dataclass
class Calls:
    """AWS calls by operation, how many items DynamoDB read to answer them, and (when
    asked for with `local_stack(capacity=True)`) the capacity units DynamoDB reports."""

    operations: Counter[str] = field(default_factory=Counter)
    scanned: int = 0
    capacity: float = 0.0

    def before(self, event_name: str, **_: Any) -> None:
        self.operations[event_name.split(".", 1)[1]] += 1

    def after(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        if parsed:
            self.scanned += int(parsed.get("ScannedCount", 0) or 0)
            consumed = parsed.get("ConsumedCapacity")
            for entry in consumed if isinstance(consumed, list) else [consumed] if consumed else []:
                self.capacity += float(entry.get("CapacityUnits", 0) or 0)

    @staticmethod
    def ask_capacity(params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    @property
    def total(self) -> int:
        return sum(self.operations.values())

    def of(self, service: str) -> int:
        return sum(n for op, n in self.operations.items() if op.startswith(f"{service}."))

    def reset(self) -> None:
        self.operations.clear()
        self.scanned = 0
        self.capacity = 0.0


@contextmanager
def local_stack(
    *, dynamodb_local: bool = False, capacity: bool = False
) -> Iterator[tuple[Emulator, Stack, Calls]]:
    """The template's stack on moto; with `dynamodb_local`, DynamoDB on DynamoDB Local
    (AWS's own engine: real ConsumedCapacity, real index behaviour), SQS still on moto.
    The returned emulator's client("dynamodb") reaches whichever engine serves DynamoDB.
    With `capacity`, the handlers' DynamoDB calls ask for ReturnConsumedCapacity=TOTAL."""
    with ExitStack() as cleanup:
        emulator = Emulator().start()
        cleanup.callback(emulator.stop)
        if dynamodb_local:
            local = cleanup.enter_context(ddbl.running())
            emulator = emulator.with_dynamodb_at(local.url)
        template = load_template()
        stack = create_stack(emulator.client("dynamodb"), emulator.client("sqs"), template=template)
        os.environ.update(EMULATOR_ENV)
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        os.environ.update(emulator.endpoint_environment())
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["LOG_LEVEL"] = "WARNING"
        for function_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::Serverless::Function":
                os.environ.update(stack.function_environment(function_id))
        aws.reset_clients()
        bootstrap.reset()
        calls = Calls()
        for client in (aws.dynamodb(), aws.sqs()):
            client.meta.events.register("before-call.*.*", calls.before)
            client.meta.events.register("after-call.*.*", calls.after)
        if capacity:
            for operation in _CAPACITY_OPERATIONS:
                aws.dynamodb().meta.events.register(
                    f"provide-client-params.dynamodb.{operation}", calls.ask_capacity
                )
        yield emulator, stack, calls


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and p95 wall time of `fn`, in milliseconds."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    return statistics.median(samples), p95


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
