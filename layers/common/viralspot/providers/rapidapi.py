"""The `rapidapi` adapter: the RapidAPI "Instagram Scraper Stable API".

Every failure leaves this module as a `viralspot.errors.ProviderError` subclass, so
the worker decides between "retry the job later" and "fail it for good" from
`kind` alone. Retries here are deliberately few and short: they only smooth over
blips inside one invocation; anything longer is the job backoff's business.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

import urllib3
from aws_lambda_powertools import Logger

from viralspot.adapters.secrets import provider_key
from viralspot.errors import (
    ProfileNotFound,
    ProviderTransient,
    ProviderUnauthorized,
    ProviderUnavailable,
)
from viralspot.providers import ProviderProfile, ProviderReel

logger = Logger(child=True)

DEFAULT_HOST: Final = "instagram-scraper-stable-api.p.rapidapi.com"

PROFILE_PATH: Final = "/ig_get_fb_profile.php"
REELS_PATH: Final = "/get_ig_user_reels.php"
SIMILAR_PATH: Final = "/get_ig_similar_accounts.php"

# The provider serves at most this many reels per page whatever `amount` says;
# asking for more only makes the page slower.
MAX_PAGE_SIZE: Final = 50

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

_SIMILAR_LIST_KEYS: Final = ("data", "users", "similar_accounts", "accounts")

_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})


class RapidApiProvider:
    """ProfileProvider over the Instagram Scraper Stable API (urllib3, no SDK)."""

    name = "rapidapi"

    def __init__(
        self,
        api_key: str,
        *,
        host: str = DEFAULT_HOST,
        base_url: str | None = None,
        timeout: float = 10.0,
        max_retries: int = 2,
        max_reel_pages: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        max_retry_after: float = 5.0,
        backoff_base: float = 0.5,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if max_retries < 0 or max_reel_pages < 1:
            raise ValueError("max_retries must be >= 0 and max_reel_pages >= 1")
        self._base_url = (base_url or f"https://{host}").rstrip("/")
        self._max_retries = max_retries
        self._max_reel_pages = max_reel_pages
        self._sleep = sleep
        self._max_retry_after = max_retry_after
        self._backoff_base = backoff_base
        # One pool per instance so warm Lambda invocations reuse the TLS connection.
        # urllib3's own retries are off: the loop in `_call` must also see transient
        # failures that arrive as HTTP 200 bodies, and redirects are not expected.
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
        return f"RapidApiProvider(base_url={self._base_url!r})"

    # -- the port -------------------------------------------------------------------

    def fetch_profile(self, username: str) -> ProviderProfile:
        payload = self._call("POST", PROFILE_PATH, {"username_or_url": username}, ("username",))
        if not isinstance(payload, dict) or not _str(payload.get("username")):
            raise ProviderTransient(f"rapidapi: profile answer for {username!r} has no username")
        profile = _profile_from(payload)
        if profile.is_private:
            # Permanent: the reels of a private account cannot be read, whatever we retry.
            raise ProfileNotFound(f"rapidapi: profile {username!r} is private")
        return profile

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        if target <= 0:
            return []
        # A dict keeps first-seen order while deduplicating: providers repeat items
        # across pages, and the first occurrence is the one in feed order.
        reels: dict[str, ProviderReel] = {}
        skipped = 0
        token: str | None = None
        for page in range(self._max_reel_pages):
            fields = {
                "username_or_url": username,
                "amount": str(min(target - len(reels), MAX_PAGE_SIZE)),
            }
            if token:
                fields["pagination_token"] = token
            payload = self._call("POST", REELS_PATH, fields, ("reels",))
            if not isinstance(payload, dict) or "reels" not in payload:
                raise ProviderTransient(
                    f"rapidapi: reels answer for {username!r} (page {page + 1}) has no reel list"
                )
            # `"reels": null` is how an account without reels sometimes looks.
            items = payload["reels"] or []
            if not isinstance(items, list):
                raise ProviderTransient(
                    f"rapidapi: reels answer for {username!r} (page {page + 1}) has no reel list"
                )
            for item in items:
                reel = _reel_from(item)
                if reel is None:
                    skipped += 1
                    continue
                reels.setdefault(reel.shortcode, reel)
                if len(reels) >= target:
                    break
            if len(reels) >= target or not items:
                break
            next_token = payload.get("pagination_token")
            if not isinstance(next_token, str) or not next_token:
                break
            token = next_token
        if skipped:
            # Debug only: a few half-formed items are routine for this provider and
            # not worth failing a profile over.
            logger.debug(
                "rapidapi skipped reels without code or taken_at",
                extra={"username": username, "skipped": skipped},
            )
        return list(reels.values())[:target]

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        if limit <= 0:
            return []
        payload = self._call("GET", SIMILAR_PATH, {"username_or_url": username}, _SIMILAR_LIST_KEYS)
        items = _similar_items(payload)
        if items is None:
            raise ProviderTransient(f"rapidapi: similar answer for {username!r} has no list")
        own = _normalise_username(username)
        seen = {own}
        similar: list[ProviderProfile] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            # Some variants wrap each account as {"user": {...}}.
            wrapped = item.get("user")
            user: dict[str, Any] = wrapped if isinstance(wrapped, dict) else item
            name = _str(user.get("username"))
            key = _normalise_username(name)
            if not key or key in seen:
                continue
            seen.add(key)
            similar.append(_profile_from(user))
            if len(similar) >= limit:
                break
        return similar

    # -- transport ------------------------------------------------------------------

    def _call(
        self, method: str, path: str, fields: Mapping[str, str], data_keys: tuple[str, ...]
    ) -> Any:
        """One logical request with bounded in-invocation retries of transient failures."""
        attempt = 0
        while True:
            try:
                return self._attempt(method, path, fields, data_keys)
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
        url = f"{self._base_url}{path}"
        try:
            if method == "GET":
                response = self._http.request(method, url, fields=dict(fields))
            else:
                response = self._http.request(
                    method, url, fields=dict(fields), encode_multipart=False
                )
        except (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.SSLError,
            ConnectionRefusedError,
        ) as exc:
            # The provider cannot be reached at all: not this profile's fault.
            raise ProviderUnavailable(
                f"rapidapi: {path} unreachable: {type(exc).__name__}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Read timeouts, resets mid-answer: worth a retry.
            raise ProviderTransient(
                f"rapidapi: {path} transport failure: {type(exc).__name__}"
            ) from exc

        status = response.status
        if not 200 <= status < 300:
            _raise_for_status(path, status, response.data, response.headers.get("Retry-After"))

        try:
            payload: Any = json.loads(response.data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProviderTransient(f"rapidapi: {path} returned malformed JSON") from exc

        message = _body_error(payload, data_keys)
        if message is not None:
            _raise_for_message(path, message)
        return payload


# -- classification --------------------------------------------------------------------


def _raise_for_status(
    path: str, status: int, body: bytes, retry_after_header: str | None
) -> NoReturn:
    detail = _body_text(body)
    if status in (401, 403):
        # Nothing a retry can fix: the key is wrong, revoked or unsubscribed.
        logger.error(
            "rapidapi refused our credentials; check the API key parameter and subscription",
            extra={"path": path, "status": status, "detail": detail},
        )
        raise ProviderUnauthorized(f"rapidapi: {path} answered HTTP {status}: {detail}")
    if status == 404:
        raise ProfileNotFound(f"rapidapi: {path} answered HTTP 404: {detail}")
    if status in (502, 503, 504):
        # The provider (or its gateway) says it is down: every profile would fail.
        raise ProviderUnavailable(
            f"rapidapi: {path} answered HTTP {status}: {detail}",
            retry_after=_parse_retry_after(retry_after_header)
            if status in _RETRY_AFTER_STATUSES
            else None,
        )
    if status in (408, 429) or status >= 500:
        retry_after = (
            _parse_retry_after(retry_after_header) if status in _RETRY_AFTER_STATUSES else None
        )
        raise ProviderTransient(
            f"rapidapi: {path} answered HTTP {status}: {detail}", retry_after=retry_after
        )
    if 400 <= status < 500:
        # Only the provider's own "not found" / "private" are permanent (DESIGN.md);
        # any other client error (400, 422, ...) is a bounded transient failure: the
        # job's attempts run out if it persists, and it never fails for good at once
        # on an answer we do not understand.
        raise ProviderTransient(f"rapidapi: {path} answered HTTP {status}: {detail}")
    # 1xx/3xx: redirects are not followed and not expected; assume a misbehaving edge.
    raise ProviderTransient(f"rapidapi: {path} answered unexpected HTTP {status}")


def _raise_for_message(path: str, message: str) -> NoReturn:
    lowered = message.lower()
    if any(marker in lowered for marker in _UNAUTHORIZED_MARKERS):
        logger.error(
            "rapidapi refused our credentials; check the API key parameter and subscription",
            extra={"path": path, "detail": message},
        )
        raise ProviderUnauthorized(f"rapidapi: {path}: {message}")
    if any(marker in lowered for marker in _TRANSIENT_MARKERS):
        raise ProviderTransient(f"rapidapi: {path}: {message}")
    if any(marker in lowered for marker in _NOT_FOUND_MARKERS):
        raise ProfileNotFound(f"rapidapi: {path}: {message}")
    # Unknown complaint with no data: assume the provider is having a bad moment.
    # Failing the profile for good on text we do not understand would be worse
    # than a bounded number of job retries.
    raise ProviderTransient(f"rapidapi: {path}: {message}")


def _body_error(payload: Any, data_keys: tuple[str, ...]) -> str | None:
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
    text = _body_error(payload, ())
    return text if text is not None else json.dumps(payload)[:200]


def _parse_retry_after(value: str | None) -> float | None:
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


# -- mapping ---------------------------------------------------------------------------


def _profile_from(data: Mapping[str, Any]) -> ProviderProfile:
    return ProviderProfile(
        username=_str(data.get("username")),
        full_name=_str(data.get("full_name")),
        biography=_str(data.get("biography")),
        followers_count=_int(data.get("follower_count")),
        following_count=_int(data.get("following_count")),
        posts_count=_int(data.get("media_count")),
        profile_pic_url=_str(data.get("profile_pic_url")) or None,
        is_verified=data.get("is_verified") is True,
        is_private=data.get("is_private") is True,
        is_business=data.get("is_business") is True,
        external_url=_str(data.get("external_url")) or None,
        category=_str(data.get("category")) or None,
    )


def _reel_from(item: Any) -> ProviderReel | None:
    """A reel from one page item, or None when it lacks what a reel needs."""
    if not isinstance(item, dict):
        return None
    node = item.get("node", item)
    media = node.get("media", node) if isinstance(node, dict) else None
    if not isinstance(media, dict):
        return None
    code = _str(media.get("code"))
    taken_at = _epoch(media.get("taken_at"))
    if not code or taken_at is None:
        return None
    views = next(
        (
            media[key]
            for key in ("play_count", "view_count", "ig_play_count")
            if media.get(key) is not None
        ),
        0,
    )
    caption = media.get("caption")
    pk = media.get("pk")
    duration = media.get("video_duration")
    return ProviderReel(
        shortcode=code,
        pk=str(pk) if pk is not None and not isinstance(pk, bool) else None,
        taken_at=taken_at,
        view_count=_int(views),
        like_count=_int(media.get("like_count")),
        comment_count=_int(media.get("comment_count")),
        caption=_str(caption.get("text")) if isinstance(caption, dict) else "",
        video_duration=float(duration)
        if isinstance(duration, int | float) and not isinstance(duration, bool)
        else None,
        thumbnail_url=_thumbnail(media),
        url=f"https://www.instagram.com/reel/{code}/",
    )


def _thumbnail(media: Mapping[str, Any]) -> str | None:
    versions = media.get("image_versions2")
    candidates = versions.get("candidates") if isinstance(versions, dict) else None
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return _str(candidates[0].get("url")) or None
    return None


def _similar_items(payload: Any) -> list[Any] | None:
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        return None
    for key in _SIMILAR_LIST_KEYS:
        value = payload.get(key)
        if isinstance(value, list):
            return value
        # Some variants wrap once more: {"data": {"users": [...]}}.
        if isinstance(value, dict):
            nested = _similar_items(value)
            if nested is not None:
                return nested
    return None


def _normalise_username(name: str) -> str:
    return name.strip().lstrip("@").lower()


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value: Any) -> int:
    """A non-negative count; the provider sends null, floats or strings at times."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int | float):
        return max(int(value), 0)
    if isinstance(value, str):
        try:
            return max(int(float(value)), 0)
        except ValueError:
            return 0
    return 0


def _epoch(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


# -- wiring ----------------------------------------------------------------------------


def rapidapi_from_parameters(
    parameter_name: str, host: str = DEFAULT_HOST, *, base_url: str | None = None
) -> RapidApiProvider:
    """A provider whose key comes from an SSM SecureString.

    Powertools caches the value for 5 minutes, so warm invocations skip SSM while a
    rotated key still reaches running containers soon.
    """
    api_key = provider_key(parameter_name)
    return RapidApiProvider(api_key, host=host, base_url=base_url)
