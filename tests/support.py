"""Small helpers shared by the tests (unit and emulator) and the benchmarks: one
step clock, one call counter, one queue drain, one client of the request routes."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from devstack.emulator import Emulator
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.events import sqs_event

# Where an in-memory test's clock starts: a fixed moment, so its figures repeat.
FIXED_START = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


class StepClock:
    """An injectable clock the test moves by hand (no sleeps), safe to read from
    threads. It starts now by default, in whole seconds, since storage keeps
    milliseconds and a test compares what it stored."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start if start is not None else datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("the domain works in aware UTC datetimes")
        self._now = start
        self._lock = threading.Lock()

    @property
    def now(self) -> datetime:
        with self._lock:
            return self._now

    @now.setter
    def now(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now

    def set(self, moment: datetime) -> None:
        self.now = moment


class CallCounter:
    """The AWS calls made through a client, in order, as "service.Operation": its
    botocore before-call hook (`client.meta.events.register("before-call.*.*", counter)`)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **_: Any) -> None:
        # event_name: "before-call.<service>.<Operation>"; a fan-out calls from threads.
        with self._lock:
            self.calls.append(event_name.split(".", 1)[1])

    def of(self, service: str) -> int:
        return sum(1 for call in self.calls if call.startswith(f"{service}."))

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


def drain(sqs: Emulator | Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message waiting on the queue, received and deleted; `sqs` is an SQS
    client, or the emulator to make one of."""
    if isinstance(sqs, Emulator):
        sqs = sqs.client("sqs")
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return got
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        got.extend(batch)


def run_worker(stack: Stack, messages: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """The worker's handler on `messages` as `queue`'s event source mapping delivers them."""
    handler = handler_for("ProcessProfileFunction", stack.template)
    result: dict[str, Any] = handler(
        sqs_event(messages, stack.arns[queue]), LocalContext(function_name="ProcessProfileFunction")
    )
    return result


def dynamodb_error(code: str, status: int = 400, **extra: Any) -> Callable[..., Any]:
    """A before-call hook answering like DynamoDB would with error `code`: botocore
    then raises the ClientError itself, through the adapter's real call."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        return AWSResponse("http://dynamodb.invalid", status, HTTPHeaders(), None), {
            "Error": {"Code": code, "Message": f"injected {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
            **extra,
        }

    return answer


class ConflictInjector:
    """Real DynamoDB refuses a write to an item while a transaction on it is in flight
    (TransactionConflictException) and cancels colliding transactions (reason
    TransactionConflict); moto never does. Registered on a client's
    `before-call.dynamodb.*`, this answers the first try of every write that way and
    lets the retry through: every write the code makes meets one conflict."""

    WRITES = frozenset(
        {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._let_through: set[str] = set()
        self.injected: Counter[str] = Counter()
        self._plain = dynamodb_error("TransactionConflictException")
        self._cancelled = dynamodb_error(
            "TransactionCanceledException",
            CancellationReasons=[{"Code": "TransactionConflict", "Message": "injected"}],
        )

    def __call__(self, event_name: str, **kwargs: Any) -> Any:
        operation = event_name.rsplit(".", 1)[1]
        if operation not in self.WRITES:
            return None
        with self._lock:
            if operation in self._let_through:
                self._let_through.discard(operation)
                return None
            self._let_through.add(operation)
            self.injected[operation] += 1
        if operation == "TransactWriteItems":
            return self._cancelled(**kwargs)
        return self._plain(**kwargs)


def raw_request(
    template: dict[str, Any],
    method: str,
    url: str,
    *,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request to the API exactly as a client sent it, through the gateway
    (devstack.gateway), the body and headers untouched (LocalApi.request sends JSON)."""
    return LocalApi(template).send(method, url, body=body, headers=headers)


def process(template: dict[str, Any], emulator: Emulator, queue_url: str, queue_arn: str) -> int:
    """Run the real worker on every message waiting on a queue; how many it processed."""
    handler = handler_for("ProcessProfileFunction", template)
    messages = drain(emulator, queue_url)
    if messages:
        result = handler(sqs_event(messages, queue_arn), LocalContext())
        assert result == {"batchItemFailures": []}, result
    return len(messages)


class RefusingBatches:
    """SQS refuses some entries of a SendMessageBatch (as it does under throttling or
    an internal error: the call succeeds, the entry is listed as Failed). Registered
    on a client's `before-call.sqs.SendMessageBatch`, this sends the entries `accept`
    allows through `raw` (an unhooked client of the same SQS) and answers for the
    others with a Failed entry, so the code under test sees a real partial answer."""

    def __init__(self, raw: Any, accept: Callable[[dict[str, Any]], bool]) -> None:
        self._raw = raw
        self._accept = accept
        self.refused: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        # before-call sees the serialised request: SQS speaks JSON with the API's names.
        body = json.loads(params["body"])
        entries = body["Entries"]
        accepted = [e for e in entries if self._accept(e)]
        refused = [e for e in entries if not self._accept(e)]
        self.refused.extend(refused)
        successful: list[dict[str, Any]] = []
        if accepted:
            successful = self._raw.send_message_batch(QueueUrl=body["QueueUrl"], Entries=accepted)[
                "Successful"
            ]
        failed = [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected"}
            for e in refused
        ]
        return AWSResponse("http://sqs.invalid", 200, HTTPHeaders(), None), {
            "Successful": successful,
            "Failed": failed,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }


def ask(api: LocalApi, username: str, source: str = "frontend") -> dict[str, Any]:
    """POST the request route as a client would; the answer's `data`, which must be a 200."""
    code, _, body = api.request("POST", f"/api/profile/{username}/request?source={source}")
    assert code == 200, body
    data: dict[str, Any] = body["data"]
    return data


def status_of(api: LocalApi, username: str) -> dict[str, Any]:
    """The status route's `data` for `username`, which must be a 200."""
    code, _, body = api.request("GET", f"/api/profile/{username}/status")
    assert code == 200, body
    data: dict[str, Any] = body["data"]
    return data
