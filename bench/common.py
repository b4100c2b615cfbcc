"""Shared set-up for the benchmarks: the local stack (devstack.harness: the emulator,
the template's resources, the functions' environment), a probe of the AWS calls made
through the handlers' clients, and the figures' helpers.

Run benchmarks from the repository root as `make bench` does
(PYTHONPATH=layers/common:. python bench/<name>.py).
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

from devstack import harness
from devstack.emulator import Emulator
from devstack.template import Stack
from tests.support import CallCounter
from viralspot.adapters import aws
from viralspot.adapters.codec import serialize


@contextmanager
def local_stack(
    *, dynamodb_local: bool = False, capacity: bool = False
) -> Iterator[tuple[Emulator, Stack, Probe]]:
    """The template's stack on moto (devstack.harness, as the tests and `make run`),
    and a Probe on the handlers' DynamoDB and SQS clients. With `dynamodb_local`,
    DynamoDB on DynamoDB Local (AWS's own engine: real ConsumedCapacity, real index
    behaviour), SQS still on moto; the emulator's client("dynamodb") reaches whichever
    engine serves DynamoDB. With `capacity`, the handlers' DynamoDB calls ask for their
    ConsumedCapacity (Probe.consumed; by table and index, Probe.rru and Probe.wru)."""
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"}
    with harness.local_stack(dynamodb_local=dynamodb_local, environment=quiet) as up:
        probe = Probe()
        probe.attach(aws.dynamodb(), capacity=capacity)
        probe.attach(aws.sqs())
        yield up.emulator, up.stack, probe


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


class Probe(CallCounter):
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

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        # Items DynamoDB read to answer (ScannedCount), whatever it returned.
        self.scanned = 0
        # The engine's own total per call (CapacityUnits, as TOTAL would report it):
        # moto's table/index split counts an index read twice, its total does not.
        self.consumed = 0.0
        # Units by ("table" or "table/index", "R" or "W"): as reported, and as AWS charges.
        self.by_target: Counter[tuple[str, str]] = Counter()
        self.aws_by_target: Counter[tuple[str, str]] = Counter()
        self._own: Counter[int] = Counter()
        self._fan_outs: Counter[int] = Counter()
        self._in_fan_out: dict[int, bool] = {}

    def attach(self, client: Any, *, capacity: bool = True) -> Probe:
        """Count `client`'s calls; on DynamoDB, items read and (with `capacity`) the
        capacity units each call reports."""
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-call.{service}.*", self._call)
        if service == "dynamodb":
            if capacity:
                client.meta.events.register("before-parameter-build.dynamodb.*", self._ask)
            client.meta.events.register("after-call.dynamodb.*", self._consumed)
        return self

    @property
    def operations(self) -> Counter[str]:
        with self._lock:
            return Counter(self.calls)

    # -- hooks ------------------------------------------------------------------

    def _call(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        attributed: int | None = getattr(_attribution, "root", None)
        with self._lock:
            self.calls.append(f"{service}.{operation}")
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
        with self._lock:
            self.scanned += int((parsed or {}).get("ScannedCount", 0) or 0)
        consumed = (parsed or {}).get("ConsumedCapacity")
        if not consumed:
            return
        entries = consumed if isinstance(consumed, list) else [consumed]
        floors: dict[str, float] = (context or {}).get("capacity_floors", {})
        write = model.name in WRITE_OPERATIONS
        kind = "W" if write else "R"
        with self._lock:
            for entry in entries:
                self.consumed += float(entry.get("CapacityUnits", 0) or 0)
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
    def round_trips(self) -> int:
        roots = set(self._own) | set(self._fan_outs)
        return max((self._own[r] + self._fan_outs[r] for r in roots), default=0)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.scanned = 0
            self.consumed = 0.0
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


def percentile(samples: Iterable[float], q: float) -> float:
    """The q-quantile (0 < q < 1, in hundredths) of `samples`, interpolated between
    the nearest ranks (statistics' inclusive method); 0 for no samples."""
    data = list(samples)
    if len(data) < 2:
        return data[0] if data else 0.0
    return statistics.quantiles(data, n=100, method="inclusive")[round(q * 100) - 1]


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
