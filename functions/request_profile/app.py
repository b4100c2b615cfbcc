"""The API function: every HTTP route. Wiring only: parse, call a service, wrap."""
# No `from __future__ import annotations`: Powertools reads the route signatures at runtime.

import os
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import (
    APIGatewayRestResolver,
    CORSConfig,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Path as PathParam
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from viralspot import access, bootstrap, edge, feed, intake, operations, progress, reads
from viralspot.content import DEFAULT_PAGE, MAX_PAGE, PostSort, PostsPage
from viralspot.envelope import Failure, Success, failure_body, success_body, validation_detail
from viralspot.errors import (
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    QueueUnavailable,
    SecretUnavailable,
    StorageError,
    StorageUnavailable,
    UnsupportedMediaType,
)
from viralspot.feed import FeedPage
from viralspot.intake import IntakeAnswer
from viralspot.jobs import Source
from viralspot.operations import (
    BulkRequestBody,
    BulkResult,
    ProcessPendingResult,
    QueueStatus,
    RedriveResult,
)
from viralspot.profiles import Profile
from viralspot.progress import StatusAnswer
from viralspot.reads import SimilarProfiles
from viralspot.usernames import DOCUMENTED_PATTERN, normalise_username

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# API Gateway answers the CORS preflight (template: Cors); the function adds the
# origin header to real answers, errors included. The origin is a deploy-time
# constant the template sets, so reading it here, once, is safe.
app = APIGatewayRestResolver(
    enable_validation=True,
    cors=CORSConfig(
        allow_origin=os.environ.get("CORS_ALLOW_ORIGIN", "*"),
        allow_headers=["Content-Type", "X-Api-Key"],
    ),
    # Anything that reads the body as JSON gets the edge's limits.
    json_body_deserializer=edge.parse_json,
)


class EdgeValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with viralspot.edge deciding what a body is:
    its size first (413), then its media type (415), then JSON with nesting and
    number limits (400). Powertools alone compares media types case-sensitively
    and hands multipart and form bodies to parsers that can raise a 500."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        event = app.current_event
        edge.body_bytes(event.body, base64_encoded=bool(event.is_base64_encoded))
        return super().handler(app, next_middleware)

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        return edge.json_body(
            event.body,
            base64_encoded=bool(event.is_base64_encoded),
            content_type=event.headers.get("content-type"),
        )


# Powertools runs this middleware first on every route; there is no public hook that
# runs before it, and the edge's refusals must come before its parsers.
app._request_validation_middleware = EdgeValidation()  # type: ignore[no-untyped-call]
app.configure_openapi(
    title="ViralSpot intake API",
    version="1.0.0",
    summary="Queue Instagram profiles for analysis exactly once, and read the results.",
    description=(
        "Every response is an envelope: `{success: true, data}` or `{success: false, detail}`. "
        "Admin routes need the `x-api-key` header."
    ),
    # A plain mapping, validated into Powertools' OpenAPI models only when a document is
    # generated: importing those models costs about a third of this function's cold
    # start (bench/coldstart.py), and no request but the two documentation routes needs
    # them.
    security_schemes={"apiKey": {"type": "apiKey", "name": "x-api-key", "in": "header"}},  # type: ignore[dict-item]
)
ADMIN: list[dict[str, list[str]]] = [{"apiKey": []}]
WEB_PAGE = Path(__file__).resolve().parent / "web" / "index.html"

UsernamePath = Annotated[
    str,
    PathParam(
        description="Instagram username; a leading @ is ignored, case-insensitive",
        json_schema_extra={"pattern": DOCUMENTED_PATTERN},
    ),
]


def _failure(description: str) -> OpenAPIResponse:
    return {
        "description": description,
        "content": {"application/json": {"schema": Failure.model_json_schema()}},
    }


ERRORS: dict[int, OpenAPIResponse] = {
    400: _failure("Invalid username, parameter or cursor"),
    404: _failure("Unknown profile or route"),
    503: _failure("Storage or a key unavailable; nothing was stored"),
    500: _failure("Unexpected error"),
}
FORBIDDEN: dict[int, OpenAPIResponse] = {
    403: _failure("Missing or wrong x-api-key (answered by API Gateway)")
}
# source=admin, and HIGH in bulk, is checked by the function: the route itself is public.
NEEDS_KEY_FOR_HIGH: dict[int, OpenAPIResponse] = {
    403: _failure("source=admin (or a HIGH bulk request) without the admin key in x-api-key")
}
BODY_ERRORS: dict[int, OpenAPIResponse] = {
    413: _failure(f"The body is over {edge.MAX_BODY_BYTES} bytes"),
    415: _failure("The body is not JSON (Content-Type: application/json, UTF-8)"),
}


def _documented(model: type[Any], description: str) -> dict[int, OpenAPIResponse]:
    """OpenAPI responses for a route: its success model plus the error envelope.

    The success body is documented rather than declared as the return type so the
    seed's shape survives: fields that do not apply are absent, not null."""
    return {
        200: {"description": description, "content": {"application/json": {"model": model}}},
        **ERRORS,
    }


def _json(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers=headers,
    )


@app.post(
    "/api/profile/<username>/request",
    responses={
        **_documented(Success[IntakeAnswer], "Queued, already queued, or already processed"),
        **NEEDS_KEY_FOR_HIGH,
    },
    tags=["profiles"],
)
@tracer.capture_method
def request_profile(
    username: UsernamePath,
    source: Annotated[
        Source, Query(description="Who asks; decides the priority")
    ] = Source.FRONTEND,
) -> Response[Any]:
    name = normalise_username(username)
    _authorise(source, bulk=False)
    decision = _decide(name, source)
    _record(decision)
    return _json(HTTPStatus.OK, success_body(decision.answer))


def _authorise(source: Source, *, bulk: bool) -> None:
    access.authorise(
        source,
        bulk=bulk,
        presented_key=app.current_event.headers.get(access.ADMIN_KEY_HEADER),
        admin_key=bootstrap.services().admin_key,
    )


def _decide(name: str, source: Source) -> intake.Decision:
    decision = bootstrap.services().intake(name, source)
    logger.info(
        "intake decided",
        extra={
            "username": name,
            "outcome": decision.outcome.value,
            "job_request_id": decision.answer.request_id,
        },
    )
    return decision


def _record(decision: intake.Decision) -> None:
    # Called on the handler's thread only: Powertools' metric set is not thread-safe.
    metrics.add_metric(name=f"Intake_{decision.outcome.value}", unit=MetricUnit.Count, value=1)
    if decision.answer.fallback_mode:
        metrics.add_metric(name="Intake_degraded", unit=MetricUnit.Count, value=1)


@app.get(
    "/api/profile/<username>/status",
    responses=_documented(Success[StatusAnswer], "Progress of the profile's job"),
    tags=["profiles"],
)
@tracer.capture_method
def profile_status(username: UsernamePath) -> Response[Any]:
    name = normalise_username(username)
    ctx = bootstrap.services()
    answer = progress.get_status(
        name, jobs=ctx.jobs, stale_after=ctx.policy.stale_after, clock=ctx.clock
    )
    return _json(HTTPStatus.OK, success_body(answer))


@app.get(
    "/api/profile/<username>",
    responses=_documented(Success[Profile], "The processed profile with its statistics"),
    tags=["profiles"],
)
@tracer.capture_method
def get_profile(username: UsernamePath) -> Response[Any]:
    name = normalise_username(username)
    profile = reads.primary_profile(name, bootstrap.services().profiles)
    return _json(HTTPStatus.OK, success_body(profile))


@app.get(
    "/api/profile/<username>/posts",
    responses=_documented(Success[PostsPage], "The profile's reels with outlier scores"),
    tags=["profiles"],
)
@tracer.capture_method
def get_posts(
    username: UsernamePath,
    sort: Annotated[
        PostSort, Query(description="popular = outlier score, then views")
    ] = PostSort.POPULAR,
    limit: Annotated[
        int | None, Query(ge=1, le=MAX_PAGE, description=f"Page size, default {DEFAULT_PAGE}")
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page (opaque, signed)",
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=edge.MAX_CURSOR_CHARS,
        ),
    ] = None,
) -> Response[Any]:
    name = normalise_username(username)
    ctx = bootstrap.services()
    page = reads.posts(
        name, sort=sort, limit=limit, cursor=cursor, profiles=ctx.profiles, content=ctx.content
    )
    return _json(HTTPStatus.OK, success_body(page))


@app.get(
    "/api/profile/<username>/similar",
    responses=_documented(Success[SimilarProfiles], "Similar profiles found while processing it"),
    tags=["profiles"],
)
@tracer.capture_method
def get_similar(username: UsernamePath) -> Response[Any]:
    name = normalise_username(username)
    found = reads.similar(name, profiles=bootstrap.services().profiles)
    return _json(HTTPStatus.OK, success_body(found))


@app.post(
    "/api/profile/bulk-request",
    responses={
        **_documented(Success[BulkResult], "One result per username, in order"),
        **NEEDS_KEY_FOR_HIGH,
        **BODY_ERRORS,
    },
    tags=["profiles"],
)
@tracer.capture_method
def bulk_request(body: BulkRequestBody) -> Response[Any]:
    _authorise(body.source, bulk=True)
    decisions: list[intake.Decision] = []

    def one(name: str) -> IntakeAnswer:
        decision = _decide(name, body.source)
        decisions.append(decision)  # list.append is atomic; metrics are recorded after
        return decision.answer

    result = operations.bulk_request(body.usernames, one)
    for decision in decisions:
        _record(decision)
    return _json(HTTPStatus.OK, success_body(result))


@app.get(
    "/api/viral-ideas/reels",
    responses=_documented(Success[FeedPage], "Reels across every analysed profile, best first"),
    tags=["viral-ideas"],
    summary="The viral-ideas feed: reels that beat their own account's median the most",
    description=(
        "Reels of every analysed profile (crawl-depth analyses included, marked "
        "`crawl_depth`), highest `outlier_score` first. Without `since`, the window is the "
        f"last {feed.DEFAULT_WINDOW_DAYS} days; it reaches back {feed.MAX_WINDOW_DAYS} days "
        "at most (an older `since` starts there), and `data.since` is the window's first "
        "day. A page can hold fewer than `limit` reels and still have a `next_cursor`."
    ),
)
@tracer.capture_method
def viral_reels(
    min_score: Annotated[
        float, Query(ge=0, le=feed.MAX_MIN_SCORE, description="Lowest outlier score listed")
    ] = feed.DEFAULT_MIN_SCORE,
    since: Annotated[
        str | None,
        Query(
            description=(
                "ISO date (YYYY-MM-DD): reels taken on or after it (UTC). "
                f"Default: {feed.DEFAULT_WINDOW_DAYS} days ago; at most "
                f"{feed.MAX_WINDOW_DAYS} days ago"
            ),
            # A string, not a `date`: pydantic would take "0" as a Unix timestamp.
            pattern=feed.DAY_PATTERN,
            json_schema_extra={"format": "date"},
        ),
    ] = None,
    category: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=feed.MAX_CATEGORY_LENGTH,
            description="The profile's category, case-insensitive",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=feed.MAX_LIMIT, description="Page size")
    ] = feed.DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page, with the same filters (opaque, signed)",
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=edge.MAX_CURSOR_CHARS,
        ),
    ] = None,
) -> Response[Any]:
    ctx = bootstrap.services()
    page = feed.read_page(
        min_score=min_score,
        since=feed.parse_day(since),
        category=category,
        limit=limit,
        cursor=cursor,
        index=ctx.content,
        clock=ctx.clock,
    )
    return _json(HTTPStatus.OK, success_body(page))


@app.get(
    "/api/viral-ideas/queue-status",
    responses=_documented(Success[QueueStatus], "Live jobs by status and priority; queue depths"),
    tags=["operations"],
)
@tracer.capture_method
def queue_status() -> Response[Any]:
    ctx = bootstrap.services()
    settings = ctx.settings
    status = operations.queue_status(
        jobs=ctx.jobs,
        queues=ctx.queues,
        urls={
            "high": settings.high_queue_url,
            "medium": settings.medium_queue_url,
            "low": settings.low_queue_url,
            "high_dlq": settings.high_dlq_url,
            "medium_dlq": settings.medium_dlq_url,
            "low_dlq": settings.low_dlq_url,
        },
    )
    return _json(HTTPStatus.OK, success_body(status))


@app.post(
    "/api/viral-ideas/process-pending",
    responses={
        **_documented(
            Success[ProcessPendingResult],
            "PENDING jobs dispatched again, HIGH first, as far as one call goes; "
            "while has_more, call again with next_cursor",
        ),
        **FORBIDDEN,
    },
    tags=["admin"],
    summary="Re-dispatch every PENDING job, in calls that continue by cursor (API key required)",
    security=ADMIN,
)
@tracer.capture_method
def process_pending(
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous call (opaque); absent to start",
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=1024,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=100_000, description="Most jobs this call examines (default: its time)"),
    ] = None,
) -> Response[Any]:
    ctx = bootstrap.services()
    result = operations.process_pending(
        store=ctx.jobs,
        dispatcher=ctx.queues,
        clock=ctx.clock,
        cursor=cursor,
        limit=limit,
        time_left_ms=app.lambda_context.get_remaining_time_in_millis,
    )
    metrics.add_metric(name="Admin_redispatched", unit=MetricUnit.Count, value=result.dispatched)
    logger.info("process-pending", extra=result.model_dump(exclude={"next_cursor"}))
    return _json(HTTPStatus.OK, success_body(result))


@app.post(
    "/api/viral-ideas/redrive",
    responses={
        **_documented(
            Success[RedriveResult],
            "Dead letters moved back: by an SQS message move task per queue (tasks), "
            "or, where SQS has none (the local emulator), here and now; jobs whose "
            "retries ran out opened again (reopened), continued by cursor",
        ),
        **FORBIDDEN,
    },
    tags=["admin"],
    summary="Move dead letters back and re-open exhausted jobs (API key required)",
    security=ADMIN,
)
@tracer.capture_method
def redrive(
    max_messages: Annotated[
        int,
        Query(
            ge=1,
            le=1000,
            description="Per queue, where messages are moved by hand; a move task moves all",
        ),
    ] = 100,
    cursor: Annotated[
        str | None,
        Query(
            description="reopened.next_cursor of the previous call (opaque); absent to start",
            pattern=r"^[A-Za-z0-9_-]+$",
            max_length=1024,
        ),
    ] = None,
) -> Response[Any]:
    ctx = bootstrap.services()
    settings = ctx.settings
    routes = {
        name: (dlq, queue)
        for name, dlq, queue in (
            ("high", settings.high_dlq_url, settings.high_queue_url),
            ("medium", settings.medium_dlq_url, settings.medium_queue_url),
            ("low", settings.low_dlq_url, settings.low_queue_url),
        )
        if dlq and queue
    }
    result = operations.redrive(
        queues=ctx.queues,
        routes=routes,
        max_messages=max_messages,
        store=ctx.jobs,
        dispatcher=ctx.queues,
        clock=ctx.clock,
        cursor=cursor,
        time_left_ms=app.lambda_context.get_remaining_time_in_millis,
    )
    metrics.add_metric(
        name="Admin_reopened", unit=MetricUnit.Count, value=result.reopened.dispatched
    )
    logger.info(
        "redrive",
        extra={
            "moved": result.moved,
            "tasks": len(result.tasks),
            "reopened": result.reopened.model_dump(exclude={"next_cursor"}),
        },
    )
    return _json(HTTPStatus.OK, success_body(result))


@app.get("/api/health", tags=["operations"])
def health() -> dict[str, Any]:
    return {"success": True, "data": {"status": "ok"}}


@app.get("/api/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(),
    )


@app.get("/api/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    """Swagger UI with its assets inline (works offline, e.g. in the local stack): what
    Powertools' enable_swagger serves, built from the same library pieces. Not
    enable_swagger itself: it imports the OpenAPI models when the module loads, which
    every cold start would pay for this one page."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui as assets
    from aws_lambda_powertools.event_handler.openapi.models import Server

    context = app.current_event.request_context
    # Under API Gateway the stage prefixes the path (as Powertools' _get_base_path says).
    stage = context.stage
    base = (
        f"/{stage}"
        if stage and stage != "$default" and context.path.startswith(f"/{stage}")
        else ""
    )
    spec = app.get_openapi_json_schema(servers=[Server(url=base or "/")])
    folder = Path(assets.__file__).parent
    page = assets.generate_swagger_html(
        # Keeps a "</script>" inside the document from closing the page's script tag.
        spec.replace("</", "<\\/"),
        (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
    )
    return Response(status_code=HTTPStatus.OK, content_type=content_types.TEXT_HTML, body=page)


@app.get("/", include_in_schema=False)
def web_page() -> Response[str]:
    # The page is static and calls this same API from the browser.
    return Response(
        status_code=HTTPStatus.OK,
        content_type="text/html; charset=utf-8",
        body=WEB_PAGE.read_text(encoding="utf-8"),
        headers={"Cache-Control": "no-cache"},
    )


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput) -> Response[Any]:
    metrics.add_metric(name="Intake_rejected", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.BAD_REQUEST, failure_body(str(exc)))


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[Any]:
    metrics.add_metric(name="Intake_rejected", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.BAD_REQUEST, failure_body(validation_detail(exc.errors())))


@app.exception_handler(PayloadTooLarge)
def _too_large(exc: PayloadTooLarge) -> Response[Any]:
    metrics.add_metric(name="Intake_rejected", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, failure_body(str(exc)))


@app.exception_handler(UnsupportedMediaType)
def _not_json(exc: UnsupportedMediaType) -> Response[Any]:
    metrics.add_metric(name="Intake_rejected", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, failure_body(str(exc)))


@app.exception_handler(UnicodeDecodeError)
def _undecodable(exc: UnicodeDecodeError) -> Response[Any]:
    return _json(HTTPStatus.BAD_REQUEST, failure_body("The request body must be UTF-8 JSON"))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported(exc: RequestUnsupportedContentType) -> Response[Any]:
    return _json(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        failure_body("The request body must be JSON (Content-Type: application/json)"),
    )


@app.exception_handler(Forbidden)
def _forbidden(exc: Forbidden) -> Response[Any]:
    logger.warning("refused", extra={"reason": str(exc)})
    metrics.add_metric(name="Intake_forbidden", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.FORBIDDEN, failure_body(str(exc)))


@app.exception_handler(NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    return _json(HTTPStatus.NOT_FOUND, failure_body(str(exc)))


@app.not_found
def _no_route(exc: NotFoundError) -> Response[Any]:
    event = app.current_event
    _check_method(event.resource, event.http_method)
    # API Gateway matched a {username} route, but the name holds characters the
    # resolver's path pattern refuses (quotes, emoji, '/'): that is bad input, 400.
    username = (event.path_parameters or {}).get("username")
    if username is not None and "{username}" in (event.resource or ""):
        normalise_username(username)
    return _json(
        HTTPStatus.NOT_FOUND, failure_body(f"No route for {event.http_method} {event.path}")
    )


def _check_method(resource: str | None, method: str) -> None:
    # The template sends every other method of a documented path here (ANY), so an
    # undeclared method is a 405 naming what the path allows. Checked against the
    # resource API Gateway matched: the resolver alone would take
    # GET /api/profile/bulk-request for the profile of a user called bulk-request.
    allowed = _allowed_methods().get(resource or "")
    if allowed and method.upper() not in allowed:
        raise MethodNotAllowed(method, allowed)


def _declared_methods_only(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    _check_method(app.current_event.resource, app.current_event.http_method)
    return next_middleware(app)


app.use(middlewares=[_declared_methods_only])


@cache
def _allowed_methods() -> dict[str, list[str]]:
    """Methods of each routed path, spelled as API Gateway spells resources.

    Read from the resolver's routes, which it keeps in private lists: the public
    alternative, the OpenAPI document, costs ~250 ms to build on a cold start.
    tests/integration/test_edge.py fails if a Powertools upgrade renames them."""
    allowed: dict[str, set[str]] = {}
    for route in [*app._static_routes, *app._dynamic_routes]:
        allowed.setdefault(route.openapi_path, {"OPTIONS"}).add(route.method)
    return {path: sorted(methods) for path, methods in allowed.items()}


@app.exception_handler(MethodNotAllowed)
def _method_not_allowed(exc: MethodNotAllowed) -> Response[Any]:
    return _json(
        HTTPStatus.METHOD_NOT_ALLOWED,
        failure_body(str(exc)),
        headers={"Allow": ", ".join(exc.allowed)},
    )


@app.exception_handler(SecretUnavailable)
def _secret_unavailable(exc: SecretUnavailable) -> Response[Any]:
    logger.error("key unavailable", extra={"reason": str(exc)})
    return _json(
        HTTPStatus.SERVICE_UNAVAILABLE,
        failure_body("A key the API needs is temporarily unavailable. Please retry."),
        headers={"Retry-After": "5"},
    )


@app.exception_handler(StorageUnavailable)
def _unavailable(exc: StorageUnavailable) -> Response[Any]:
    logger.warning("storage unavailable", extra={"reason": str(exc)})
    metrics.add_metric(name="Intake_unavailable", unit=MetricUnit.Count, value=1)
    # A read (the feed, a profile) queues nothing, so it does not say it did not.
    detail = (
        "Storage is temporarily unavailable. Please retry."
        if app.current_event.http_method == "GET"
        else "Storage is temporarily unavailable; nothing was queued. Please retry."
    )
    return _json(HTTPStatus.SERVICE_UNAVAILABLE, failure_body(detail), headers={"Retry-After": "5"})


@app.exception_handler(QueueUnavailable)
def _queue_unavailable(exc: QueueUnavailable) -> Response[Any]:
    logger.warning("queue unavailable", extra={"reason": str(exc)})
    return _json(
        HTTPStatus.SERVICE_UNAVAILABLE,
        failure_body("The queue service is temporarily unavailable. Please retry."),
        headers={"Retry-After": "5"},
    )


@app.exception_handler(StorageError)
def _storage_error(exc: StorageError) -> Response[Any]:
    logger.exception("storage error")
    return _json(
        HTTPStatus.INTERNAL_SERVER_ERROR, failure_body("Failed to process profile request")
    )


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _json(
        HTTPStatus.INTERNAL_SERVER_ERROR, failure_body("Failed to process profile request")
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Route on what API Gateway matched, never on a path re-read after decoding.
    return app.resolve(edge.routed_event(event), context)
