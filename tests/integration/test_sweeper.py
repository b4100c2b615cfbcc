"""Fault injection: each gap the sweeper closes, with an injected clock (no sleeps)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from devstack.emulator import Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.support import StepClock, ask, drain
from viralspot import bootstrap, sweeper
from viralspot.config import get_settings
from viralspot.errors import DispatchFailed, ProviderTransient
from viralspot.jobs import Job, JobStatus, Source
from viralspot.pipeline import Result, Worker
from viralspot.providers import ProviderProfile, ProviderReel
from viralspot.providers.sample import SampleProvider
from viralspot.sweeper import Repair, SweepReport


def run_sweep(clock: StepClock) -> SweepReport:
    ctx = bootstrap.build(get_settings(), clock)
    return ctx.sweep()


def worker(provider: Any, clock: StepClock) -> Worker:
    return bootstrap.build(get_settings(), clock).worker(provider)


def job(username: str) -> Job:
    found = bootstrap.services().jobs.get(username)
    assert found is not None
    return found


@pytest.mark.ddblocal
def test_send_failed_at_intake_is_dispatched_by_the_next_sweep_after_grace(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Any, job: Job) -> None:
        raise DispatchFailed("SQS unavailable")

    with monkeypatch.context() as patch:
        patch.setattr("viralspot.adapters.sqs_dispatcher.SqsDispatcher.dispatch", refuse)
        answer = ask(api, "natgeo")
    assert answer["queued"] is True
    assert answer["fallback_mode"] is True
    assert drain(aws_env, stack.refs["HighQueue"]) == []

    clock = StepClock()
    assert run_sweep(clock).repairs[Repair.REDISPATCHED] == 0  # still within the grace period
    assert drain(aws_env, stack.refs["HighQueue"]) == []

    clock.advance(minutes=get_settings().pending_grace_minutes, seconds=1)
    assert run_sweep(clock).repairs[Repair.REDISPATCHED] == 1
    sent = drain(aws_env, stack.refs["HighQueue"])
    assert [json.loads(m["Body"])["request_id"] for m in sent] == [answer["request_id"]]
    # Dispatched once: the next sweep within the grace period leaves it alone.
    clock.advance(seconds=30)
    assert run_sweep(clock).repairs[Repair.REDISPATCHED] == 0

    clock.advance(minutes=10)
    assert worker(SampleProvider(), clock).process(sent[0]["Body"]) is Result.COMPLETED


class Crash(BaseException):  # a death, not an error: no `except Exception` stops it
    pass


class DiesAfterProfile:
    """The sample provider, except the container dies after fetching the reels."""

    name = "sample"

    def __init__(self) -> None:
        self.sample = SampleProvider()

    def fetch_profile(self, username: str) -> ProviderProfile:
        return self.sample.fetch_profile(username)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        raise Crash("killed")

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return []


@pytest.mark.ddblocal
def test_worker_dies_then_lease_expiry_retry_completes_once(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    ask(api, "natgeo")
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    clock = StepClock()
    with pytest.raises(Crash):
        worker(DiesAfterProfile(), clock).process(body)
    assert job("natgeo").status is JobStatus.PROCESSING

    clock.advance(seconds=get_settings().lease_seconds - 1)
    assert run_sweep(clock).repairs[Repair.LEASE_EXPIRED] == 0  # lease still live
    clock.advance(seconds=2)
    assert run_sweep(clock).repairs[Repair.LEASE_EXPIRED] == 1
    failed = job("natgeo")
    assert failed.status is JobStatus.FAILED
    assert failed.next_retry_at == clock.now + timedelta(minutes=2)
    assert "lease expired" in (failed.error_message or "")

    clock.advance(minutes=2)
    assert run_sweep(clock).repairs[Repair.RETRIED] == 1
    resent = drain(aws_env, stack.refs["HighQueue"])
    assert len(resent) == 1
    assert worker(SampleProvider(), clock).process(resent[0]["Body"]) is Result.COMPLETED
    done = job("natgeo")
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 2
    content = aws_env.client("dynamodb").query(
        TableName=stack.refs["ContentTable"],
        KeyConditionExpression="username = :u",
        ExpressionAttributeValues={":u": {"S": "natgeo"}},
        Select="COUNT",
    )
    assert content["Count"] == 100


class RateLimitedTwice:
    name = "sample"

    def __init__(self) -> None:
        self.sample = SampleProvider()
        self.calls = 0

    def fetch_profile(self, username: str) -> ProviderProfile:
        self.calls += 1
        if self.calls <= 2:
            raise ProviderTransient("HTTP 429 Too Many Requests")
        return self.sample.fetch_profile(username)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        return self.sample.fetch_reels(username, target)

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return []


def test_rate_limited_twice_completes_on_third_attempt_after_2_and_4_minutes(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    ask(api, "natgeo")
    clock = StepClock()
    provider = RateLimitedTwice()
    run = worker(provider, clock)
    delays = []
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    for _ in range(2):
        failed_at = clock.now
        assert run.process(body) is Result.RETRY_SCHEDULED
        due = job("natgeo").next_retry_at
        assert due is not None
        delays.append(due - failed_at)
        clock.now = due - timedelta(seconds=1)
        assert run_sweep(clock).repairs[Repair.RETRIED] == 0  # not yet due
        clock.now = due
        assert run_sweep(clock).repairs[Repair.RETRIED] == 1
        body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    assert delays == [timedelta(minutes=2), timedelta(minutes=4)]
    assert run.process(body) is Result.COMPLETED
    assert job("natgeo").attempts == 3
    assert provider.calls == 3


@pytest.mark.ddblocal
def test_not_found_fails_at_once_and_is_never_retried(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    ask(api, "sample_notfound")
    clock = StepClock()
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    assert worker(SampleProvider(), clock).process(body) is Result.FAILED
    for minutes in (1, 5, 60, 24 * 60):
        clock.advance(minutes=minutes)
        report = run_sweep(clock)
        assert report.examined == 0
    assert drain(aws_env, stack.refs["HighQueue"]) == []
    _, _, status = api.request("GET", "/api/profile/sample_notfound/status")
    assert status["data"]["status"] == "failed"
    assert status["data"]["error_kind"] == "permanent"


@pytest.mark.ddblocal
def test_lease_expired_on_last_attempt_fails_for_good(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    ask(api, "natgeo")
    clock = StepClock()
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    for attempt in range(1, 4):
        with pytest.raises(Crash):
            worker(DiesAfterProfile(), clock).process(body)
        clock.advance(seconds=get_settings().lease_seconds + 1)
        report = run_sweep(clock)
        if attempt < 3:
            assert report.repairs[Repair.LEASE_EXPIRED] == 1
            clock.now = job("natgeo").next_retry_at or clock.now
            assert run_sweep(clock).repairs[Repair.RETRIED] == 1
            body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
        else:
            assert report.repairs[Repair.FAILED_FOR_GOOD] == 1
    final = job("natgeo")
    assert final.failed_for_good
    assert final.attempts == 3
    # A new request for a job FAILED for good starts a fresh one.
    fresh = ask(api, "natgeo")
    assert fresh["profile_type"] == "new"
    assert fresh["request_id"] != final.request_id


def unsent(api: LocalApi, monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Request `names` while SQS refuses every send: stored jobs with no message."""

    def refuse(self: Any, job: Job) -> None:
        raise DispatchFailed("SQS unavailable")

    with monkeypatch.context() as patch:
        patch.setattr("viralspot.adapters.sqs_dispatcher.SqsDispatcher.dispatch", refuse)
        for name in names:
            assert ask(api, name)["fallback_mode"] is True


@pytest.mark.ddblocal
def test_two_sweeps_at_once_dispatch_a_due_job_once(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsent(api, monkeypatch, "alpha", "bravo", "charlie")
    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes + 1)

    # Both sweeps read the due jobs before either writes: the race is real, not luck.
    barrier = threading.Barrier(2)
    ctx = bootstrap.build(get_settings(), clock)

    class ReadThenWait:
        def __getattr__(self, name: str) -> Any:
            return getattr(ctx.jobs, name)

        def due(self, *args: Any, **kwargs: Any) -> Any:
            jobs = list(ctx.jobs.due(*args, **kwargs))
            if jobs:
                barrier.wait(timeout=10)
            return iter(jobs)

    reports: list[SweepReport] = []

    def run() -> None:
        reports.append(
            sweeper.sweep(
                store=ReadThenWait(),
                dispatcher=ctx.queues,
                policy=ctx.sweep_policy,
                clock=clock,
            )
        )

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sum(r.repairs[Repair.REDISPATCHED] for r in reports) == 3
    assert sum(r.repairs[Repair.RACE_LOST] for r in reports) == 3
    sent = [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])]
    assert sorted(sent) == ["alpha", "bravo", "charlie"]


@pytest.mark.ddblocal
def test_sweep_work_is_bounded_per_run(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsent(api, monkeypatch, *(f"user_{i}" for i in range(7)))
    monkeypatch.setenv("SWEEP_MAX_JOBS", "3")
    bootstrap.reset()
    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes + 1)
    first = run_sweep(clock)
    assert first.examined == 3
    assert first.stopped_early is True
    second = run_sweep(clock)
    third = run_sweep(clock)
    assert second.examined + third.examined == 4
    assert len(drain(aws_env, stack.refs["HighQueue"])) == 7


def test_sweep_stops_when_the_invocation_runs_out_of_time(
    api: LocalApi, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsent(api, monkeypatch, "natgeo")
    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes + 1)
    ctx = bootstrap.build(get_settings(), clock)
    report = ctx.sweep(
        time_left_ms=lambda: 5_000,
    )
    assert report.stopped_early is True
    assert report.examined == 0


def test_retry_due_after_max_attempts_was_lowered_fails_for_good(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask(api, "natgeo")
    clock = StepClock()
    body = drain(aws_env, stack.refs["HighQueue"])[0]["Body"]
    provider = RateLimitedTwice()
    assert worker(provider, clock).process(body) is Result.RETRY_SCHEDULED
    # The operator lowers MaxAttempts to 1 while the retry waits.
    monkeypatch.setenv("MAX_ATTEMPTS", "1")
    bootstrap.reset()
    clock.now = job("natgeo").next_retry_at or clock.now
    assert run_sweep(clock).repairs[Repair.FAILED_FOR_GOOD] == 1
    final = job("natgeo")
    assert final.failed_for_good
    assert final.error_message == "HTTP 429 Too Many Requests"
    assert drain(aws_env, stack.refs["HighQueue"]) == []


def crawl(*names: str) -> None:
    """Queue `names` as discovery does: LOW, no position; a job and a message each."""
    ctx = bootstrap.services()
    for name in names:
        ctx.intake(
            name,
            Source.CRAWLER,
            depth=1,
            discovered_from="seed",
            with_position=False,
        )


def waiting_messages(aws_env: Emulator, url: str) -> int:
    attributes = aws_env.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


# Waiting crawler jobs with a message: five times what one sweep examines below.
BACKLOG = 100
SWEEP_LIMIT = 20


@pytest.mark.ddblocal
def test_a_sweep_behind_a_crawler_backlog_resends_nothing_queued_and_sends_a_lost_high_job(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEP_MAX_JOBS", str(SWEEP_LIMIT))
    bootstrap.reset()
    crawl(*(f"crawled_{i}" for i in range(BACKLOG)))
    with monkeypatch.context() as patch:  # crawled jobs whose send failed
        patch.setattr("viralspot.adapters.sqs_dispatcher.SqsDispatcher.dispatch", refuse)
        crawl(*(f"lost_low_{i}" for i in range(30)))
    unsent(api, monkeypatch, "person")  # a person's job whose send failed
    assert waiting_messages(aws_env, stack.refs["LowQueue"]) == BACKLOG

    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes + 1)
    first = run_sweep(clock)
    # The lost HIGH job goes out in the first run, whatever waits at LOW.
    sent_high = [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])]
    assert sent_high == ["person"]
    assert first.examined == SWEEP_LIMIT
    assert first.repairs[Repair.REDISPATCHED] == SWEEP_LIMIT
    low = Counter(json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["LowQueue"]))
    # The queued backlog is as it was (one message each, none added); the rest of the
    # run went to lost LOW jobs, each sent once.
    assert {n: c for n, c in low.items() if n.startswith("crawled_")} == {
        f"crawled_{i}": 1 for i in range(BACKLOG)
    }
    lost_sent = {n for n in low if n.startswith("lost_low_")}
    assert len(lost_sent) == SWEEP_LIMIT - 1
    assert all(low[n] == 1 for n in lost_sent)

    # Later runs finish the lost jobs and still add nothing for the queued ones.
    later: Counter[str] = Counter()
    for _ in range(3):
        clock.advance(minutes=1)
        run_sweep(clock)
        later.update(
            json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["LowQueue"])
        )
    assert set(later) == {f"lost_low_{i}" for i in range(30)} - lost_sent
    assert set(later.values()) == {1}
    assert drain(aws_env, stack.refs["HighQueue"]) == []


@pytest.mark.ddblocal
def test_a_medium_request_behind_a_crawler_backlog_has_no_low_message_ahead(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    crawl(*(f"crawled_{i}" for i in range(BACKLOG)))
    _, _, body = api.request("POST", "/api/profile/api_user/request?source=api")
    answer = body["data"]
    assert answer["priority"] == "MEDIUM"
    # Crawling is not ahead of it: not in its position, not on its queue.
    assert answer["queue_position"] == 1
    assert answer["estimated_time"] == "1-2 minutes"
    medium = [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["MediumQueue"])]
    assert medium == ["api_user"]
    assert waiting_messages(aws_env, stack.refs["LowQueue"]) == BACKLOG


def refuse(self: Any, job: Job) -> None:
    raise DispatchFailed("SQS unavailable")
