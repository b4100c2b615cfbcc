"""Queue operations: status, re-dispatch, dead letters, bulk intake."""

from __future__ import annotations

import json

from devstack.emulator import Emulator
from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.conftest import CallCounter
from tests.support import drain


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
    code, _, body = api.request("POST", "/api/viral-ideas/process-pending")
    assert code == 200
    assert body["data"] == {"dispatched": 3, "skipped": 0, "failed": 0}
    sent = sorted(
        json.loads(m["Body"])["username"] for m in drain(aws_env, stack.refs["HighQueue"])
    )
    assert sent == ["one", "three", "two"]


def test_redrive_moves_dead_letters_back(api: LocalApi, stack: Stack, aws_env: Emulator) -> None:
    sqs = aws_env.client("sqs")
    for i in range(3):
        sqs.send_message(QueueUrl=stack.refs["HighDeadLetterQueue"], MessageBody=f'{{"n": {i}}}')
    sqs.send_message(QueueUrl=stack.refs["LowDeadLetterQueue"], MessageBody='{"n": 9}')
    code, _, body = api.request("POST", "/api/viral-ideas/redrive?max_messages=2")
    assert code == 200
    assert body["data"] == {"moved": {"high": 2, "medium": 0, "low": 1}, "total": 3}
    assert len(drain(aws_env, stack.refs["HighQueue"])) == 2
    assert [m["Body"] for m in drain(aws_env, stack.refs["LowQueue"])] == ['{"n": 9}']
    _, _, again = api.request("POST", "/api/viral-ideas/redrive")
    assert again["data"]["moved"] == {"high": 1, "medium": 0, "low": 0}


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
