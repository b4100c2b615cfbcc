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


class ProviderUnauthorized(ProviderError):
    """The provider refused our credentials: an operator problem, retrying cannot help."""

    kind = ErrorKind.PERMANENT
