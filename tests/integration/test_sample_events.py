"""Each sample event in events/ (the files `sam local invoke -e` takes) runs its
handler on the emulator and does what it says."""

from __future__ import annotations

import json
from typing import Any

from devstack.emulator import Emulator
from devstack.invoke import handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.events import EVENTS, sample
from viralspot import bootstrap
from viralspot.adapters import aws
from viralspot.adapters.codec import serialize
from viralspot.adapters.dynamo_jobs import job_to_item
from viralspot.clock import utc_now
from viralspot.jobs import JobStatus, Source, new_job


def test_every_event_file_is_covered_here() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == {
        "api_request_profile.json",
        "sqs_high_queue.json",
        "sqs_low_queue.json",
        "scheduled_sweep.json",
        "env.local.json",  # environment for sam local, not an event
    }


def test_api_event_queues_the_profile(stack: Stack) -> None:
    event = sample("api_request_profile.json")
    result = handler_for("RequestProfileFunction")(event, LocalContext())
    assert result["statusCode"] == 200
    body = json.loads(result["body"])
    assert body["data"]["profile_type"] == "new"
    assert body["data"]["priority"] == "HIGH"
    job = bootstrap.services().jobs.get(event["pathParameters"]["username"])
    assert job is not None
    assert job.status is JobStatus.PENDING


def _seed_job_for(record: dict[str, Any], source: Source) -> None:
    """Store the job the sample message names, so the worker can claim it."""
    message = json.loads(record["body"])
    job = new_job(message["username"], source, utc_now(), depth=message["depth"])
    job = job.model_copy(update={"request_id": message["request_id"]})
    # The container's own client: the one the adapters share.
    aws.dynamodb().put_item(
        TableName=bootstrap.services().settings.jobs_table, Item=serialize(job_to_item(job))
    )


def test_sqs_events_process_the_profiles_they_name(stack: Stack, aws_env: Emulator) -> None:
    for name, source in (
        ("sqs_high_queue.json", Source.FRONTEND),
        ("sqs_low_queue.json", Source.CRAWLER),
    ):
        event = sample(name)
        record = event["Records"][0]
        _seed_job_for(record, source)
        result = handler_for("ProcessProfileFunction")(event, LocalContext())
        assert result == {"batchItemFailures": []}
        username = json.loads(record["body"])["username"]
        job = bootstrap.services().jobs.get(username)
        assert job is not None
        assert job.status is JobStatus.COMPLETED
        profile = bootstrap.services().profiles.get(username)
        assert profile is not None
        assert profile.data_source == "sample"


def test_scheduled_event_runs_a_sweep(stack: Stack) -> None:
    result = handler_for("RetryFailedFunction")(
        sample("scheduled_sweep.json"), LocalContext(timeout_seconds=60)
    )
    assert result["examined"] == 0
    assert result["stopped_early"] is False
