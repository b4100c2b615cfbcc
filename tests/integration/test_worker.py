"""The worker under the emulator: SQS events in, profiles, reels and jobs out."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from devstack.emulator import Emulator
from devstack.invoke import LocalApi, handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.events import sqs_event_for_bodies
from tests.support import StepClock, drain, run_worker
from viralspot import bootstrap, pipeline
from viralspot.config import get_settings
from viralspot.errors import ProviderTransient
from viralspot.jobs import JobStatus
from viralspot.pipeline import Result, Worker
from viralspot.ports import Provider
from viralspot.profiles import Profile, Tier
from viralspot.providers import ProviderProfile, ProviderReel
from viralspot.providers.sample import SampleProvider


def count_items(aws_env: Emulator, table: str, username: str) -> int:
    response = aws_env.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="username = :u",
        ExpressionAttributeValues={":u": {"S": username}},
        Select="COUNT",
    )
    return int(response["Count"])


def make_worker(provider: Provider, clock: Callable[[], datetime]) -> Worker:
    ctx = bootstrap.build(get_settings(), clock)
    return ctx.worker(provider)


@pytest.mark.ddblocal
def test_request_to_processed_profile_end_to_end(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    _, _, queued = api.request("POST", "/api/profile/natgeo/request")
    messages = drain(aws_env, stack.refs["HighQueue"])
    assert len(messages) == 1

    result = run_worker(stack, messages, "HighQueue")
    assert result == {"batchItemFailures": []}

    _, _, status = api.request("GET", "/api/profile/natgeo/status")
    assert status["data"]["status"] == "completed"
    assert status["data"]["completed"] is True
    assert status["data"]["attempts"] == 1
    assert status["data"]["request_id"] == queued["data"]["request_id"]

    code, _, profile = api.request("GET", "/api/profile/natgeo")
    assert code == 200
    data = profile["data"]
    assert data["tier"] == "primary"
    assert data["data_source"] == "sample"
    assert data["content_stats"]["total_reels"] == 100
    assert data["content_stats"]["reels_5x"] >= 1
    assert data["last_scraped_at"]
    assert len(data["similar_usernames"]) == 5

    code, _, page = api.request("GET", "/api/profile/natgeo/posts?sort=popular&limit=10")
    assert code == 200
    posts = page["data"]["posts"]
    assert len(posts) == 10
    ranking = [(p["outlier_score"], p["view_count"]) for p in posts]
    assert ranking == sorted(ranking, reverse=True)
    assert posts[0]["outlier_score"] >= 5
    assert page["data"]["next_cursor"]

    # Paging through every post with the cursor visits each reel exactly once.
    seen = [p["shortcode"] for p in posts]
    cursor = page["data"]["next_cursor"]
    while cursor:
        _, _, page = api.request(
            "GET", f"/api/profile/natgeo/posts?sort=popular&limit=30&cursor={cursor}"
        )
        seen.extend(p["shortcode"] for p in page["data"]["posts"])
        cursor = page["data"].get("next_cursor")
    assert len(seen) == len(set(seen)) == 100

    _, _, recent = api.request("GET", "/api/profile/natgeo/posts?sort=recent&limit=100")
    taken = [p["taken_at"] for p in recent["data"]["posts"]]
    assert taken == sorted(taken, reverse=True)
    _, _, oldest = api.request("GET", "/api/profile/natgeo/posts?sort=oldest&limit=5")
    assert [p["taken_at"] for p in oldest["data"]["posts"]] == sorted(taken)[:5]

    _, _, similar = api.request("GET", "/api/profile/natgeo/similar")
    names = {p["username"] for p in similar["data"]["similar"]}
    assert names == set(data["similar_usernames"])
    assert all(p["tier"] == "secondary" for p in similar["data"]["similar"])

    # Discovery queued each similar profile at LOW priority on the low queue.
    discovered = [json.loads(m["Body"]) for m in drain(aws_env, stack.refs["LowQueue"])]
    assert {d["username"] for d in discovered} == names
    assert {d["priority"] for d in discovered} == {"LOW"}
    assert {d["depth"] for d in discovered} == {1}

    # Asking again now: recently completed, nothing new queued.
    _, _, again = api.request("POST", "/api/profile/natgeo/request")
    assert again["data"]["skip_reason"] == "recently_completed"


def test_discovered_profile_does_not_discover_further_and_is_upgraded(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    run_worker(stack, drain(aws_env, stack.refs["HighQueue"]), "HighQueue")
    low = drain(aws_env, stack.refs["LowQueue"])
    assert len(low) == 5
    run_worker(stack, low[:1], "LowQueue")
    child = json.loads(low[0]["Body"])["username"]
    _, _, profile = api.request("GET", f"/api/profile/{child}")
    assert profile["data"]["tier"] == "primary"
    assert profile["data"]["content_stats"]["total_reels"] == 30  # LOW target
    # depth 1 = DiscoveryMaxDepth: its own similar profiles are stored, not queued.
    assert drain(aws_env, stack.refs["LowQueue"]) == []


@pytest.mark.ddblocal
def test_secondary_never_overwrites_a_primary(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    run_worker(stack, drain(aws_env, stack.refs["HighQueue"]), "HighQueue")
    similar = json.loads(drain(aws_env, stack.refs["LowQueue"])[0]["Body"])["username"]
    # Process the similar profile as a person's request would, then process natgeo again:
    # its similar list names the now-primary profile, which must stay primary.
    api.request("POST", f"/api/profile/{similar}/request")
    run_worker(stack, drain(aws_env, stack.refs["HighQueue"]), "HighQueue")
    profiles = bootstrap.services().profiles
    primary = profiles.get(similar)
    assert primary is not None
    assert primary.tier is Tier.PRIMARY
    written = profiles.put_secondaries(
        [primary.model_copy(update={"tier": Tier.SECONDARY}), secondary_profile("brand_new")]
    )
    assert written == 1  # only the unknown one
    _, _, profile = api.request("GET", f"/api/profile/{similar}")
    assert profile["data"]["tier"] == "primary"
    assert profile["data"]["content_stats"]["total_reels"] == 100
    fresh = profiles.get("brand_new")
    assert fresh is not None
    assert fresh.tier is Tier.SECONDARY


def secondary_profile(username: str) -> Profile:
    return Profile(username=username, tier=Tier.SECONDARY, discovered_from="natgeo")


@pytest.mark.ddblocal
def test_duplicate_delivery_runs_once(api: LocalApi, stack: Stack, aws_env: Emulator) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    message = drain(aws_env, stack.refs["HighQueue"])[0]
    clock = StepClock()
    worker = make_worker(SampleProvider(), clock)
    results: list[Result] = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        results.append(worker.process(message["Body"]))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Result.COMPLETED, Result.NOT_CLAIMED])
    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1


@pytest.mark.ddblocal
def test_old_request_id_and_finished_job_are_acknowledged(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    message = drain(aws_env, stack.refs["HighQueue"])[0]
    stale = json.dumps({"username": "natgeo", "request_id": "000000000000", "priority": "HIGH"})
    result = run_worker(
        stack,
        [message, {"MessageId": "old", "ReceiptHandle": "old", "Body": stale}],
        "HighQueue",
    )
    assert result == {"batchItemFailures": []}
    # The same message again after completion: acknowledged, not failed, not re-run.
    assert run_worker(stack, [message], "HighQueue") == {"batchItemFailures": []}
    _, _, status = api.request("GET", "/api/profile/natgeo/status")
    assert status["data"]["attempts"] == 1


def test_malformed_message_is_acknowledged_with_error_log(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[str] = []
    monkeypatch.setattr(pipeline.logger, "error", lambda msg, *a, **k: logged.append(msg))
    handler = handler_for("ProcessProfileFunction", stack.template)
    event = sqs_event_for_bodies(["not json", '{"username": 3}'], stack.arns["HighQueue"])
    assert handler(event, LocalContext()) == {"batchItemFailures": []}
    assert logged == ["malformed job message dropped"] * 2


class CrashingContent:
    """Writes the first batch of reels, then the container dies."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def put_reels(self, username: str, reels: Any, data_source: str, **feed: Any) -> None:
        self.real.put_reels(username, reels[:25], data_source, **feed)
        raise SystemExit("container killed mid-pipeline")


@pytest.mark.ddblocal
def test_crash_mid_pipeline_is_completed_by_next_delivery_after_lease(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    clock = StepClock()
    healthy = make_worker(SampleProvider(), clock)
    crashing = Worker(**{**healthy.__dict__, "content": CrashingContent(healthy.content)})
    with pytest.raises(SystemExit):
        crashing.process(body)

    # Redelivered before the lease expires: the live lease wins, nothing runs.
    clock.advance(seconds=60)
    assert healthy.process(body) is Result.NOT_CLAIMED
    # After the lease: the attempt is taken over and completes.
    clock.advance(seconds=get_settings().lease_seconds)
    assert healthy.process(body) is Result.COMPLETED

    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    assert count_items(aws_env, stack.refs["ContentTable"], "natgeo") == 100
    assert count_items(aws_env, stack.refs["ProfilesTable"], "natgeo") == 1


class Scripted:
    """A provider whose fetch_profile fails as told, then delegates to the sample."""

    name = "scripted"

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.sample = SampleProvider()
        self.calls = 0

    def fetch_profile(self, username: str) -> ProviderProfile:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.sample.fetch_profile(username)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        return self.sample.fetch_reels(username, target)

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return self.sample.fetch_similar(username, limit)


def test_transient_failure_schedules_retry_with_backoff(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    clock = StepClock()
    worker = make_worker(Scripted(ProviderTransient("HTTP 429 rate limited")), clock)
    assert worker.process(body) is Result.RETRY_SCHEDULED
    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.next_retry_at == clock.now + timedelta(minutes=2)
    assert job.error_kind == "transient"

    _, _, status = api.request("GET", "/api/profile/natgeo/status")
    data = status["data"]
    assert data["status"] == "failed"
    assert data["attempts"] == 1
    assert data["error_message"] == "HTTP 429 rate limited"
    assert data["next_retry_at"]
    # While a retry is scheduled, a new request does not start a second job.
    _, _, again = api.request("POST", "/api/profile/natgeo/request")
    assert again["data"]["skip_reason"] == "already_in_queue"
    assert again["data"]["request_id"] == data["request_id"]


def test_permanent_failure_fails_at_once_and_new_request_starts_fresh(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/sample_notfound/request")
    message = drain(aws_env, stack.refs["HighQueue"])
    assert run_worker(stack, message, "HighQueue") == {"batchItemFailures": []}
    _, _, status = api.request("GET", "/api/profile/sample_notfound/status")
    data = status["data"]
    assert data["status"] == "failed"
    assert data["error_kind"] == "permanent"
    assert "next_retry_at" not in data
    assert data["attempts"] == 1

    _, _, again = api.request("POST", "/api/profile/sample_notfound/request")
    assert again["data"]["profile_type"] == "new"
    assert again["data"]["request_id"] != data["request_id"]


@pytest.mark.ddblocal
def test_third_transient_failure_is_final(api: LocalApi, stack: Stack, aws_env: Emulator) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    clock = StepClock()
    provider = Scripted(*(ProviderTransient("HTTP 503") for _ in range(3)))
    worker = make_worker(provider, clock)
    jobs = bootstrap.services().jobs

    assert worker.process(body) is Result.RETRY_SCHEDULED
    first = jobs.get("natgeo")
    assert first is not None
    assert first.next_retry_at == clock.now + timedelta(minutes=2)

    # Stand-in for the sweeper (its own tests cover it): back to PENDING when due.
    clock.now = first.next_retry_at
    _requeue(aws_env, stack, "natgeo")
    assert worker.process(body) is Result.RETRY_SCHEDULED
    second = jobs.get("natgeo")
    assert second is not None
    assert second.next_retry_at == clock.now + timedelta(minutes=4)

    clock.now = second.next_retry_at
    _requeue(aws_env, stack, "natgeo")
    assert worker.process(body) is Result.FAILED
    final = jobs.get("natgeo")
    assert final is not None
    assert final.attempts == 3
    assert final.next_retry_at is None
    assert final.error_message == "HTTP 503"
    assert provider.calls == 3


def _requeue(aws_env: Emulator, stack: Stack, username: str) -> None:
    aws_env.client("dynamodb").update_item(
        TableName=stack.refs["JobsTable"],
        Key={"username": {"S": username}},
        UpdateExpression="SET #s = :p REMOVE next_retry_at",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":p": {"S": "PENDING"}},
    )


def test_storage_failure_reports_the_record_for_redelivery(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    messages = drain(aws_env, stack.refs["HighQueue"])
    malformed = {"MessageId": "bad", "ReceiptHandle": "bad", "Body": "{}"}
    monkeypatch.setenv("JOBS_TABLE", "NoSuchTable")
    bootstrap.reset()
    # One record fails, one is acknowledged: only the failed one is reported.
    result = run_worker(stack, [*messages, malformed], "HighQueue")
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    # Every record failing fails the invocation, so SQS retries the whole batch.
    with pytest.raises(BatchProcessingError):
        run_worker(stack, messages, "HighQueue")


class Buggy(Scripted):
    """An adapter with a bug: it raises something that is not a ProviderError."""

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        raise KeyError("play_count")


def test_an_unexpected_error_is_recorded_at_once_not_at_lease_expiry(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    clock = StepClock()
    assert make_worker(Buggy(), clock).process(body) is Result.RETRY_SCHEDULED
    job = bootstrap.services().jobs.get("natgeo")
    assert job is not None
    assert job.status is JobStatus.FAILED
    assert job.error_message == "unexpected error: KeyError: 'play_count'"
    assert job.next_retry_at == clock.now + timedelta(minutes=2)


class HostileSimilar(SampleProvider):
    """The sample provider, except that its similar profiles are what a hostile or
    broken provider might name."""

    NAMES = ("Bob", "<script>", "a/b", "NatGeo", "bob", "x" * 40, "ok.name", "", "..", "@Carol")

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return [ProviderProfile(username=name) for name in self.NAMES]


def test_provider_names_become_keys_only_through_the_username_rule(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    message = drain(aws_env, stack.refs["HighQueue"])[0]
    worker = make_worker(HostileSimilar(), StepClock())
    assert worker.process(message["Body"]) is Result.COMPLETED

    canonical = {"bob", "ok.name", "carol"}
    _, _, profile = api.request("GET", "/api/profile/natgeo")
    assert set(profile["data"]["similar_usernames"]) == canonical
    queued = {json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["LowQueue"])}
    assert queued == canonical
    scanned = aws_env.client("dynamodb").scan(TableName=stack.refs["ProfilesTable"])["Items"]
    assert {item["username"]["S"] for item in scanned} == canonical | {"natgeo"}
