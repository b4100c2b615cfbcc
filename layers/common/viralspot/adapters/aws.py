"""boto3 clients, created once per container on first use.

Never at import: the environment (region, `AWS_ENDPOINT_URL` for the local
emulator) must be read when the handler runs, not when a test imports it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from viralspot.errors import StorageError, StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# A request path must answer quickly or say 503: short timeouts, few retries.
_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)

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
        if code in UNAVAILABLE_CODES:
            return StorageUnavailable(f"{what}: {code}")
        return StorageError(f"{what}: {code}")
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return StorageUnavailable(f"{what}: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return StorageUnavailable(f"{what}: {type(exc).__name__}")
    return StorageError(f"{what}: {type(exc).__name__}")
