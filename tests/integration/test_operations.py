"""Queue operations: status, re-dispatch, dead letters, bulk intake."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from devstack.emulator import Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.support import CallCounter, RefusingBatches, StepClock, drain
from viralspot import bootstrap, operations
from viralspot.adapters import aws
from viralspot.adapters.sqs_dispatcher import SqsDispatcher
from viralspot.config import get_settings
from viralspot.cursors import decode_cursor, encode_cursor
from viralspot.errors import DispatchFailed
from viralspot.jobs import ErrorKind, JobStatus


def test_queue_status_counts_live_jobs_by_status_and_priority(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/one/request")
    api.request("POST", "/api/profile/two/request?source=api")
    api.request("POST", "/api/profile/three/request?source=crawler")
    api.request("POST", "/api/profile/four/request?source=crawler")
    aws_env.client("sqs").send_message(QueueUrl=stack.refs["LowDeadLetterQueue"], MessageBody="{}")

    code, _, body = api.request("GET", "/api/viral-ideas/queue-status")
    assert code == 200
    data = body["data"]
    assert data["jobs"]["PENDING"] == {"HIGH": 1, "MEDIUM": 1, "LOW": 2}
    assert data["jobs"]["PROCESSING"] == {"HIGH": 0, "MEDIUM": 0, "LOW": 0}
    assert data["totals"] == {"PENDING": 4, "PROCESSING": 0, "FAILED": 0}
    assert data["queues"]["high"]["visible"] == 1
    assert data["queues"]["medium"]["visible"] == 1
    assert data["queues"]["low"]["visible"] == 2
    assert data["queues"]["low_dlq"]["visible"] == 1
    assert data["dead_letters"] == 1


def test_queue_status_cost_does_not_grow_with_completed_history(
    api: LocalApi, stack: Stack, aws_env: Emulator, aws_calls: CallCounter
) -> None:
    dynamodb = aws_env.client("dynamodb")
    for i in range(60):
        dynamodb.put_item(
            TableName=stack.refs["JobsTable"],
            Item={
                "username": {"S": f"done_{i}"},
                "request_id": {"S": f"{i:012d}"},
                "status": {"S": "COMPLETED"},
                "priority": {"S": "HIGH"},
                "source": {"S": "frontend"},
                "enqueued_at": {"S": "2026-11-01T00:00:00.000Z"},
                "completed_at": {"S": "2026-11-01T00:01:00.000Z"},
                "updated_at": {"S": "2026-11-01T00:01:00.000Z"},
            },
        )
    aws_calls.reset()
    _, _, body = api.request("GET", "/api/viral-ideas/queue-status")
    assert body["data"]["totals"] == {"PENDING": 0, "PROCESSING": 0, "FAILED": 0}
    # One read of the counter shards plus one attribute read per queue: no query, no
    # scan, whatever the backlog.
    assert sorted(aws_calls.calls) == sorted(
        ["dynamodb.BatchGetItem"] + ["sqs.GetQueueAttributes"] * 6
    )


def test_process_pending_redispatches_every_pending_job_once(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    for name in ("one", "two", "three"):
        api.request("POST", f"/api/profile/{name}/request")
    drain(aws_env, stack.refs["HighQueue"])
    code, _, body = api.request("POST", "/api/viral-ideas/process-pending", admin=True)
    assert code == 200
    assert body["data"] == {
        "dispatched": 3,
        "skipped": 0,
        "failed": 0,
        "examined": 3,
        "has_more": False,
    }
    sent = sorted(
        json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])
    )
    assert sent == ["one", "three", "two"]
    # Each send is recorded: the jobs wait with a message, which the sweeper leaves alone.
    jobs = bootstrap.services().jobs
    assert all((job := jobs.get(n)) and job.dispatched_at for n in ("one", "two", "three"))


QUEUES = {"HIGH": "HighQueue", "MEDIUM": "MediumQueue", "LOW": "LowQueue"}


def drain_all(aws_env: Emulator, stack: Stack) -> list[tuple[str, str]]:
    """(priority, username) of every message waiting on the three queues."""
    return [
        (priority, json.loads(m["Body"])["username"])
        for priority, ref in QUEUES.items()
        for m in drain(aws_env, stack.refs[ref])
    ]


@pytest.mark.ddblocal
def test_process_pending_with_a_cursor_covers_every_pending_job_exactly_once(
    api: LocalApi, stack: Stack, aws_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(13):
        api.request("POST", f"/api/profile/crawled_{i}/request?source=crawler")
    for i in range(9):
        api.request("POST", f"/api/profile/api_{i}/request?source=api")
    for i in range(6):
        api.request("POST", f"/api/profile/person_{i}/request")
    with monkeypatch.context() as patch:  # sends that failed: jobs waiting unsent
        patch.setattr(SqsDispatcher, "dispatch", refuse_send)
        for i in range(3):
            api.request("POST", f"/api/profile/unsent_{i}/request")
            api.request("POST", f"/api/profile/unsent_low_{i}/request?source=crawler")
    waiting = (
        {name for _, name in drain_all(aws_env, stack)}
        | {f"unsent_{i}" for i in range(3)}
        | {f"unsent_low_{i}" for i in range(3)}
    )
    assert len(waiting) == 34

    calls: list[dict[str, Any]] = []
    sent: list[tuple[str, str]] = []
    cursor = ""
    while True:
        code, _, body = api.request(
            "POST",
            f"/api/viral-ideas/process-pending?limit=5{'&cursor=' + cursor if cursor else ''}",
            admin=True,
        )
        assert code == 200, body
        calls.append(body["data"])
        sent.extend(drain_all(aws_env, stack))
        if len(calls) == 1:
            # Asked after the first call began: intake sent it, no call sends it again.
            _, _, late = api.request("POST", "/api/profile/late_one/request")
            assert late["data"]["queued"] is True
            assert drain_all(aws_env, stack) == [("HIGH", "late_one")]
        if not body["data"]["has_more"]:
            assert "next_cursor" not in body["data"]
            break
        cursor = body["data"]["next_cursor"]
        assert len(calls) < 20, "the cursor chain does not end"

    names = [name for _, name in sent]
    assert sorted(names) == sorted(waiting)  # every waiting job, exactly once
    assert all(c["examined"] <= 5 for c in calls)
    assert sum(c["dispatched"] for c in calls) == 34
    assert sum(c["skipped"] + c["failed"] for c in calls) == 0
    # HIGH first, then MEDIUM, then LOW; each on its own queue.
    order = [priority for priority, _ in sent]
    assert order == sorted(order, key=["HIGH", "MEDIUM", "LOW"].index)
    high = {n for n in waiting if n.startswith("person_") or re.fullmatch(r"unsent_\d", n)}
    assert {p for p, n in sent if n in high} == {"HIGH"}
    assert {p for p, n in sent if n.startswith("api_")} == {"MEDIUM"}
    assert {p for p, n in sent if n.startswith(("crawled_", "unsent_low_"))} == {"LOW"}
    # Every send recorded: a later sweep has nothing to send for these jobs.
    jobs = bootstrap.services().jobs
    assert all((job := jobs.get(name)) and job.dispatched_at for name in waiting)


def refuse_send(self: Any, job: Any) -> None:
    raise DispatchFailed("SQS unavailable")


def test_process_pending_refuses_bad_cursors_and_limits(api: LocalApi, stack: Stack) -> None:
    api.request("POST", "/api/profile/one/request")
    _, _, first = api.request("POST", "/api/viral-ideas/process-pending?limit=1", admin=True)
    good = first["data"]["next_cursor"]
    position = decode_cursor(good, kind="process-pending")

    def forged(**change: Any) -> str:
        # Signed with the stack's own key: only the fields inside are wrong.
        data = {"process_pending": {**position["process_pending"], **change}}
        return encode_cursor(data, kind="process-pending")

    for query in (
        "cursor=not-a-cursor",
        "cursor=" + encode_cursor({"key": {"username": "x"}}),  # a posts cursor
        "cursor=" + forged(kind="PROCESSING"),
        "cursor=" + forged(after=["2999-01-01T00:00:00.000Z", "one"]),  # past `before`
        "cursor=" + forged(after=["yesterday", "one"]),
        "cursor=" + forged(extra=1),
        "cursor=a%20b",
        "limit=0",
        "limit=abc",
    ):
        code, _, body = api.request("POST", f"/api/viral-ideas/process-pending?{query}", admin=True)
        assert code == 400, (query, body)
        assert body["success"] is False, query
        assert body["detail"], query


def test_process_pending_stops_within_its_time_and_goes_on_by_cursor(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    for name in ("one", "two"):
        api.request("POST", f"/api/profile/{name}/request")
    drain(aws_env, stack.refs["HighQueue"])
    ctx = bootstrap.services()
    short = operations.process_pending(
        store=ctx.jobs,
        dispatcher=ctx.queues,
        clock=ctx.clock,
        time_left_ms=lambda: operations.PENDING_RESERVE_MS - 1,
    )
    assert (short.examined, short.has_more) == (0, True)
    assert drain(aws_env, stack.refs["HighQueue"]) == []
    rest = operations.process_pending(
        store=ctx.jobs, dispatcher=ctx.queues, clock=ctx.clock, cursor=short.next_cursor
    )
    assert (rest.dispatched, rest.has_more) == (2, False)
    assert len(drain(aws_env, stack.refs["HighQueue"])) == 2


@pytest.mark.ddblocal
def test_process_pending_leaves_entries_sqs_refused_unsent_for_the_sweeper(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    names = [f"user_{i}" for i in range(14)]
    for name in names:
        api.request("POST", f"/api/profile/{name}/request")
    drain(aws_env, stack.refs["HighQueue"])
    refusing = RefusingBatches(
        aws_env.client("sqs"), accept=lambda e: json.loads(e["MessageBody"])["username"] < "user_5"
    )
    aws.sqs().meta.events.register("before-call.sqs.SendMessageBatch", refusing)
    code, _, body = api.request("POST", "/api/viral-ideas/process-pending", admin=True)
    aws.sqs().meta.events.unregister("before-call.sqs.SendMessageBatch", refusing)
    assert code == 200
    accepted = sorted(n for n in names if n < "user_5")  # user_0, user_1, user_10..user_14
    assert body["data"] == {
        "dispatched": len(accepted),
        "skipped": 0,
        "failed": len(names) - len(accepted),
        "examined": len(names),
        "has_more": False,
    }
    sent = sorted(
        json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])
    )
    assert sent == accepted
    jobs = bootstrap.services().jobs
    for name in names:
        job = jobs.get(name)
        assert job is not None
        # Refused: unsent at a new version, so the sweeper sends it after its grace.
        assert (job.dispatched_at is not None) == (name in accepted), name

    clock = StepClock()
    clock.advance(minutes=get_settings().pending_grace_minutes, seconds=1)
    ctx = bootstrap.build(get_settings(), clock)
    report = ctx.sweep()
    assert report.repairs["redispatched"] == len(names) - len(accepted)
    resent = sorted(
        json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])
    )
    assert resent == sorted(set(names) - set(accepted))


# No job's retries ran out: redrive opens none again.
NOTHING_REOPENED = {"dispatched": 0, "skipped": 0, "failed": 0, "examined": 0, "has_more": False}


def test_redrive_moves_dead_letters_back(api: LocalApi, stack: Stack, aws_env: Emulator) -> None:
    """Locally: moto has no message move tasks, so the adapter moves them by hand."""
    sqs = aws_env.client("sqs")
    for i in range(13):
        sqs.send_message(QueueUrl=stack.refs["HighDeadLetterQueue"], MessageBody=f'{{"n": {i}}}')
    sqs.send_message(QueueUrl=stack.refs["LowDeadLetterQueue"], MessageBody='{"n": 99}')
    code, _, body = api.request("POST", "/api/viral-ideas/redrive?max_messages=12", admin=True)
    assert code == 200
    assert body["data"] == {
        "moved": {"high": 12, "medium": 0, "low": 1},
        "tasks": {},
        "total": 13,
        "reopened": NOTHING_REOPENED,
    }
    assert len(drain(aws_env, stack.refs["HighQueue"])) == 12
    assert [m["Body"] for m in drain(aws_env, stack.refs["LowQueue"])] == ['{"n": 99}']
    _, _, again = api.request("POST", "/api/viral-ideas/redrive", admin=True)
    assert again["data"]["moved"] == {"high": 1, "medium": 0, "low": 0}
    assert len(drain(aws_env, stack.refs["HighDeadLetterQueue"])) == 0


def test_redrive_refuses_a_cursor_it_did_not_issue_before_moving_anything(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/one/request")
    _, _, first = api.request("POST", "/api/viral-ideas/process-pending?limit=1", admin=True)
    pending = first["data"]["next_cursor"]
    position = decode_cursor(pending, kind="process-pending")["process_pending"]
    aws_env.client("sqs").send_message(QueueUrl=stack.refs["LowDeadLetterQueue"], MessageBody="{}")
    for cursor in (
        pending,  # process-pending's: signed for another call
        "not-a-cursor",
        # Signed for redrive, but a pass of process-pending's (waiting jobs, not exhausted).
        encode_cursor({"process_pending": position}, kind="redrive"),
    ):
        code, _, body = api.request("POST", f"/api/viral-ideas/redrive?cursor={cursor}", admin=True)
        assert code == 400, (cursor, body)
        assert "redrive" in body["detail"] or "cursor" in body["detail"].lower()
    assert len(drain(aws_env, stack.refs["LowDeadLetterQueue"])) == 1


def test_redrive_reopens_within_its_time_and_goes_on_by_cursor(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    ctx = bootstrap.services()
    for name in ("one", "two"):
        api.request("POST", f"/api/profile/{name}/request")
        job = ctx.jobs.get(name)
        assert job is not None
        # Its retries ran out a minute ago.
        ctx.jobs.replace(
            job,
            job.model_copy(
                update={
                    "status": JobStatus.FAILED,
                    "attempts": 3,
                    "error_message": "HTTP 500",
                    "error_kind": ErrorKind.TRANSIENT,
                    "updated_at": ctx.clock() - timedelta(minutes=1),
                }
            ),
        )
    drain(aws_env, stack.refs["HighQueue"])
    wiring: dict[str, Any] = {
        "queues": ctx.queues,
        "routes": {},
        "max_messages": 10,
        "store": ctx.jobs,
        "dispatcher": ctx.queues,
        "clock": ctx.clock,
    }
    short = operations.redrive(**wiring, time_left_ms=lambda: operations.PENDING_RESERVE_MS - 1)
    assert (short.reopened.examined, short.reopened.has_more) == (0, True)
    assert short.reopened.next_cursor is not None
    rest = operations.redrive(**wiring, cursor=short.reopened.next_cursor)
    assert (rest.reopened.dispatched, rest.reopened.has_more) == (2, False)
    assert sorted(
        json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])
    ) == ["one", "two"]
    for name in ("one", "two"):
        job = ctx.jobs.get(name)
        assert job is not None
        assert (job.status, job.attempts) == (JobStatus.PENDING, 0)


class MoveTasks:
    """SQS's message move tasks, answered as SQS would (moto has none): records the
    calls, so the test sees which queues the adapter asked to move where."""

    def __init__(self, running: dict[str, Any] | None = None) -> None:
        self.running = running
        self.started: list[dict[str, Any]] = []

    def __call__(
        self, event_name: str, params: dict[str, Any], **_: Any
    ) -> tuple[AWSResponse, dict[str, Any]] | None:
        operation = event_name.rsplit(".", 1)[1]
        body = json.loads(params["body"])
        if operation == "ListMessageMoveTasks":
            results = [{**self.running, "SourceArn": body["SourceArn"]}] if self.running else []
            answer: dict[str, Any] = {"Results": results}
        elif operation == "StartMessageMoveTask":
            self.started.append(body)
            answer = {"TaskHandle": f"handle-{len(self.started)}"}
        else:
            return None
        return AWSResponse("http://sqs.invalid", 200, HTTPHeaders(), None), {
            **answer,
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }


def arn(aws_env: Emulator, url: str) -> str:
    attributes = aws_env.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["QueueArn"]
    )
    return str(attributes["Attributes"]["QueueArn"])


def test_redrive_starts_a_move_task_from_each_dead_letter_queue_to_its_queue(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    sqs = aws_env.client("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=stack.refs["HighDeadLetterQueue"], MessageBody=f'{{"n": {i}}}')
    sqs.send_message(QueueUrl=stack.refs["MediumDeadLetterQueue"], MessageBody='{"n": 9}')
    tasks = MoveTasks()
    aws.sqs().meta.events.register("before-call.sqs.*", tasks)
    code, _, body = api.request("POST", "/api/viral-ideas/redrive", admin=True)
    assert code == 200
    assert tasks.started == [
        {
            "SourceArn": arn(aws_env, stack.refs["HighDeadLetterQueue"]),
            "DestinationArn": arn(aws_env, stack.refs["HighQueue"]),
        },
        {
            "SourceArn": arn(aws_env, stack.refs["MediumDeadLetterQueue"]),
            "DestinationArn": arn(aws_env, stack.refs["MediumQueue"]),
        },
    ]
    assert body["data"] == {
        "moved": {"high": 3, "medium": 1, "low": 0},
        "tasks": {
            "high": {
                "task_handle": "handle-1",
                "status": "RUNNING",
                "approximate_messages": 3,
                "started": True,
            },
            "medium": {
                "task_handle": "handle-2",
                "status": "RUNNING",
                "approximate_messages": 1,
                "started": True,
            },
        },
        "total": 4,
        "reopened": NOTHING_REOPENED,
    }
    # SQS moves them, not this call: the dead letters are still there.
    assert len(drain(aws_env, stack.refs["HighDeadLetterQueue"])) == 3


def test_redrive_leaves_a_running_move_task_to_finish(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    aws_env.client("sqs").send_message(QueueUrl=stack.refs["LowDeadLetterQueue"], MessageBody="{}")
    tasks = MoveTasks(
        running={
            "TaskHandle": "already",
            "Status": "RUNNING",
            "ApproximateNumberOfMessagesToMove": 500,
            "ApproximateNumberOfMessagesMoved": 120,
        }
    )
    aws.sqs().meta.events.register("before-call.sqs.*", tasks)
    _, _, body = api.request("POST", "/api/viral-ideas/redrive", admin=True)
    assert tasks.started == []  # one task per queue at a time
    assert body["data"]["moved"] == {"high": 0, "medium": 0, "low": 0}
    assert body["data"]["tasks"]["low"] == {
        "task_handle": "already",
        "status": "RUNNING",
        "approximate_messages": 380,
        "started": False,
    }


def test_bulk_request_reports_one_result_per_username(
    api: LocalApi, stack: Stack, aws_env: Emulator
) -> None:
    api.request("POST", "/api/profile/already/request")
    code, _, body = api.request(
        "POST",
        "/api/profile/bulk-request",
        body={"usernames": ["fresh_one", "@Already", "bad name", "fresh_two"], "source": "bulk"},
    )
    assert code == 200
    data = body["data"]
    assert [r["username"] for r in data["results"]] == [
        "fresh_one",
        "already",
        "bad name",
        "fresh_two",
    ]
    fresh, dup, bad, other = data["results"]
    assert fresh["success"] is True
    assert fresh["data"]["profile_type"] == "new"
    assert fresh["data"]["priority"] == "MEDIUM"
    assert dup["data"]["skip_reason"] == "already_in_queue"
    assert dup["data"]["priority"] == "HIGH"
    assert bad["success"] is False
    assert "invalid characters" in bad["error"]
    assert bad["code"] == "invalid_username"
    assert "code" not in fresh
    assert other["success"] is True
    assert (data["total"], data["succeeded"], data["failed"]) == (4, 3, 1)
    medium = [json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["MediumQueue"])]
    assert sorted(medium) == ["fresh_one", "fresh_two"]


def test_bulk_request_validates_the_body(api: LocalApi) -> None:
    for payload in (
        {"usernames": []},
        {"usernames": [f"user_{i}" for i in range(51)]},
        {"usernames": ["ok"], "source": "robot"},
        {"names": ["ok"]},
        "not json",
    ):
        code, _, body = api.request("POST", "/api/profile/bulk-request", body=payload)
        assert code == 400, payload
        assert body["success"] is False
        assert body["detail"]
