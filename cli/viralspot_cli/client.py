"""A thin typed client of the ViralSpot HTTP API.

Every route answers an envelope, `{"success": true, "data": ...}` or
`{"success": false, "detail": "..."}`; this module unwraps `data` or raises.
API Gateway's own answers (403 for a missing key or an unknown path, 429, 502)
carry an `x-amzn-ErrorType` header (and `{"message": ...}` on a stack whose
template does not shape them into the envelope), and are raised the same way.

It speaks HTTP only, never imports the server's package, so the same CLI works
against `make run` and a deployed stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, NotRequired, TypedDict, cast
from urllib.parse import quote, urlsplit

import httpx

API_KEY_HEADER = "x-api-key"
DEFAULT_API = "http://127.0.0.1:3000"
MAX_BULK = 50  # what POST /api/profile/bulk-request accepts per call

# ------------------------------------------------------------------ answers
# The shapes of `data`, as the API documents them. Fields that do not apply are
# absent from the JSON, hence NotRequired rather than None.


class IntakeAnswer(TypedDict):
    queued: bool
    message: str
    estimated_time: str
    profile_type: str
    status: str
    priority: NotRequired[str]
    request_id: NotRequired[str]
    queue_position: NotRequired[int]
    next_check_recommended: NotRequired[str]
    created_at: NotRequired[str]
    skip_reason: NotRequired[str]
    fallback_mode: NotRequired[bool]
    upgraded: NotRequired[bool]
    next_retry_at: NotRequired[str]


class StatusAnswer(TypedDict):
    username: str
    completed: bool
    status: str
    message: str
    priority: NotRequired[str]
    queue_position: NotRequired[int]
    estimated_time: NotRequired[str]
    attempts: NotRequired[int]
    last_attempt: NotRequired[str]
    request_id: NotRequired[str]
    error_message: NotRequired[str]
    error_kind: NotRequired[str]
    previous_error: NotRequired[str]
    delay_reason: NotRequired[str]
    next_retry_at: NotRequired[str]
    completed_at: NotRequired[str]
    analysis: NotRequired[str]


class Profile(TypedDict):
    username: str
    tier: str
    full_name: NotRequired[str]
    followers_count: NotRequired[int]
    following_count: NotRequired[int]
    posts_count: NotRequired[int]
    is_verified: NotRequired[bool]
    category: NotRequired[str]
    content_stats: NotRequired[dict[str, Any]]
    engagement_metrics: NotRequired[dict[str, Any]]
    similar_usernames: NotRequired[list[str]]
    last_scraped_at: NotRequired[str]


class Post(TypedDict):
    shortcode: str
    url: str
    taken_at: str
    view_count: NotRequired[int]
    like_count: NotRequired[int]
    comment_count: NotRequired[int]
    outlier_score: NotRequired[float]
    engagement_rate: NotRequired[float]
    caption: NotRequired[str]


class PostsPage(TypedDict):
    username: str
    sort: str
    posts: list[Post]
    count: int
    next_cursor: NotRequired[str]


class FeedReel(TypedDict):
    username: str
    shortcode: str
    url: str
    outlier_score: float
    taken_at: str
    view_count: NotRequired[int]
    like_count: NotRequired[int]
    comment_count: NotRequired[int]
    caption: NotRequired[str]
    thumbnail_url: NotRequired[str]
    followers_count: NotRequired[int]
    category: NotRequired[str]
    crawl_depth: NotRequired[bool]


class FeedPage(TypedDict):
    reels: list[FeedReel]
    count: int
    since: str
    next_cursor: NotRequired[str]


class SimilarProfile(TypedDict):
    username: str
    tier: str
    analysed: bool
    full_name: NotRequired[str]
    followers_count: NotRequired[int]
    is_verified: NotRequired[bool]


class SimilarProfiles(TypedDict):
    username: str
    similar: list[SimilarProfile]
    count: int


class QueueDepth(TypedDict):
    visible: int
    in_flight: int
    delayed: int


class QueueStatus(TypedDict):
    jobs: dict[str, dict[str, int]]
    totals: dict[str, int]
    queues: dict[str, QueueDepth]
    dead_letters: int
    note: NotRequired[str]


class BulkItem(TypedDict):
    username: str
    success: bool
    data: NotRequired[IntakeAnswer]
    error: NotRequired[str]
    # Why it was not queued: invalid_username, storage_busy, storage_unavailable,
    # failed (the API's), or call_failed (this client's: the whole call failed).
    code: NotRequired[str]


class BulkResult(TypedDict):
    results: list[BulkItem]
    total: int
    succeeded: int
    failed: int


class ProcessPendingResult(TypedDict):
    dispatched: int
    skipped: int
    failed: int
    examined: int
    has_more: bool
    next_cursor: NotRequired[str]


class MoveTask(TypedDict):
    task_handle: NotRequired[str]
    status: str
    approximate_messages: int
    started: bool


class RedriveResult(TypedDict):
    moved: dict[str, int]
    tasks: dict[str, MoveTask]
    total: int
    reopened: ProcessPendingResult


# ------------------------------------------------------------------ errors


class ClientError(Exception):
    """Anything that kept a call from giving its `data`."""


class BadApiUrl(ClientError):
    """--api / VIRALSPOT_API is not an http(s) URL."""


class Unreachable(ClientError):
    """No HTTP answer at all: connection refused, DNS, TLS, timeout."""

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(f"{base_url}: {reason}")
        self.base_url = base_url
        self.reason = reason


class ApiError(ClientError):
    """An HTTP answer that is not a success envelope."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        method: str,
        path: str,
        gateway: bool = False,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.method = method
        self.path = path
        # True when API Gateway answered by itself rather than the function: a
        # missing key, an unknown path, throttling, a crashed function.
        self.gateway = gateway
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth asking again later: throttled, or the service is failing."""
        return self.status == 429 or self.status >= 500


# ------------------------------------------------------------------ the client


def check_base_url(base_url: str) -> str:
    """The API's base URL without a trailing slash, or BadApiUrl."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadApiUrl(
            f"{base_url!r} is not an http(s) URL; expected e.g. {DEFAULT_API} "
            "or https://<id>.execute-api.<region>.amazonaws.com/v1"
        )
    if parts.query or parts.fragment:
        raise BadApiUrl(f"{base_url!r}: give the API's base URL, without ?query or #fragment")
    return base_url.strip().rstrip("/")


def segment(username: str) -> str:
    # The server validates names; the client only keeps a path segment one segment
    # ('@' and anything odd are percent-encoded and decoded again by API Gateway).
    return quote(username, safe="")


class ViralSpotClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.api_key = api_key or None
        headers = {"Accept": "application/json", "User-Agent": "viralspot-cli"}
        if self.api_key:
            headers[API_KEY_HEADER] = self.api_key
        self._http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            # A stage URL never redirects; following one could leak the API key.
            follow_redirects=False,
        )

    def __enter__(self) -> ViralSpotClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def url(self, path: str) -> str:
        """`path` (starting with /) under the base URL, stage prefix included."""
        return f"{self.base_url}{path}"

    # -------------------------------------------------------------- routes

    def request_profile(self, username: str, source: str | None = None) -> IntakeAnswer:
        params = {"source": source} if source else None
        path = f"/api/profile/{segment(username)}/request"
        return cast(IntakeAnswer, self._call("POST", path, params=params))

    def status(self, username: str) -> StatusAnswer:
        return cast(StatusAnswer, self._call("GET", f"/api/profile/{segment(username)}/status"))

    def profile(self, username: str) -> Profile:
        return cast(Profile, self._call("GET", f"/api/profile/{segment(username)}"))

    def posts(
        self,
        username: str,
        *,
        sort: str = "popular",
        limit: int | None = None,
        cursor: str | None = None,
    ) -> PostsPage:
        params: dict[str, str] = {"sort": sort}
        if limit is not None:
            params["limit"] = str(limit)
        if cursor:
            params["cursor"] = cursor
        path = f"/api/profile/{segment(username)}/posts"
        return cast(PostsPage, self._call("GET", path, params=params))

    def similar(self, username: str) -> SimilarProfiles:
        path = f"/api/profile/{segment(username)}/similar"
        return cast(SimilarProfiles, self._call("GET", path))

    def bulk_request(self, usernames: list[str], source: str = "bulk") -> BulkResult:
        if not 1 <= len(usernames) <= MAX_BULK:
            raise ValueError(f"bulk_request takes 1 to {MAX_BULK} usernames")
        body = {"usernames": usernames, "source": source}
        return cast(BulkResult, self._call("POST", "/api/profile/bulk-request", body=body))

    def viral_reels(
        self,
        *,
        min_score: float | None = None,
        since: str | None = None,
        category: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> FeedPage:
        """GET /api/viral-ideas/reels; parameters left None take the API's defaults."""
        given = {
            "min_score": min_score,
            "since": since,
            "category": category,
            "limit": limit,
            "cursor": cursor,
        }
        params = {key: str(value) for key, value in given.items() if value is not None}
        return cast(FeedPage, self._call("GET", "/api/viral-ideas/reels", params=params))

    def queue_status(self) -> QueueStatus:
        return cast(QueueStatus, self._call("GET", "/api/viral-ideas/queue-status"))

    def process_pending(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> ProcessPendingResult:
        """One call: as many PENDING jobs as the API's time budget (or `limit`) allows;
        pass the answer's next_cursor back while has_more."""
        params: dict[str, str] = {}
        if cursor:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = str(limit)
        return cast(
            ProcessPendingResult,
            self._call("POST", "/api/viral-ideas/process-pending", params=params or None),
        )

    def redrive(self, max_messages: int | None = None, cursor: str | None = None) -> RedriveResult:
        params: dict[str, str] = {}
        if max_messages is not None:
            params["max_messages"] = str(max_messages)
        if cursor:
            params["cursor"] = cursor
        return cast(
            RedriveResult,
            self._call("POST", "/api/viral-ideas/redrive", params=params or None),
        )

    def health(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/api/health"))

    # -------------------------------------------------------------- transport

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        try:
            response = self._http.request(method, self.url(path), params=params, json=body)
        except httpx.UnsupportedProtocol as exc:
            raise BadApiUrl(f"{self.base_url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise Unreachable(self.base_url, f"no answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Unreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        return self._data(method, path, response)

    @staticmethod
    def _data(method: str, path: str, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ApiError(
                status,
                f"unexpected answer (HTTP {status}, {response.headers.get('content-type', 'no content type')}): "
                "is this the ViralSpot API?",
                method=method,
                path=path,
                gateway=True,
            )
        if response.is_success and payload.get("success") is True and "data" in payload:
            return payload["data"]
        if response.is_success:
            raise ApiError(
                status,
                "the answer is not a ViralSpot envelope: is this the ViralSpot API?",
                method=method,
                path=path,
                gateway=True,
            )
        detail = payload.get("detail")
        gateway = detail is None or "x-amzn-errortype" in response.headers
        if detail is None:
            detail = payload.get("message") or response.reason_phrase or "error"
        raise ApiError(
            status,
            str(detail),
            method=method,
            path=path,
            gateway=gateway,
            retry_after=response.headers.get("retry-after"),
        )
