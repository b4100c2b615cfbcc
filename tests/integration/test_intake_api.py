"""POST /api/profile/{username}/request through the HTTP handler on the emulator:
every answer of the seed's response tables with its exact field set, the
validation matrix, the failure modes (SQS down, DynamoDB down or throttled, a bug)
and the AWS calls each path costs.

Items are written straight into the tables with the adapters' own encoders
(`job_to_item`, `profile_to_item`-shaped dicts + `codec.serialize`), so what the
handler reads back is exactly what the system itself would have stored.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from devstack.apigw import proxy_event
from devstack.emulator import Emulator
from devstack.harness import local_stack
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.support import CallCounter, drain, dynamodb_error
from viralspot import bootstrap, intake
from viralspot.adapters import aws
from viralspot.adapters.codec import deserialize, serialize
from viralspot.adapters.dynamo_jobs import job_from_item, job_to_item
from viralspot.clock import to_iso, utc_now
from viralspot.errors import ErrorKind
from viralspot.jobs import Job, JobStatus, Priority, Source, new_job, raised_for
from viralspot.sharding import INDEX_SHARDS

# The seed's response tables. `next_check_recommended` is "when queued" in the seed's
# field reference, so the already-in-queue answer (queued: true) carries it too.
NEW_FIELDS = {
    "queued",
    "message",
    "estimated_time",
    "profile_type",
    "status",
    "priority",
    "request_id",
    "queue_position",
    "next_check_recommended",
}
IN_QUEUE_FIELDS = NEW_FIELDS | {"skip_reason"}
EXISTS_FIELDS = {
    "queued",
    "message",
    "estimated_time",
    "profile_type",
    "status",
    "created_at",
    "skip_reason",
}

# DESIGN.md "Read first, decide atomically": one strongly consistent read answers a
# repeat; a new job costs the transaction, the send and its record, and the position
# (one capped COUNT per index shard plus the counters, side by side: one round trip).
READ = ["dynamodb.BatchGetItem"]
POSITION_CALLS = ["dynamodb.Query"] * INDEX_SHARDS + ["dynamodb.BatchGetItem"]
DUPLICATE_CALLS = sorted(READ + POSITION_CALLS)
NEW_CALLS = sorted(
    [
        *READ,
        "dynamodb.TransactWriteItems",
        "sqs.SendMessage",
        "dynamodb.UpdateItem",
        *POSITION_CALLS,
    ]
)


@functools.cache
def _emulator_client(emulator: Emulator, service: str) -> Any:
    # A boto3 client costs ~0.2 s to build; the emulator's URL lives as long as the session.
    return emulator.client(service)


class Tables:
    """Direct access to the emulator's tables and queues (not through the handler)."""

    def __init__(self, emulator: Emulator, stack: Stack) -> None:
        self.dynamodb = _emulator_client(emulator, "dynamodb")
        self.sqs = _emulator_client(emulator, "sqs")
        self.stack = stack

    def put_profile(self, **item: Any) -> dict[str, Any]:
        self.dynamodb.put_item(TableName=self.stack.refs["ProfilesTable"], Item=serialize(item))
        return item

    def put_job(self, job: Job) -> Job:
        """Store `job`; returns it as it reads back (timestamps at millisecond precision)."""
        item = job_to_item(job)
        self.dynamodb.put_item(TableName=self.stack.refs["JobsTable"], Item=serialize(item))
        return job_from_item(item)

    def job(self, username: str) -> Job | None:
        item = self.dynamodb.get_item(
            TableName=self.stack.refs["JobsTable"],
            Key={"username": {"S": username}},
            ConsistentRead=True,
        ).get("Item")
        return job_from_item(deserialize(item)) if item else None

    def job_count(self) -> int:
        """Jobs stored (the queue counters share the table under '#' keys)."""
        items = self.dynamodb.scan(TableName=self.stack.refs["JobsTable"])["Items"]
        return sum(1 for item in items if not item["username"]["S"].startswith("#"))

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """Every message on `queue`, taken off it."""
        return [json.loads(m["Body"]) for m in drain(self.sqs, self.stack.refs[queue])]


@pytest.fixture
def tables(aws_env: Emulator, stack: Stack) -> Tables:
    return Tables(aws_env, stack)


def post(api: LocalApi, name: str, source: str | None = None) -> tuple[int, dict[str, Any]]:
    url = f"/api/profile/{name}/request" + (f"?source={source}" if source else "")
    status, _, body = api.request("POST", url)
    return status, body


def iso_ago(**delta: float) -> str:
    return to_iso(utc_now() - timedelta(**delta))


def stored_job(
    username: str, *, age: timedelta, source: Source = Source.FRONTEND, **changes: Any
) -> Job:
    return new_job(username, source, utc_now() - age).model_copy(update=changes)


# -- the seed's answers, one by one --------------------------------------------------------


def test_new_profile_answer_has_exactly_the_seed_fields(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    status, body = post(api, "entrepreneur_mike")
    assert status == 200
    assert set(body) == {"success", "data"}
    data = body["data"]
    assert set(data) == NEW_FIELDS
    assert data["message"] == "Profile entrepreneur_mike added to high priority processing queue"
    assert (data["profile_type"], data["status"], data["priority"]) == ("new", "pending", "HIGH")
    assert sorted(aws_calls.calls) == NEW_CALLS
    stored = tables.job("entrepreneur_mike")
    assert stored is not None
    assert stored.request_id == data["request_id"]
    assert stored.status is JobStatus.PENDING
    assert [m["request_id"] for m in tables.messages("HighQueue")] == [data["request_id"]]


def test_already_processed_answer(api: LocalApi, tables: Tables, aws_calls: CallCounter) -> None:
    created = "2024-01-15T14:30:00.000Z"
    tables.put_profile(
        username="natgeo",
        tier="primary",
        full_name="National Geographic",
        followers_count=280_000_000,
        created_at=created,
        updated_at=iso_ago(days=1),
        last_scraped_at=iso_ago(days=1),
    )
    status, body = post(api, "natgeo")
    assert status == 200
    data = body["data"]
    assert set(data) == EXISTS_FIELDS
    assert data == {
        "queued": False,
        "message": "Profile natgeo is already fully processed",
        "estimated_time": "complete",
        "profile_type": "primary",
        "status": "exists",
        "created_at": created,
        "skip_reason": "already_processed",
    }
    assert aws_calls.calls == READ
    assert tables.job_count() == 0
    assert tables.messages("HighQueue") == []


def test_already_in_queue_answer_for_a_processing_job(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    job = tables.put_job(
        stored_job(
            "entrepreneur_mike",
            age=timedelta(minutes=2),
            status=JobStatus.PROCESSING,
            attempts=1,
            lease_until=utc_now() + timedelta(minutes=3),
        )
    )
    status, body = post(api, "entrepreneur_mike")
    assert status == 200
    data = body["data"]
    assert set(data) == IN_QUEUE_FIELDS
    assert data["message"] == "Profile entrepreneur_mike is already in queue (status: PROCESSING)"
    assert data["queued"] is True
    assert (data["profile_type"], data["status"]) == ("queued", "processing")
    assert data["priority"] == "HIGH"
    assert data["queue_position"] == 1
    assert data["request_id"] == job.request_id
    assert data["skip_reason"] == "already_in_queue"
    assert sorted(aws_calls.calls) == DUPLICATE_CALLS
    assert tables.job("entrepreneur_mike") == job  # untouched
    assert tables.messages("HighQueue") == []


def test_recently_completed_answer(api: LocalApi, tables: Tables, aws_calls: CallCounter) -> None:
    completed_at = utc_now() - timedelta(minutes=3)
    job = tables.put_job(
        stored_job(
            "entrepreneur_mike",
            age=timedelta(minutes=6),
            status=JobStatus.COMPLETED,
            attempts=1,
            completed_at=completed_at,
            updated_at=completed_at,
        )
    )
    tables.put_profile(
        username="entrepreneur_mike",
        tier="primary",
        created_at=to_iso(completed_at),
        last_scraped_at=to_iso(completed_at),
    )
    status, body = post(api, "entrepreneur_mike")
    assert status == 200
    assert body["data"] == {
        "queued": False,
        "message": "Profile entrepreneur_mike was recently processed and is now available",
        "estimated_time": "complete",
        "profile_type": "primary",
        "status": "exists",
        "created_at": to_iso(completed_at),
        "skip_reason": "recently_completed",
    }
    assert aws_calls.calls == READ
    assert tables.job("entrepreneur_mike") == job
    assert tables.messages("HighQueue") == []


def test_secondary_profile_is_upgraded(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    tables.put_profile(
        username="cousin_mike",
        tier="secondary",
        discovered_from="entrepreneur_mike",
        followers_count=1200,
        created_at=iso_ago(days=2),
    )
    status, body = post(api, "cousin_mike")
    assert status == 200
    data = body["data"]
    assert set(data) == NEW_FIELDS | {"upgraded"}
    assert data["profile_type"] == "upgrade"
    assert data["upgraded"] is True
    assert (data["queued"], data["status"], data["priority"]) == (True, "pending", "HIGH")
    assert "secondary" in data["message"]
    stored = tables.job("cousin_mike")
    assert stored is not None
    assert stored.request_id == data["request_id"]
    assert stored.profile_type.value == "upgrade"
    assert [m["request_id"] for m in tables.messages("HighQueue")] == [data["request_id"]]
    # The ABSENT guard is refused (a secondary exists); the write is repeated with
    # the SECONDARY guard: two transactions, each atomic.
    assert sorted(aws_calls.calls) == NEW_CALLS


def test_stale_primary_is_queued_for_refresh(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    scraped = utc_now() - timedelta(days=8)  # PROFILE_STALE_AFTER_DAYS defaults to 7
    old = tables.put_job(
        stored_job(
            "natgeo",
            age=timedelta(days=8, minutes=5),
            status=JobStatus.COMPLETED,
            attempts=1,
            completed_at=scraped,
            updated_at=scraped,
        )
    )
    tables.put_profile(
        username="natgeo",
        tier="primary",
        created_at=iso_ago(days=60),
        last_scraped_at=to_iso(scraped),
    )
    status, body = post(api, "natgeo", "api")
    assert status == 200
    data = body["data"]
    assert set(data) == NEW_FIELDS | {"upgraded"}
    assert data["profile_type"] == "refresh"
    assert data["upgraded"] is True
    assert data["priority"] == "MEDIUM"
    assert data["request_id"] != old.request_id
    stored = tables.job("natgeo")
    assert stored is not None
    assert (stored.request_id, stored.status, stored.attempts) == (
        data["request_id"],
        JobStatus.PENDING,
        0,
    )
    assert [m["request_id"] for m in tables.messages("MediumQueue")] == [data["request_id"]]
    assert sorted(aws_calls.calls) == NEW_CALLS


def test_failed_awaiting_retry_is_already_in_queue(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    retry_at = utc_now() + timedelta(minutes=4)
    job = tables.put_job(
        stored_job(
            "natgeo",
            age=timedelta(minutes=5),
            status=JobStatus.FAILED,
            attempts=2,
            error_kind=ErrorKind.TRANSIENT,
            error_message="provider rate limited",
            next_retry_at=retry_at,
        )
    )
    status, body = post(api, "natgeo")
    assert status == 200
    data = body["data"]
    # Not in the active queue until the sweeper revives it: no position.
    assert set(data) == (IN_QUEUE_FIELDS - {"queue_position"}) | {"next_retry_at"}
    assert data["status"] == "failed"
    assert data["request_id"] == job.request_id
    assert data["next_retry_at"] == to_iso(retry_at)
    assert aws_calls.calls == READ


def test_failed_for_good_starts_a_fresh_job(api: LocalApi, tables: Tables) -> None:
    old = tables.put_job(
        stored_job(
            "natgeo",
            age=timedelta(hours=1),
            status=JobStatus.FAILED,
            attempts=1,
            error_kind=ErrorKind.PERMANENT,
            error_message="profile not found",
        )
    )
    _, body = post(api, "natgeo")
    data = body["data"]
    assert set(data) == NEW_FIELDS
    assert data["request_id"] != old.request_id
    stored = tables.job("natgeo")
    assert stored is not None
    assert (stored.request_id, stored.status, stored.attempts, stored.error_message) == (
        data["request_id"],
        JobStatus.PENDING,
        0,
        None,
    )


@pytest.mark.ddblocal
def test_high_request_upgrades_a_waiting_medium_job(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    _, first = post(api, "natgeo", "api")
    assert first["data"]["priority"] == "MEDIUM"
    aws_calls.reset()
    status, body = post(api, "natgeo", "frontend")
    assert status == 200
    data = body["data"]
    assert set(data) == IN_QUEUE_FIELDS | {"upgraded"}
    assert data["upgraded"] is True
    assert data["priority"] == "HIGH"
    assert data["request_id"] == first["data"]["request_id"]
    assert data["skip_reason"] == "already_in_queue"
    stored = tables.job("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH
    assert stored.request_id == first["data"]["request_id"]
    # One job, two messages: the original on the medium queue, the raise on the high one.
    assert [m["request_id"] for m in tables.messages("HighQueue")] == [data["request_id"]]
    assert [m["request_id"] for m in tables.messages("MediumQueue")] == [data["request_id"]]
    assert tables.job_count() == 1
    # The raise is a transaction (the job and its counters), then the send and its record.
    assert sorted(aws_calls.calls) == NEW_CALLS


# A request acts on the job snapshot its read returned; the raise is conditional on
# the job still being that version, so an old snapshot neither raises (and sends)
# twice nor lowers a job someone else raised.


@pytest.mark.ddblocal
def test_two_high_requests_raise_a_waiting_job_once(api: LocalApi, tables: Tables) -> None:
    """Two HIGH requests for a waiting LOW job, interleaved deterministically: B runs
    entirely between A's read and A's raise, as two Lambda instances can. Both saw
    the LOW job; only one may raise it and send to the high queue; A, losing, reads
    again and answers from what the job is now."""
    _, first = post(api, "natgeo", "crawler")
    ctx = bootstrap.services()
    b_answers: list[intake.IntakeAnswer] = []
    started: list[bool] = []

    def request_b_first(**_: Any) -> None:
        if not started:  # B's own UpdateItem passes through here too
            started.append(True)
            b_answers.append(
                ctx.intake(
                    "natgeo",
                    Source.FRONTEND,
                ).answer
            )

    _register("before-call.dynamodb.TransactWriteItems", request_b_first)
    _, a = post(api, "natgeo", "frontend")
    assert b_answers[0].upgraded is True
    assert a["data"]["request_id"] == first["data"]["request_id"]
    assert len(tables.messages("HighQueue")) == 1
    assert a["data"].get("upgraded") is None


@pytest.mark.ddblocal
def test_raise_on_a_stale_snapshot_neither_repeats_nor_lowers(
    api: LocalApi, tables: Tables
) -> None:
    post(api, "natgeo", "crawler")
    ctx = bootstrap.services()
    seen_low = ctx.jobs.get("natgeo")
    assert seen_low is not None
    assert ctx.jobs.raise_priority(seen_low, raised_for(seen_low, Source.FRONTEND, utc_now()))
    # Another request that also saw the LOW job, asking MEDIUM, arrives last.
    late = ctx.jobs.raise_priority(seen_low, raised_for(seen_low, Source.API, utc_now()))
    stored = tables.job("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH
    assert late is False


def test_at_prefix_and_case_are_one_profile(api: LocalApi, tables: Tables) -> None:
    _, first = post(api, "%40NatGeo")
    assert first["data"]["profile_type"] == "new"
    assert first["data"]["message"].startswith("Profile natgeo ")
    _, second = post(api, "NATGEO")
    assert second["data"]["skip_reason"] == "already_in_queue"
    assert second["data"]["request_id"] == first["data"]["request_id"]
    assert tables.job_count() == 1
    stored = tables.job("natgeo")
    assert stored is not None
    assert stored.request_id == first["data"]["request_id"]
    assert [m["username"] for m in tables.messages("HighQueue")] == ["natgeo"]
    # 30 characters is the longest name allowed (31 is refused, below).
    status, body = post(api, "A" * 30)
    assert status == 200
    assert body["data"]["profile_type"] == "new"
    assert body["data"]["message"].startswith("Profile " + "a" * 30 + " ")


# -- validation -------------------------------------------------------------------------------
#
# Bad input must be refused before anything touches AWS, so these tests share one
# stack for the module (built once: a fresh one per case would cost ~1 s each).
# The call counter is (re-)registered on the handler's current clients before every
# test, so a client rebuilt by another test in between cannot make a case pass
# vacuously.

_COUNTER_ID = "test-intake-api-validation-counter"


@pytest.fixture(scope="module")
def _shared_stack(
    emulator: Emulator, template: dict[str, Any]
) -> Iterator[tuple[Stack, CallCounter]]:
    with (
        pytest.MonkeyPatch.context() as patch,
        local_stack(emulator, template=template, env=patch) as up,
    ):
        yield up.stack, CallCounter()


@pytest.fixture
def gateway(_shared_stack: tuple[Stack, CallCounter]) -> tuple[LocalApi, CallCounter]:
    stack, counter = _shared_stack
    for client in (aws.dynamodb(), aws.sqs()):
        client.meta.events.register("before-call.*.*", counter, unique_id=_COUNTER_ID)
    counter.reset()
    return LocalApi(stack), counter


@pytest.mark.parametrize(
    "url",
    [
        "/api/profile/%20/request",
        "/api/profile/%40/request",
        "/api/profile/" + "a" * 31 + "/request",
        "/api/profile/nat%20geo/request",
        "/api/profile/%20natgeo/request",
        "/api/profile/natgeo%20/request",
        "/api/profile/na%C3%AFve/request",
        "/api/profile/../request",
        "/api/profile/a..b/request",
        "/api/profile/.natgeo/request",
        "/api/profile/%27/request",
        "/api/profile/nat%3Cgeo%3E/request",
        "/api/profile/natgeo/request?source=robot",
        "/api/profile/natgeo/request?source=",
        "/api/profile/natgeo/request?source=FRONTEND",
        # Characters Powertools' path pattern refuses still get the username's 400.
        "/api/profile/%22quoted%22/request",
        "/api/profile/nat%F0%9F%98%80geo/request",
    ],
)
def test_bad_input_is_400_and_never_reaches_aws(
    gateway: tuple[LocalApi, CallCounter], url: str
) -> None:
    api, aws_calls = gateway
    status, _, body = api.request("POST", url)
    assert status == 400, body
    assert body["success"] is False
    assert set(body) == {"success", "detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"].strip()
    assert aws_calls.calls == []


def test_the_shared_counter_does_see_aws_calls(gateway: tuple[LocalApi, CallCounter]) -> None:
    """Guards the matrix above against passing vacuously: a valid name through the
    same gateway is counted. (Its answer does not matter here: another test may have
    reset the emulator under the shared stack.)"""
    api, aws_calls = gateway
    api.request("POST", "/api/profile/natgeo/request")
    assert "dynamodb.TransactWriteItems" in aws_calls.calls


def test_validation_details_say_what_is_wrong(gateway: tuple[LocalApi, CallCounter]) -> None:
    api, _ = gateway
    details = {
        url: api.request("POST", url)[2]["detail"]
        for url in (
            "/api/profile/%20/request",
            "/api/profile/" + "a" * 31 + "/request",
            "/api/profile/a..b/request",
            "/api/profile/natgeo/request?source=robot",
        )
    }
    assert list(details.values()) == [
        "Username is required",
        "Username too long (max 30 characters)",
        "Username cannot start or end with '.' or contain '..'",
        "Invalid query parameter 'source': Input should be 'frontend', 'api', 'admin', 'crawler' or 'bulk'",
    ]


def test_empty_username_never_reaches_the_function(
    gateway: tuple[LocalApi, CallCounter],
) -> None:
    api, aws_calls = gateway
    # An empty path segment matches no {username} resource, so API Gateway answers
    # itself (403 "Missing Authentication Token", in the template's DEFAULT_4XX
    # envelope) and the function is never invoked. A blank name that does reach it is a 400
    # ("Username is required", test above). Called straight with such an event,
    # the function's router finds no route, yet the resource names a username: 400.
    status, _, body = api.request("POST", "/api/profile//request")
    assert status == 403
    assert body == {"success": False, "detail": "Missing Authentication Token"}
    event = proxy_event(
        "POST",
        "/api/profile//request",
        resource="/api/profile/{username}/request",
        path_parameters={"username": ""},
    )
    result = handler_for("RequestProfileFunction")(event, LocalContext())
    assert result["statusCode"] == 400
    assert json.loads(result["body"]) == {"success": False, "detail": "Username is required"}
    assert aws_calls.calls == []


def test_unknown_route_inside_the_function_is_404_in_the_envelope(
    gateway: tuple[LocalApi, CallCounter],
) -> None:
    api, aws_calls = gateway
    # Through the gateway, an unknown route never reaches the function (403)...
    assert api.request("GET", "/api/profile/natgeo/nothing")[0] == 403
    # ...but a proxy event the app has no route for gets the app's own 404.
    event = proxy_event("GET", "/api/profile/natgeo/nothing", resource="/{proxy+}")
    result = handler_for("RequestProfileFunction")(event, LocalContext())
    assert result["statusCode"] == 404
    body = json.loads(result["body"])
    assert body == {"success": False, "detail": "No route for GET /api/profile/natgeo/nothing"}
    assert aws_calls.calls == []


def test_bulk_request_refuses_a_name_with_a_trailing_newline(api: LocalApi, tables: Tables) -> None:
    status, _, body = api.request(
        "POST", "/api/profile/bulk-request", body={"usernames": ["natgeo\n"]}
    )
    # '$' in a re.match pattern matches before a trailing newline: the rule must not
    # let 'natgeo\n' through as a second key for the profile.
    assert status == 200
    [item] = body["data"]["results"]
    assert item["success"] is False
    assert "invalid characters" in item["error"]
    assert tables.job_count() == 0


# -- failures -----------------------------------------------------------------------------------


def _register(event: str, handler: Callable[..., Any]) -> None:
    aws.dynamodb().meta.events.register(event, handler)


def test_sqs_failure_still_answers_queued_in_fallback_mode(
    api: LocalApi,
    tables: Tables,
    aws_env: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HIGH_QUEUE_URL", f"{aws_env.url}/123456789012/no-such-queue")
    bootstrap.reset()
    status, body = post(api, "natgeo")
    assert status == 200
    data = body["data"]
    assert set(data) == NEW_FIELDS | {"fallback_mode"}
    assert data["queued"] is True
    assert data["fallback_mode"] is True
    assert data["status"] == "pending"
    stored = tables.job("natgeo")
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    assert stored.request_id == data["request_id"]
    assert tables.messages("HighQueue") == []
    assert tables.messages("LowQueue") == []


def test_dynamodb_unreachable_is_503_and_nothing_is_queued(
    api: LocalApi, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB alone points at a closed port; SQS still works, so "no message" is a
    # real check that nothing was sent after the failed write.
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
    aws.reset_clients()
    bootstrap.reset()
    counter = CallCounter()
    aws.dynamodb().meta.events.register("before-call.*.*", counter)
    aws.sqs().meta.events.register("before-call.*.*", counter)
    status, headers, body = api.request("POST", "/api/profile/natgeo/request")
    assert status == 503
    assert body["success"] is False
    assert "nothing was queued" in body["detail"]
    assert headers.get("Retry-After") == "5"
    assert counter.calls == READ
    assert tables.job_count() == 0
    assert tables.messages("HighQueue") == []


def test_throttled_transaction_is_503_and_nothing_is_queued(
    api: LocalApi, tables: Tables, aws_calls: CallCounter
) -> None:
    for code in (
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
    ):
        hook = dynamodb_error(code)
        _register("before-call.dynamodb.TransactWriteItems", hook)
        aws_calls.reset()
        status, headers, body = api.request("POST", "/api/profile/natgeo/request")
        aws.dynamodb().meta.events.unregister("before-call.dynamodb.TransactWriteItems", hook)
        assert status == 503, code
        assert body["success"] is False
        assert "nothing was queued" in body["detail"]
        assert headers.get("Retry-After") == "5"
        assert aws_calls.calls == [*READ, "dynamodb.TransactWriteItems"]
    assert tables.job_count() == 0
    assert tables.messages("HighQueue") == []
    # The same request goes through once DynamoDB accepts writes again.
    status, _, body = api.request("POST", "/api/profile/natgeo/request")
    assert (status, body["data"]["profile_type"]) == (200, "new")


def test_missing_table_is_500_with_the_generic_detail(
    api: LocalApi, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_TABLE", "NoSuchJobsTable")
    bootstrap.reset()
    status, _, body = api.request("POST", "/api/profile/natgeo/request")
    assert status == 500
    assert body == {"success": False, "detail": "Failed to process profile request"}
    assert tables.messages("HighQueue") == []


def test_unexpected_exception_is_500_without_internals(api: LocalApi, tables: Tables) -> None:
    def explode(**_: Any) -> None:
        raise RuntimeError("secret-internal-state at /var/task/viralspot/intake.py line 42")

    _register("before-call.dynamodb.TransactWriteItems", explode)
    status, _, body = api.request("POST", "/api/profile/natgeo/request")
    assert status == 500
    assert body == {"success": False, "detail": "Failed to process profile request"}
    text = json.dumps(body)
    assert "secret" not in text
    assert "Traceback" not in text
    assert tables.job_count() == 0
    assert tables.messages("HighQueue") == []


# -- a rounding bug at the stale boundary ------------------------------------------------------


def test_profile_exactly_at_the_stale_boundary_gets_an_answer(
    api: LocalApi, tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.fromisoformat("2026-11-28T10:00:00.000500+00:00")  # sub-millisecond part
    tables.put_profile(
        username="natgeo",
        tier="primary",
        created_at="2026-01-01T00:00:00.000Z",
        last_scraped_at="2026-11-21T10:00:00.000Z",  # to_iso(now - 7 days)
    )
    settings = bootstrap.services().settings
    # functools.cache keeps `cache_clear`, which the stack fixture's teardown calls.
    fixed = functools.cache(lambda: bootstrap.build(settings, clock=lambda: now))
    monkeypatch.setattr(bootstrap, "services", fixed)
    status, body = post(api, "natgeo")
    assert status == 200, body
