"""DESIGN.md "Conflicts are weather, not errors": every write of the intake, the
worker and the sweeper meets a transaction conflict on its first try (as real
DynamoDB answers while a transaction holds the item; moto never does). Every
request still answers 200, every job completes on its first attempt, and nothing
is stored or sent twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator import Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.support import ConflictInjector, StepClock, ask, drain
from viralspot import bootstrap, sweeper
from viralspot.adapters import aws
from viralspot.config import get_settings
from viralspot.errors import DispatchFailed
from viralspot.jobs import Job, JobStatus, Priority
from viralspot.pipeline import Result
from viralspot.providers.sample import SampleProvider


@pytest.fixture
def conflicts(stack: Stack) -> Iterator[ConflictInjector]:
    injector = ConflictInjector()
    aws.dynamodb().meta.events.register("before-call.dynamodb.*", injector)
    yield injector
    aws.dynamodb().meta.events.unregister("before-call.dynamodb.*", injector)


def stored(name: str) -> Job:
    job = bootstrap.services().jobs.get(name)
    assert job is not None
    return job


def test_intake_answers_every_request_through_conflicts(
    api: LocalApi, stack: Stack, aws_env: Emulator, conflicts: ConflictInjector
) -> None:
    first = ask(api, "natgeo")
    assert first["profile_type"] == "new"
    assert first.get("fallback_mode") is None
    again = ask(api, "natgeo")
    assert again["skip_reason"] == "already_in_queue"
    assert again["request_id"] == first["request_id"]
    # A crawler job raised by a person: the raise is a transaction too.
    ask(api, "nasa", "crawler")
    raised = ask(api, "nasa", "frontend")
    assert raised["upgraded"] is True
    assert raised["priority"] == "HIGH"
    # The transaction (create, raise) and the send's record (update) met conflicts.
    assert conflicts.injected["TransactWriteItems"] >= 3
    assert conflicts.injected["UpdateItem"] >= 2
    high = [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])]
    assert sorted(high) == ["nasa", "natgeo"]
    assert [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["LowQueue"])] == [
        "nasa"
    ]
    assert stored("natgeo").dispatched_at is not None


def test_worker_completes_on_its_first_attempt_through_conflicts(
    api: LocalApi, stack: Stack, aws_env: Emulator, conflicts: ConflictInjector
) -> None:
    request_id = ask(api, "natgeo")["request_id"]
    (message,) = drain(aws_env, stack.refs["HighQueue"])
    conflicts.injected.clear()
    worker = bootstrap.services().worker(SampleProvider())
    assert worker.process(message["Body"]) is Result.COMPLETED
    job = stored("natgeo")
    assert (job.status, job.attempts, job.request_id) == (JobStatus.COMPLETED, 1, request_id)
    # Claim and finish, the profile, its reels, the secondaries and the discovered jobs.
    assert {"UpdateItem", "PutItem", "BatchWriteItem", "TransactWriteItems"} <= set(
        conflicts.injected
    )
    profile = bootstrap.services().profiles.get("natgeo")
    assert profile is not None
    assert profile.content_stats is not None
    # Discovery queued each similar profile once, at LOW.
    discovered = [json.loads(m["Body"]) for m in drain(aws_env, stack.refs["LowQueue"])]
    assert sorted(m["username"] for m in discovered) == sorted(profile.similar_usernames)
    assert {m["priority"] for m in discovered} <= {Priority.LOW.value}


def test_sweeper_repairs_through_conflicts(
    api: LocalApi,
    stack: Stack,
    aws_env: Emulator,
    conflicts: ConflictInjector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Any, job: Job) -> None:
        raise DispatchFailed("SQS unavailable")

    with monkeypatch.context() as patch:
        patch.setattr("viralspot.adapters.sqs_dispatcher.SqsDispatcher.dispatch", refuse)
        assert ask(api, "natgeo")["fallback_mode"] is True
    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes + 1)
    ctx = bootstrap.build(get_settings(), clock)
    conflicts.injected.clear()
    report = ctx.sweep()
    assert report.repairs[sweeper.Repair.REDISPATCHED] == 1
    assert report.repairs[sweeper.Repair.ERROR] == 0
    assert conflicts.injected["PutItem"] >= 1
    (message,) = drain(aws_env, stack.refs["HighQueue"])
    worker = ctx.worker(SampleProvider())
    assert worker.process(message["Body"]) is Result.COMPLETED
    assert stored("natgeo").attempts == 1
