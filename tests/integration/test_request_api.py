"""The request and status routes, through API Gateway events, on the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.invoke import LocalApi
from devstack.template import Stack
from tests.support import CallCounter, drain


@pytest.mark.ddblocal
def test_new_request_answers_queued_with_position(api: LocalApi) -> None:
    status, _, body = api.request("POST", "/api/profile/natgeo/request")
    assert status == 200
    assert body["success"] is True
    data = body["data"]
    assert data["queued"] is True
    assert data["profile_type"] == "new"
    assert data["status"] == "pending"
    assert data["priority"] == "HIGH"
    assert data["queue_position"] == 1
    assert data["estimated_time"] == "1-2 minutes"
    assert data["next_check_recommended"] == "30 seconds"
    assert len(data["request_id"]) == 12
    assert "fallback_mode" not in data


@pytest.mark.ddblocal
def test_same_request_again_is_already_in_queue_with_same_request_id(api: LocalApi) -> None:
    _, _, first = api.request("POST", "/api/profile/natgeo/request")
    _, _, second = api.request("POST", "/api/profile/%40NatGeo/request")
    data = second["data"]
    assert data["skip_reason"] == "already_in_queue"
    assert data["request_id"] == first["data"]["request_id"]
    assert data["queued"] is True
    assert data["profile_type"] == "queued"
    assert data["status"] == "pending"
    assert data["queue_position"] == 1


@pytest.mark.ddblocal
def test_status_shows_pending_job(api: LocalApi) -> None:
    api.request("POST", "/api/profile/natgeo/request?source=api")
    status, _, body = api.request("GET", "/api/profile/NatGeo/status")
    assert status == 200
    data = body["data"]
    assert data["status"] == "pending"
    assert data["completed"] is False
    assert data["priority"] == "MEDIUM"
    assert data["queue_position"] == 1
    assert data["attempts"] == 0


def test_status_of_unknown_profile_is_not_found(api: LocalApi) -> None:
    status, _, body = api.request("GET", "/api/profile/nobody_here/status")
    assert status == 200
    assert body["data"]["status"] == "not_found"
    assert body["data"]["completed"] is False


@pytest.mark.parametrize(
    ("source", "queue", "priority"),
    [
        ("frontend", "HighQueue", "HIGH"),
        ("admin", "HighQueue", "HIGH"),
        ("api", "MediumQueue", "MEDIUM"),
        ("bulk", "MediumQueue", "MEDIUM"),
        ("crawler", "LowQueue", "LOW"),
    ],
)
def test_priority_by_source_routes_to_its_queue(
    api: LocalApi, stack: Stack, aws_env: Any, source: str, queue: str, priority: str
) -> None:
    # source=admin is earned with the admin key (tests/integration/test_edge.py).
    key = {"x-api-key": stack.api_keys()[0]} if source == "admin" else {}
    _, _, body = api.request("POST", f"/api/profile/someone/request?source={source}", headers=key)
    assert body["data"]["priority"] == priority
    sent = drain(aws_env, stack.refs[queue])
    assert len(sent) == 1
    assert json.loads(sent[0]["Body"])["request_id"] == body["data"]["request_id"]
    for other in {"HighQueue", "MediumQueue", "LowQueue"} - {queue}:
        assert drain(aws_env, stack.refs[other]) == []


@pytest.mark.ddblocal
def test_position_counts_higher_priority_and_earlier_jobs(api: LocalApi) -> None:
    api.request("POST", "/api/profile/low_one/request?source=crawler")
    api.request("POST", "/api/profile/medium_one/request?source=api")
    api.request("POST", "/api/profile/high_one/request?source=frontend")
    _, _, high_two = api.request("POST", "/api/profile/high_two/request?source=frontend")
    _, _, medium_two = api.request("POST", "/api/profile/medium_two/request?source=bulk")
    _, _, low_two = api.request("POST", "/api/profile/low_two/request?source=crawler")
    assert high_two["data"]["queue_position"] == 2  # high_one
    assert medium_two["data"]["queue_position"] == 4  # 2 high + medium_one
    assert low_two["data"]["queue_position"] == 6  # everything else
    assert low_two["data"]["estimated_time"] == "5-15 minutes"


def test_a_duplicate_costs_reads_only(api: LocalApi, aws_calls: CallCounter) -> None:
    api.request("POST", "/api/profile/natgeo/request")
    writes = {"dynamodb.TransactWriteItems", "dynamodb.UpdateItem", "sqs.SendMessage"}
    assert writes <= set(aws_calls.calls)
    aws_calls.reset()
    api.request("POST", "/api/profile/natgeo/request")
    # The read, then the position: the shard counts and the counters side by side.
    assert aws_calls.calls[0] == "dynamodb.BatchGetItem"
    assert not writes & set(aws_calls.calls)


def test_answers_carry_the_cors_origin_errors_included(api: LocalApi) -> None:
    # Browsers on another origin (the content-strategy tool) read these answers.
    _, ok_headers, _ = api.request(
        "POST", "/api/profile/natgeo/request", headers={"Origin": "https://tool.example"}
    )
    _, error_headers, _ = api.request(
        "POST", "/api/profile/bad%20name/request", headers={"Origin": "https://tool.example"}
    )
    assert ok_headers["Access-Control-Allow-Origin"] == "*"
    assert error_headers["Access-Control-Allow-Origin"] == "*"
