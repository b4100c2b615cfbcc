"""Shared set-up for the benchmarks: the emulator with the template's resources, the
functions' environment, and counters of AWS calls made through the handlers' clients.

Run benchmarks from the repository root as `make bench` does
(PYTHONPATH=layers/common:. python bench/<name>.py).
"""

from __future__ import annotations

import os
import statistics
import threading
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
from viralspot.adapters.codec import serialize


@dataclass
class Calls:
    """AWS calls by operation, and how many items DynamoDB read to answer them."""

    operations: Counter[str] = field(default_factory=Counter)
    scanned: int = 0

    def before(self, event_name: str, **_: Any) -> None:
        self.operations[event_name.split(".", 1)[1]] += 1

    def after(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        if parsed:
            self.scanned += int(parsed.get("ScannedCount", 0) or 0)

    @property
    def total(self) -> int:
        return sum(self.operations.values())

    def of(self, service: str) -> int:
        return sum(n for op, n in self.operations.items() if op.startswith(f"{service}."))

    def reset(self) -> None:
        self.operations.clear()
        self.scanned = 0


@contextmanager
def local_stack(*, dynamodb_local: bool = False) -> Iterator[tuple[Emulator, Stack, Calls]]:
    """The template's stack on moto; with `dynamodb_local`, DynamoDB on DynamoDB Local
    (AWS's own engine: real ConsumedCapacity, real index behaviour), SQS still on moto.
    The returned emulator's client("dynamodb") reaches whichever engine serves DynamoDB."""
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
        yield emulator, stack, calls


# What one BatchWriteItem / SendMessageBatch call takes at most.
WRITE_BATCH = 25
SEND_BATCH = 10


def put_items(client: Any, table_name: str, items: list[dict[str, Any]]) -> None:
    """Plain items into a table, 25 to a BatchWriteItem, unprocessed ones again."""
    for start in range(0, len(items), WRITE_BATCH):
        request: dict[str, Any] = {
            table_name: [
                {"PutRequest": {"Item": serialize(i)}} for i in items[start : start + WRITE_BATCH]
            ]
        }
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def send_bodies(client: Any, queue_url: str, bodies: list[str]) -> None:
    """Message bodies onto a queue, ten to a SendMessageBatch."""
    for start in range(0, len(bodies), SEND_BATCH):
        entries = [
            {"Id": str(i), "MessageBody": body}
            for i, body in enumerate(bodies[start : start + SEND_BATCH])
        ]
        failed = client.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed")
        if failed:
            raise RuntimeError(f"seeding {queue_url}: {failed}")


@dataclass
class Capacity:
    """DynamoDB's own ConsumedCapacity for every call of a client: a
    before-parameter-build hook asks for it (ReturnConsumedCapacity=TOTAL), an
    after-call hook adds it up, as read or write units by operation. Real figures on
    DynamoDB Local; moto does not report them."""

    read: float = 0.0
    write: float = 0.0
    reported: int = 0

    READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
    WRITES = frozenset(
        {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
    )

    def install(self, client: Any) -> Capacity:
        client.meta.events.register("before-parameter-build.dynamodb.*", self._ask)
        client.meta.events.register("after-call.dynamodb.*", self._add)
        return self

    def _ask(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in self.READS | self.WRITES:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _add(self, parsed: dict[str, Any] | None = None, model: Any = None, **_: Any) -> None:
        consumed = (parsed or {}).get("ConsumedCapacity")
        if not consumed or model is None:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        units = sum(float(e.get("CapacityUnits", 0) or 0) for e in entries)
        self.reported += 1
        if model.name in self.WRITES:
            self.write += units
        else:
            self.read += units

    def reset(self) -> None:
        self.read = self.write = 0.0
        self.reported = 0


class CallTimes:
    """Wall time spent inside AWS calls, per service: how much of a step the engine
    (DynamoDB Local, moto's SQS) took, and how much the code around it."""

    def __init__(self) -> None:
        self.ms: Counter[str] = Counter()
        self._started = threading.local()

    def install(self, client: Any) -> CallTimes:
        client.meta.events.register("before-call.*.*", self._before)
        client.meta.events.register("after-call.*.*", self._after)
        return self

    def _before(self, event_name: str, **_: Any) -> None:
        self._started.at = time.perf_counter()

    def _after(self, event_name: str, **_: Any) -> None:
        started = getattr(self._started, "at", None)
        if started is not None:
            self.ms[event_name.split(".")[1]] += (time.perf_counter() - started) * 1000

    def reset(self) -> None:
        self.ms.clear()


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
