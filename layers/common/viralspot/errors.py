"""Domain errors. Adapters translate AWS and provider failures into these, so the
service layer and the HTTP mapping never see botocore or urllib3 types."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class ViralSpotError(Exception):
    """Base of every error the domain raises on purpose."""


class InvalidInput(ViralSpotError):
    """The caller sent something that can never succeed (HTTP 400)."""


class PayloadTooLarge(InvalidInput):
    """The request body is over the API's size limit (HTTP 413)."""


class UnsupportedMediaType(InvalidInput):
    """The request body is not JSON (HTTP 415)."""


class Forbidden(ViralSpotError):
    """The caller asked for something only the admin key may ask for (HTTP 403)."""


class MethodNotAllowed(ViralSpotError):
    """The path exists but not with this method (HTTP 405, with Allow)."""

    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(f"{method} is not allowed here; use {', '.join(allowed)}")
        self.allowed = allowed


class SecretUnavailable(ViralSpotError):
    """A key the API needs (admin key, cursor key) could not be read (HTTP 503)."""


class NotFound(ViralSpotError):
    """The thing asked for does not exist (HTTP 404)."""


class StorageError(ViralSpotError):
    """DynamoDB rejected a call for a reason retrying will not fix (HTTP 500)."""


class StorageUnavailable(StorageError):
    """DynamoDB could not be reached or throttled the call (HTTP 503): nothing was stored."""


class StorageBusy(StorageUnavailable):
    """Writes to one item kept colliding with transactions past the retry budget: the
    caller answers 503 (API) or leaves the message for SQS to redeliver (worker);
    never a failed attempt."""


class QueueUnavailable(ViralSpotError):
    """SQS could not be read or written for a queue operation (HTTP 503)."""


class DispatchFailed(ViralSpotError):
    """The SQS send failed; the job is stored and the sweeper will dispatch it."""


class ProviderError(ViralSpotError):
    """The Instagram data provider failed. `kind` decides whether a retry can help."""

    kind: ErrorKind = ErrorKind.TRANSIENT

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderTransient(ProviderError):
    """Rate limit, 5xx, timeout, malformed answer: worth retrying later."""

    kind = ErrorKind.TRANSIENT


class ProfileNotFound(ProviderError):
    """The account does not exist, is private, or the name is not an Instagram name."""

    kind = ErrorKind.PERMANENT


class ProviderSystemic(ProviderError):
    """A fault that is not the job's (DESIGN.md "Systemic faults pause"): the job is
    given back without charging an attempt and completes once the cause is fixed."""

    kind = ErrorKind.TRANSIENT
    # What a person polling the status is told the job waits for.
    waiting_for = "the data provider to be reachable"


class ProviderUnauthorized(ProviderSystemic):
    """Our provider key is missing, unreadable or refused (401/403): the operator's to
    fix; no job fails because of it."""

    waiting_for = "the data provider to accept our key (the operator has been alerted)"


class ProviderUnavailable(ProviderSystemic):
    """The provider cannot be reached at all, or says it is down (502/503/504)."""

    waiting_for = "the data provider, which is down, to come back"
