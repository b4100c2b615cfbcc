"""Shared set-up for the benchmarks: the emulator with the template's resources, the
functions' environment, and counters of AWS calls made through the handlers' clients.

Run benchmarks from the repository root as `make bench` does
(PYTHONPATH=layers/common:. python bench/<name>.py).
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack import dynamodb_local as ddbl
from devstack.emulator import EMULATOR_ENV, Emulator
from devstack.template import Stack, create_stack, load_template
from viralspot import bootstrap
from viralspot.adapters import aws
from viralspot.adapters.codec import serialize

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
    # A position read fans its queries out over threads.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.operations[event_name.split(".", 1)[1]] += 1

    def after(self, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        if parsed:
            consumed = parsed.get("ConsumedCapacity")
            with self._lock:
                self.scanned += int(parsed.get("ScannedCount", 0) or 0)
                for entry in (
                    consumed if isinstance(consumed, list) else [consumed] if consumed else []
                ):
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


READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})
WRITE_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
)

# The request thread a fanned-out call is made for (set inside pool tasks by
# fan_out_attributed; unset on a request's own thread), and each thread's own token:
# not threading.get_ident(), which a thread started after another ended may reuse.
_attribution = threading.local()
_tokens = itertools.count()


def _me() -> int:
    token: int | None = getattr(_attribution, "me", None)
    if token is None:
        token = _attribution.me = next(_tokens)
    return token


def _root() -> int:
    root: int | None = getattr(_attribution, "root", None)
    return root if root is not None else _me()


@contextmanager
def fan_out_attributed(pool: Executor) -> Iterator[None]:
    """Tasks submitted to `pool` count as made for the thread that submitted them, so
    a Probe sees a request's calls run side by side (the shard queries and the counter
    read of one position) as one step of that request, not as requests of their own.
    Wraps the pool instance's submit (Executor.map goes through it) and restores it."""
    original = pool.submit

    def submit(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        root = _root()

        def task() -> Any:
            _attribution.root = root
            try:
                return fn(*args, **kwargs)
            finally:
                _attribution.root = None

        return original(task)

    pool.submit = submit  # type: ignore[method-assign]
    try:
        yield
    finally:
        del pool.submit


@dataclass
class Probe:
    """What requests cost, from the clients they go through: AWS calls, DynamoDB writes,
    round trips, and DynamoDB's own ConsumedCapacity.

    `attach` adds two botocore hooks to a DynamoDB client: before-parameter-build asks
    every operation that accepts it for ReturnConsumedCapacity=INDEXES (table and each
    index apart), after-call adds up the ConsumedCapacity answered (a dict, or a list
    per table). The product's code is untouched; only its requests gain that one
    parameter. Thread-safe: bulk requests and fan-outs call from several threads.

    Round trips are sequential steps: each call a request's thread makes is one, and a
    fan-out (calls run side by side on a pool while the request waits, attributed by
    fan_out_attributed) is one. With several request threads (a bulk request), the
    busiest thread's steps: the critical path.

    Units: `rru` / `wru` as the engine reports them. On DynamoDB Local, `aws_rru` /
    `aws_wru` are what AWS documents for the same work: a transactional write costs 2
    write units per KB on AWS where Local reports 4 per item (so halved, indexes
    included), and a read costs at least its minimum (0.5 unit eventually consistent,
    1 strongly, per key of a BatchGetItem) where Local reports 0 for a read that finds
    nothing. Both also by table and index (`by_target`, `aws_by_target`)."""

    operations: Counter[str] = field(default_factory=Counter)
    writes: int = 0
    # Units by ("table" or "table/index", "R" or "W"): as reported, and as AWS charges.
    by_target: Counter[tuple[str, str]] = field(default_factory=Counter)
    aws_by_target: Counter[tuple[str, str]] = field(default_factory=Counter)
    _own: Counter[int] = field(default_factory=Counter)
    _fan_outs: Counter[int] = field(default_factory=Counter)
    _in_fan_out: dict[int, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Any) -> Probe:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-call.{service}.*", self._call)
        if service == "dynamodb":
            client.meta.events.register("before-parameter-build.dynamodb.*", self._ask)
            client.meta.events.register("after-call.dynamodb.*", self._consumed)
        return self

    # -- hooks ------------------------------------------------------------------

    def _call(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        attributed: int | None = getattr(_attribution, "root", None)
        with self._lock:
            self.operations[f"{service}.{operation}"] += 1
            if service == "dynamodb" and operation in WRITE_OPERATIONS:
                self.writes += 1
            if attributed is None:
                me = _me()
                self._own[me] += 1
                self._in_fan_out[me] = False
            elif not self._in_fan_out.get(attributed):
                self._fan_outs[attributed] += 1
                self._in_fan_out[attributed] = True

    @staticmethod
    def _ask(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if "ReturnConsumedCapacity" not in model.input_shape.members:
            return
        params["ReturnConsumedCapacity"] = "INDEXES"
        # The least AWS charges for this read, per table (see the class docstring), and
        # the table or index it falls on.
        floors: dict[str, float] = {}
        if model.name == "BatchGetItem":
            for table_name, spec in params.get("RequestItems", {}).items():
                unit = 1.0 if spec.get("ConsistentRead") else 0.5
                floors[table_name] = unit * len(spec.get("Keys", []))
        elif model.name in READ_OPERATIONS and "TableName" in params:
            target = params["TableName"]
            if params.get("IndexName"):
                target = f"{target}/{params['IndexName']}"
            floors[target] = 1.0 if params.get("ConsistentRead") else 0.5
        context["capacity_floors"] = floors

    def _consumed(
        self,
        parsed: dict[str, Any] | None = None,
        model: Any = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        consumed = (parsed or {}).get("ConsumedCapacity")
        if not consumed:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        floors: dict[str, float] = (context or {}).get("capacity_floors", {})
        write = model.name in WRITE_OPERATIONS
        kind = "W" if write else "R"
        with self._lock:
            for entry in entries:
                table_name = str(entry.get("TableName", "?"))
                parts = {table_name: float(entry.get("Table", {}).get("CapacityUnits", 0))}
                for group in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                    for index, used in (entry.get(group) or {}).items():
                        parts[f"{table_name}/{index}"] = float(used.get("CapacityUnits", 0))
                if not any(parts.values()):
                    parts[table_name] = float(entry.get("CapacityUnits", 0))
                for target, units in parts.items():
                    if write:
                        charged = units / 2 if model.name == "TransactWriteItems" else units
                    else:
                        charged = max(units, floors.get(target, 0.0))
                    self.by_target[(target, kind)] += units
                    self.aws_by_target[(target, kind)] += charged

    # -- figures ----------------------------------------------------------------

    def _total(self, counts: Counter[tuple[str, str]], kind: str) -> float:
        return sum(units for (_, k), units in counts.items() if k == kind)

    @property
    def rru(self) -> float:
        return self._total(self.by_target, "R")

    @property
    def wru(self) -> float:
        return self._total(self.by_target, "W")

    @property
    def aws_rru(self) -> float:
        return self._total(self.aws_by_target, "R")

    @property
    def aws_wru(self) -> float:
        return self._total(self.aws_by_target, "W")

    # -- figures ----------------------------------------------------------------

    @property
    def calls(self) -> int:
        return sum(self.operations.values())

    def of(self, service: str) -> int:
        return sum(n for op, n in self.operations.items() if op.startswith(f"{service}."))

    @property
    def round_trips(self) -> int:
        roots = set(self._own) | set(self._fan_outs)
        return max((self._own[r] + self._fan_outs[r] for r in roots), default=0)

    def reset(self) -> None:
        with self._lock:
            self.operations.clear()
            self.by_target.clear()
            self.aws_by_target.clear()
            self._own.clear()
            self._fan_outs.clear()
            self._in_fan_out.clear()
            self.writes = 0


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
