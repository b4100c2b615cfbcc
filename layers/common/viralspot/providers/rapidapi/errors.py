"""What the provider's answers mean, as `viralspot.errors` (pure: no I/O, no logging).

Only the provider's own "not found" / "private" are permanent (DESIGN.md "Failure");
a refused key and a provider that is down are systemic (the job pauses); anything
else, including answers we do not understand, is a bounded transient failure.
"""

from __future__ import annotations

import json
from typing import Any, Final

from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, SSLError

from viralspot.errors import (
    ProfileNotFound,
    ProviderError,
    ProviderTransient,
    ProviderUnauthorized,
    ProviderUnavailable,
)

# The provider reports failures inside HTTP 200 bodies as free text, so the text
# is all there is to classify on. Checked in this order: an auth complaint must
# not be mistaken for "invalid username", nor a rate limit for "not found".
_UNAUTHORIZED_MARKERS: Final = (
    "invalid api key",
    "not subscribed",
    "unauthorized",
    "forbidden",
)
_TRANSIENT_MARKERS: Final = (
    "try again",
    "rate limit",
    "too many requests",
    "429",
    "timeout",
    "timed out",
    "temporarily",
)
_NOT_FOUND_MARKERS: Final = (
    "does not exist",
    "doesn't exist",
    "not found",
    "no user",
    "user not found",
    "invalid username",
    "invalid user",
    "not a valid",
)

# The statuses whose Retry-After header means "when to ask again" (RFC 9110).
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


def for_status(path: str, status: int, body: bytes, retry_after: float | None) -> ProviderError:
    """The error a non-2xx answer means. `retry_after`: the parsed header, if any."""
    detail = _body_text(body)
    wait = retry_after if status in RETRY_AFTER_STATUSES else None
    if status in (401, 403):
        # Nothing a retry can fix: the key is wrong, revoked or unsubscribed.
        return ProviderUnauthorized(f"rapidapi: {path} answered HTTP {status}: {detail}")
    if status == 404:
        return ProfileNotFound(f"rapidapi: {path} answered HTTP 404: {detail}")
    if status in (502, 503, 504):
        # The provider (or its gateway) says it is down: every profile would fail.
        return ProviderUnavailable(
            f"rapidapi: {path} answered HTTP {status}: {detail}", retry_after=wait
        )
    if status in (408, 429) or status >= 500:
        return ProviderTransient(
            f"rapidapi: {path} answered HTTP {status}: {detail}", retry_after=wait
        )
    if 400 <= status < 500:
        # Any other client error (400, 422, ...) costs an attempt, never the job at
        # once on an answer we do not understand; attempts run out if it persists.
        return ProviderTransient(f"rapidapi: {path} answered HTTP {status}: {detail}")
    # 1xx/3xx: redirects are not followed and not expected; assume a misbehaving edge.
    return ProviderTransient(f"rapidapi: {path} answered unexpected HTTP {status}")


def for_complaint(path: str, message: str) -> ProviderError:
    """The error a complaint inside an HTTP 200 answer (see `complaint`) means."""
    lowered = message.lower()
    if any(marker in lowered for marker in _UNAUTHORIZED_MARKERS):
        return ProviderUnauthorized(f"rapidapi: {path}: {message}")
    if any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return ProviderTransient(f"rapidapi: {path}: {message}")
    if any(marker in lowered for marker in _NOT_FOUND_MARKERS):
        return ProfileNotFound(f"rapidapi: {path}: {message}")
    # Unknown complaint with no data: assume the provider is having a bad moment.
    # Failing the profile for good on text we do not understand would be worse
    # than a bounded number of job retries.
    return ProviderTransient(f"rapidapi: {path}: {message}")


def for_transport(path: str, exc: BaseException) -> ProviderError:
    """The error a failed exchange (no HTTP answer at all) means."""
    if isinstance(
        exc, NewConnectionError | ConnectTimeoutError | SSLError | ConnectionRefusedError
    ):
        # The provider cannot be reached at all: not this profile's fault.
        return ProviderUnavailable(f"rapidapi: {path} unreachable: {type(exc).__name__}")
    # Read timeouts, resets mid-answer: worth a retry.
    return ProviderTransient(f"rapidapi: {path} transport failure: {type(exc).__name__}")


def complaint(payload: Any, data_keys: tuple[str, ...]) -> str | None:
    """The error text of an HTTP 200 answer that carries an error instead of data."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("error")
    if isinstance(error, str) and error.strip():
        return error.strip()
    has_data = any(key in payload for key in data_keys)
    # A bare `message` next to real data is chatter ("ok"), not a failure.
    message = payload.get("message")
    if not has_data and isinstance(message, str) and message.strip():
        return message.strip()
    if error is True and not has_data:
        return "error without message"
    return None


def _body_text(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")
    text = complaint(payload, ())
    return text if text is not None else json.dumps(payload)[:200]
