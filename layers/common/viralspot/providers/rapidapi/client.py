"""Transport to the RapidAPI host: one urllib3 pool, bounded retries, Retry-After.

Retries here are deliberately few and short: they only smooth over blips inside one
invocation; anything longer is the job backoff's business.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from aws_lambda_powertools import Logger

from viralspot.errors import ProviderTransient, ProviderUnauthorized, ProviderUnavailable
from viralspot.providers.rapidapi import errors

logger = Logger(child=True)


class RapidApiClient:
    """One logical call = a few attempts; every failure leaves as a `ProviderError`."""

    def __init__(
        self,
        api_key: str,
        *,
        host: str,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 5.0,
        backoff_base: float = 0.5,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = (base_url or f"https://{host}").rstrip("/")
        self._max_retries = max_retries
        self._sleep = sleep
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        # The pool lives as long as the client, and the client as long as its
        # provider: one per key per container (`rapidapi_from_parameters`), so warm
        # invocations reuse the TLS connection. urllib3's own retries are off: the
        # loop in `call` must also see transient failures that arrive as HTTP 200
        # bodies, and redirects are not expected.
        self._http = urllib3.PoolManager(
            headers={
                "x-rapidapi-key": api_key,
                "x-rapidapi-host": host,
                "accept": "application/json",
            },
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )

    def __repr__(self) -> str:
        # Spelled out so that nothing ever prints the pool headers (the key).
        return f"RapidApiClient(base_url={self.base_url!r})"

    def call(
        self, method: str, path: str, fields: Mapping[str, str], data_keys: tuple[str, ...]
    ) -> Any:
        """The decoded JSON answer. `data_keys`: keys whose presence in a 200 answer
        means data, so that a `message` beside them is not taken for a complaint."""
        attempt = 0
        while True:
            try:
                return self._attempt(method, path, fields, data_keys)
            except ProviderUnauthorized as exc:
                # Not retried (nothing a retry can fix), and the operator's to fix:
                # said here, where the provider's own words are still at hand.
                logger.error(
                    "rapidapi refused our credentials; check the API key parameter and subscription",
                    extra={"path": path, "error": str(exc)},
                )
                raise
            except (ProviderTransient, ProviderUnavailable) as exc:
                if attempt >= self._max_retries:
                    raise
                wait = exc.retry_after
                if wait is None:
                    wait = self._backoff_base * (2**attempt)
                elif wait > self._max_retry_after:
                    # Holding a Lambda (and its concurrency slot) idle for a long
                    # Retry-After is waste; the job's own backoff can wait for free.
                    raise
                logger.debug(
                    "rapidapi transient failure, retrying",
                    extra={"path": path, "attempt": attempt + 1, "wait": wait, "error": str(exc)},
                )
                self._sleep(wait)
                attempt += 1

    def _attempt(
        self, method: str, path: str, fields: Mapping[str, str], data_keys: tuple[str, ...]
    ) -> Any:
        url = f"{self.base_url}{path}"
        try:
            if method == "GET":
                response = self._http.request(method, url, fields=dict(fields))
            else:
                # Form-encoded, as the provider expects, not multipart.
                response = self._http.request(
                    method, url, fields=dict(fields), encode_multipart=False
                )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.for_transport(path, exc) from exc

        if not 200 <= response.status < 300:
            raise errors.for_status(
                path,
                response.status,
                response.data,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        try:
            payload: Any = json.loads(response.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProviderTransient(f"rapidapi: {path} returned malformed JSON") from exc
        message = errors.complaint(payload, data_keys)
        if message is not None:
            raise errors.for_complaint(path, message)
        return payload


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "nan" and "inf" parse as floats but are no sane wait (sleep(nan) raises).
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)
