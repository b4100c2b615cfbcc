"""boto3 clients, created once per container on first use.

Never at import: the environment (region, `AWS_ENDPOINT_URL` for the local
emulator) must be read when the handler runs, not when a test imports it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from viralspot.errors import StorageBusy, StorageError, StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# A request path must answer quickly or say 503: short timeouts, few retries. The
# worst case of one call (3 attempts x (1 s connect + 3 s read) + backoff) stays well
# inside the API function's 10 s timeout, so a DynamoDB brownout is answered 503 with
# Retry-After by the function, never a 502 by the gateway.
_CONFIG = Config(
    connect_timeout=1,
    read_timeout=3,
    retries={"mode": "standard", "max_attempts": 3},
)

T = TypeVar("T")

# Jitter from the OS at each call: containers restored from one SnapStart snapshot
# share the `random` module's state, and identical jitter is no jitter.
_ENTROPY = random.SystemRandom()

_lock = threading.Lock()
_clients: dict[str, Any] = {}

# Codes that mean "try again later", as opposed to a bug or a misconfiguration.
UNAVAILABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "InternalFailure",
        "RequestThrottled",
    }
)


# Cancellation reasons of a transaction that mean the same: DynamoDB was too busy.
UNAVAILABLE_CANCELLATIONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


# How long one write keeps retrying transaction conflicts before it gives up.
CONFLICT_BUDGET_SECONDS = 2.0


def is_conflict(exc: ClientError) -> bool:
    """DynamoDB refused the write because a transaction on the item was in flight:
    a plain write gets TransactionConflictException, a transaction is cancelled with
    the reason TransactionConflict. Neither is retried by botocore."""
    code = error_code(exc)
    if code == "TransactionConflictException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(reason.get("Code") == "TransactionConflict" for reason in reasons)
    return False


def retry_conflicts(
    call: Callable[[], T],
    what: str,
    *,
    budget_seconds: float = CONFLICT_BUDGET_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, again after a jittered pause whenever it hits a transaction conflict
    (DESIGN.md "Conflicts are weather"), until `budget_seconds` are spent; then
    StorageBusy. Every other error goes to the caller untouched."""
    deadline = time.monotonic() + budget_seconds
    pause = 0.01
    while True:
        try:
            return call()
        except ClientError as exc:
            if not is_conflict(exc):
                raise
            wait = _ENTROPY.uniform(pause / 2, pause)
            if time.monotonic() + wait > deadline:
                raise StorageBusy(f"{what}: transaction conflicts for {budget_seconds}s") from exc
            sleep(wait)
            pause = min(pause * 2, 0.25)


def _client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            _clients[service] = boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
        return _clients[service]


def dynamodb() -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb")
    return client


def sqs() -> SQSClient:
    client: SQSClient = _client("sqs")
    return client


def reset_clients() -> None:
    """Forget every client (tests switch endpoints and credentials between cases)."""
    with _lock:
        _clients.clear()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def storage_error(exc: Exception, what: str) -> StorageError:
    """Translate a botocore failure on a DynamoDB call into a domain error."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if is_conflict(exc):
            return StorageBusy(f"{what}: {code}")
        if code in UNAVAILABLE_CODES:
            return StorageUnavailable(f"{what}: {code}")
        return StorageError(f"{what}: {code}")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return StorageUnavailable(f"{what}: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{what}: {type(exc).__name__}")
    return StorageError(f"{what}: {type(exc).__name__}")
