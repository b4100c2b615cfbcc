"""Every job reaches a true end (issue 14), where the adapters matter: the handlers,
DynamoDB's conditions, SSM through Powertools and the RapidAPI adapter's own
classification, on the emulator. The same defects on the fakes:
tests/unit/test_lifecycle.py.

One clock for everything (the API, the worker, the sweeper): `clock` replaces the
container's context with one built on a StepClock, so an hour of sweeps takes a
second and every timestamp the tests compare was written by that clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from aws_lambda_powertools.utilities import parameters
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ReadTimeoutError

from devstack.emulator import Emulator
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.fakes.provider import FakeProvider
from tests.fakes.rapidapi_server import FakeRapidApi, Reply
from tests.integration.test_worker import Scripted, run_worker
from tests.support import StepClock, ask, drain, status_of
from tests.unit.test_rapidapi_provider import profile_body, reels_page
from viralspot import bootstrap
from viralspot.adapters import aws
from viralspot.config import get_settings
from viralspot.errors import ProfileNotFound, ProviderTransient
from viralspot.jobs import Job, JobStatus
from viralspot.pipeline import Result, Worker
from viralspot.ports import Provider
from viralspot.profiles import Profile
from viralspot.providers import rapidapi as rapidapi_module
from viralspot.providers.rapidapi import PROFILE_PATH, REELS_PATH, SIMILAR_PATH, RapidApiProvider

KEY_PARAMETER = "/viralspot/rapidapi-key"


class Deployment:
    """The container's context (used by every handler) built on a clock the test
    moves, from the functions' environment of the moment."""

    def __init__(self) -> None:
        self.clock = StepClock()
        self._patch = pytest.MonkeyPatch()
        self.redeploy()

    def redeploy(self, **variables: str) -> None:
        """The functions' environment changed (a parameter update): every handler
        from now on reads it."""
        for name, value in variables.items():
            self._patch.setenv(name, value)
        get_settings.cache_clear()
        ctx = bootstrap.build(get_settings(), self.clock)
        self._patch.setattr(bootstrap, "services", lambda: ctx)

    def undo(self) -> None:
        self._patch.undo()


@pytest.fixture
def deployment(stack: Stack) -> Iterator[Deployment]:
    deployed = Deployment()
    yield deployed
    deployed.undo()  # before the stack's teardown resets the real wiring


@pytest.fixture
def clock(deployment: Deployment) -> StepClock:
    return deployment.clock


def sweep(stack: Stack) -> dict[str, Any]:
    """One scheduled run of the sweeper's handler."""
    handler = handler_for("RetryFailedFunction", stack.template)
    report: dict[str, Any] = handler({}, LocalContext(function_name="RetryFailedFunction"))
    return report


def deliver(aws_env: Emulator, stack: Stack, queue: str = "HighQueue") -> int:
    """The worker's handler on every message waiting on `queue`; how many there were.
    No record may fail: a systemic fault is recorded on the job, not left to SQS."""
    messages = drain(aws_env, stack.refs[queue])
    if messages:
        assert run_worker(stack, messages, queue) == {"batchItemFailures": []}
    return len(messages)


def stored_job(username: str) -> Job:
    job = bootstrap.services().jobs.get(username)
    assert job is not None
    return job


def worker_with(provider: Provider) -> Worker:
    return bootstrap.services().worker(provider)


def script_healthy(fake: FakeRapidApi, username: str, reels: int = 40) -> None:
    fake.script(PROFILE_PATH, Reply(body=profile_body(username=username, follower_count=5000)))
    fake.script(REELS_PATH, Reply(body=reels_page([f"{username}{i}" for i in range(reels)])))
    fake.script(SIMILAR_PATH, Reply(body=[]))


# -- systemic faults pause, they do not fail -------------------------------------------------


@pytest.fixture
def rapidapi(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRapidApi]:
    """The stack deployed with Provider=rapidapi, its key parameter (in the emulator's
    SSM) not yet created, the provider's HTTPS host replaced by a local fake."""
    deployment.redeploy(PROVIDER="rapidapi", RAPIDAPI_KEY_PARAMETER=KEY_PARAMETER)
    parameters.clear_caches()
    real = rapidapi_module.rapidapi_from_parameters
    with FakeRapidApi() as fake:
        monkeypatch.setattr(
            rapidapi_module,
            "rapidapi_from_parameters",
            lambda name, host: real(name, host, base_url=fake.base_url),
        )
        yield fake
    parameters.clear_caches()


def test_with_the_key_missing_a_job_waits_uncharged_then_completes_once_restored(
    rapidapi: FakeRapidApi, api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    queued = ask(api, "natgeo")
    deliveries = 0
    # An hour of sweeps. The schedule runs every minute; only runs past a grace
    # period since the job last changed can act on it, so one a grace period (and a
    # minute) apart keeps the test short and misses nothing.
    grace = get_settings().pending_grace_minutes
    for _ in range(int(60 // (grace + 1))):
        deliveries += deliver(aws_env, stack)
        clock.advance(minutes=grace + 1)
        sweep(stack)

    job = stored_job("natgeo")
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert job.request_id == queued["request_id"]
    # The sweeper kept handing it to the worker (once per grace period), and every
    # delivery was acknowledged: nothing piles up in the dead-letter queue.
    assert deliveries == int(60 // (grace + 1))
    assert drain(aws_env, stack.refs["HighDeadLetterQueue"]) == []
    assert rapidapi.requests == []  # no key, no call
    waiting = status_of(api, "natgeo")
    assert waiting["status"] == "delayed"
    assert waiting["completed"] is False
    assert waiting["attempts"] == 0
    assert "key" in waiting["delay_reason"]
    assert "key" in waiting["message"]
    again = ask(api, "natgeo")
    assert again["skip_reason"] == "already_in_queue"
    assert again["request_id"] == queued["request_id"]

    aws_env.client("ssm").put_parameter(
        Name=KEY_PARAMETER, Value="restored-key", Type="SecureString", Overwrite=True
    )
    parameters.clear_caches()  # or wait out Powertools' five-minute cache
    script_healthy(rapidapi, "natgeo")
    for _ in range(2):  # its message may have been consumed already: the next re-send
        deliver(aws_env, stack)
        if status_of(api, "natgeo")["status"] == "completed":
            break
        clock.advance(minutes=grace + 1)
        sweep(stack)

    done = status_of(api, "natgeo")
    assert done["status"] == "completed"
    assert done["attempts"] == 1
    assert done["request_id"] == queued["request_id"]
    assert rapidapi.requests[0].headers["x-rapidapi-key"] == "restored-key"


@pytest.mark.parametrize("refused", [401, 403])
def test_a_refused_key_pauses_jobs_and_never_fails_them(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock, refused: int
) -> None:
    with FakeRapidApi() as fake:
        fake.script(
            PROFILE_PATH, Reply(refused, {"message": "You are not subscribed to this API."})
        )
        worker = worker_with(
            RapidApiProvider("revoked", base_url=fake.base_url, sleep=lambda _: None)
        )
        ask(api, "natgeo")
        results = []
        rounds = get_settings().retry.max_attempts + 1  # more deliveries than attempts
        for _ in range(rounds):
            results += [worker.process(m["Body"]) for m in drain(aws_env, stack.refs["HighQueue"])]
            clock.advance(minutes=get_settings().pending_grace_minutes, seconds=1)
            sweep(stack)
        assert results == [Result.PAUSED] * rounds
        job = stored_job("natgeo")
        assert job.status is JobStatus.PENDING
        assert job.attempts == 0
        assert status_of(api, "natgeo")["status"] == "delayed"

        script_healthy(fake, "natgeo")  # the operator renewed the subscription
        results = [worker.process(m["Body"]) for m in drain(aws_env, stack.refs["HighQueue"])]
        assert results == [Result.COMPLETED]
        assert status_of(api, "natgeo")["status"] == "completed"


# -- every state has an exit ------------------------------------------------------------------


class LoseTheClaimsAnswer:
    """Registered on `before-send.dynamodb.UpdateItem`: the first claim reaches
    DynamoDB and succeeds (sent here, with the request botocore signed), but its
    answer is lost on the way back; botocore's own retry then sends it again."""

    def __init__(self) -> None:
        self.sent = 0
        self.lost = 0

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> None:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        if b":lease_id" not in body:
            return  # not a claim (a counter update)
        self.sent += 1
        if self.lost:
            return
        self.lost += 1
        answer = urllib3.request(
            request.method or "POST", request.url or "", body=body, headers=dict(request.headers)
        )
        assert answer.status == 200, answer.data
        raise ReadTimeoutError(endpoint_url=request.url)


@pytest.mark.ddblocal
def test_a_claim_whose_answer_was_lost_is_recognised_as_its_own(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    ask(api, "natgeo")
    [message] = drain(aws_env, stack.refs["HighQueue"])
    lose = LoseTheClaimsAnswer()
    aws.dynamodb().meta.events.register("before-send.dynamodb.UpdateItem", lose)
    try:
        result = worker_with(FakeProvider()).process(message["Body"])
    finally:
        aws.dynamodb().meta.events.unregister("before-send.dynamodb.UpdateItem", lose)
    assert (lose.lost, lose.sent) == (1, 2)  # botocore did send the claim again
    assert result is Result.COMPLETED
    job = stored_job("natgeo")
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1


def test_a_pending_job_past_max_attempts_is_closed_when_its_message_arrives(
    api: LocalApi, stack: Stack, aws_env: Emulator, deployment: Deployment
) -> None:
    ask(api, "natgeo")
    # Two attempts failed; then MaxAttempts was lowered to 2 with the retry queued.
    aws_env.client("dynamodb").update_item(
        TableName=stack.refs["JobsTable"],
        Key={"username": {"S": "natgeo"}},
        UpdateExpression="SET attempts = :two, error_message = :error, error_kind = :kind",
        ExpressionAttributeValues={
            ":two": {"N": "2"},
            ":error": {"S": "HTTP 503"},
            ":kind": {"S": "transient"},
        },
    )
    deployment.redeploy(MAX_ATTEMPTS="2")
    assert deliver(aws_env, stack) == 1
    job = stored_job("natgeo")
    assert job.failed_for_good
    assert job.error_message == "HTTP 503"
    failed = status_of(api, "natgeo")
    assert failed["status"] == "failed"
    assert ask(api, "natgeo")["profile_type"] == "new"  # the name is free again


# -- one answer -------------------------------------------------------------------------------


class DiesAfterStoringTheProfile:
    """The worker's container is killed right after the profile is stored."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def put_primary(self, profile: Profile) -> None:
        self.real.put_primary(profile)
        raise SystemExit("container killed after storing the profile")

    def put_secondaries(self, profiles: Any) -> int:
        raise AssertionError("not reached")


def test_a_last_attempt_dying_after_the_profile_is_stored_completes_and_answers_agree(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    queued = ask(api, "natgeo")
    attempts = get_settings().retry.max_attempts
    flaky = worker_with(Scripted(*(ProviderTransient("HTTP 500") for _ in range(attempts - 1))))
    for _ in range(attempts - 1):
        [message] = drain(aws_env, stack.refs["HighQueue"])
        assert flaky.process(message["Body"]) is Result.RETRY_SCHEDULED
        clock.advance(minutes=30)
        sweep(stack)
    [message] = drain(aws_env, stack.refs["HighQueue"])
    healthy = worker_with(FakeProvider())
    dying = Worker(**{**healthy.__dict__, "profiles": DiesAfterStoringTheProfile(healthy.profiles)})
    with pytest.raises(SystemExit):
        dying.process(message["Body"])
    assert stored_job("natgeo").attempts == attempts  # it was the last one

    clock.advance(seconds=get_settings().lease_seconds + 1)
    report = sweep(stack)

    assert report["repairs"]["completed"] == 1
    job = stored_job("natgeo")
    assert job.status is JobStatus.COMPLETED
    done = status_of(api, "natgeo")
    assert done["status"] == "completed"
    assert done["request_id"] == queued["request_id"]
    assert "error_message" not in done
    assert ask(api, "natgeo")["skip_reason"] == "recently_completed"
    clock.advance(minutes=11)
    assert ask(api, "natgeo")["skip_reason"] == "already_processed"


# -- one spelling -----------------------------------------------------------------------------


def test_the_providers_spelling_is_stored_under_the_requested_name(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    with FakeRapidApi() as fake:
        script_healthy(fake, "NatGeo")  # the provider's own spelling
        worker = worker_with(RapidApiProvider("key", base_url=fake.base_url))
        ask(api, "natgeo")
        [message] = drain(aws_env, stack.refs["HighQueue"])
        assert worker.process(message["Body"]) is Result.COMPLETED

    assert status_of(api, "natgeo")["status"] == "completed"
    code, _, profile = api.request("GET", "/api/profile/natgeo")
    assert code == 200
    assert profile["data"]["username"] == "natgeo"
    _, _, posts = api.request("GET", "/api/profile/natgeo/posts?limit=100")
    assert posts["data"]["count"] == 40
    dynamodb = aws_env.client("dynamodb")
    for table in ("ProfilesTable", "ContentTable"):
        keys = {i["username"]["S"] for i in dynamodb.scan(TableName=stack.refs[table])["Items"]}
        assert keys == {"natgeo"}, table
    assert ask(api, "natgeo")["skip_reason"] == "recently_completed"


# -- crawling never short-changes a person ----------------------------------------------------


def all_posts(api: LocalApi, username: str, sort: str) -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = []
    cursor = ""
    while True:
        _, _, page = api.request(
            "GET", f"/api/profile/{username}/posts?sort={sort}&limit=25{cursor}"
        )
        posts += page["data"]["posts"]
        assert page["data"]["count"] == len(page["data"]["posts"])
        if not page["data"].get("next_cursor"):
            return posts
        cursor = f"&cursor={page['data']['next_cursor']}"


def test_after_a_refresh_with_fewer_reels_posts_serve_exactly_the_analysed_set(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    provider = FakeProvider()
    worker = worker_with(provider)
    ask(api, "natgeo")
    [message] = drain(aws_env, stack.refs["HighQueue"])
    assert worker.process(message["Body"]) is Result.COMPLETED
    assert len(all_posts(api, "natgeo", "popular")) == 100

    clock.advance(days=8)
    provider.new_since["natgeo"] = 20  # twenty new reels, most old ones deleted
    provider.posted["natgeo"] = 60
    assert ask(api, "natgeo")["profile_type"] == "refresh"
    [message] = drain(aws_env, stack.refs["HighQueue"])
    assert worker.process(message["Body"]) is Result.COMPLETED

    _, _, profile = api.request("GET", "/api/profile/natgeo")
    total = profile["data"]["content_stats"]["total_reels"]
    assert total == 60
    for sort in ("popular", "recent", "oldest"):
        posts = all_posts(api, "natgeo", sort)
        assert len(posts) == len({p["shortcode"] for p in posts}) == total, sort
        assert {p["shortcode"] for p in posts} == {f"natgeo-{20 - i}" for i in range(60)}


def test_a_persons_request_for_a_crawled_profile_is_a_full_analysis_and_says_so(
    api: LocalApi, stack: Stack, aws_env: Emulator, clock: StepClock
) -> None:
    provider = FakeProvider()
    worker = worker_with(provider)
    ask(api, "natgeo", source="crawler")
    [message] = drain(aws_env, stack.refs["LowQueue"])
    assert worker.process(message["Body"]) is Result.COMPLETED
    settings = get_settings()
    crawled = status_of(api, "natgeo")
    assert crawled["status"] == "completed"
    assert crawled["analysis"] == "crawl"
    _, _, profile = api.request("GET", "/api/profile/natgeo")
    assert profile["data"]["analysis"] == "crawl"
    assert profile["data"]["content_stats"]["total_reels"] == settings.low_priority_reels_target

    clock.advance(minutes=11)  # past "recently completed"
    upgrade = ask(api, "natgeo", source="api")
    assert upgrade["queued"] is True
    assert upgrade["upgraded"] is True
    assert upgrade["profile_type"] == "upgrade"
    assert upgrade["priority"] == "MEDIUM"
    assert "crawl depth" in upgrade["message"]
    [message] = drain(aws_env, stack.refs["MediumQueue"])
    assert json.loads(message["Body"])["request_id"] == upgrade["request_id"]
    assert worker.process(message["Body"]) is Result.COMPLETED

    full = status_of(api, "natgeo")
    assert full["analysis"] == "full"
    _, _, profile = api.request("GET", "/api/profile/natgeo")
    assert profile["data"]["analysis"] == "full"
    assert profile["data"]["content_stats"]["total_reels"] == settings.reels_target
    assert len(all_posts(api, "natgeo", "recent")) == settings.reels_target


# -- dead letters are part of the record --------------------------------------------------------


def test_fix_the_cause_then_redrive_reruns_jobs_whose_retries_ran_out(
    api: LocalApi, stack: Stack, aws_env: Emulator, deployment: Deployment, clock: StepClock
) -> None:
    deployment.redeploy(MAX_ATTEMPTS="1")
    ask(api, "natgeo")
    ask(api, "nasa", source="crawler")
    ask(api, "gone")
    # natgeo's one attempt fails (transient: its retries are used up), nasa's too; gone's
    # fails for good (the account does not exist).
    faults = {
        "natgeo": ProviderTransient("HTTP 500"),
        "nasa": ProviderTransient("HTTP 502"),
        "gone": ProfileNotFound("no such user"),
    }
    messages = drain(aws_env, stack.refs["HighQueue"]) + drain(aws_env, stack.refs["LowQueue"])
    assert len(messages) == 3
    for message in messages:
        fault = faults[json.loads(message["Body"])["username"]]
        assert worker_with(Scripted(fault)).process(message["Body"]) is Result.FAILED
    exhausted = status_of(api, "natgeo")
    assert exhausted["status"] == "failed"
    # The status names the way out the operator has (and a missing profile has not).
    assert "redrive re-runs it" in exhausted["message"]
    assert "redrive" not in status_of(api, "gone")["message"]
    aws_env.client("sqs").send_message(
        QueueUrl=stack.refs["HighDeadLetterQueue"],
        MessageBody=json.dumps(
            {"username": "natgeo", "request_id": stored_job("natgeo").request_id}
        ),
    )

    # The cause is fixed, then the operator redrives.
    clock.advance(minutes=5)
    code, _, body = api.request("POST", "/api/viral-ideas/redrive", admin=True)

    assert code == 200, body
    assert body["data"]["moved"] == {"high": 1, "medium": 0, "low": 0}
    reopened = body["data"]["reopened"]
    assert (reopened["dispatched"], reopened["has_more"]) == (2, False)
    for name in ("natgeo", "nasa"):
        job = stored_job(name)
        assert (job.status, job.attempts, job.error_message) == (
            JobStatus.PENDING,
            0,
            "HTTP 500" if name == "natgeo" else "HTTP 502",
        )
        waiting = status_of(api, name)
        assert waiting["status"] == "pending"
        assert waiting["previous_error"] == job.error_message
    # A profile that does not exist stays failed: no redrive makes it exist.
    assert stored_job("gone").failed_for_good
    assert status_of(api, "gone")["status"] == "failed"
    # The moved dead letter and the new message are one claim between them.
    assert deliver(aws_env, stack, "HighQueue") == 2
    deliver(aws_env, stack, "LowQueue")  # nasa, and the names natgeo's analysis discovered
    for name in ("natgeo", "nasa"):
        assert stored_job(name).status is JobStatus.COMPLETED
        assert status_of(api, name)["status"] == "completed"
    # Nothing left to re-open: a second redrive writes no job.
    _, _, again = api.request("POST", "/api/viral-ideas/redrive", admin=True)
    assert again["data"]["reopened"]["examined"] == 0
