"""`make run`'s machinery: the HTTP gateway, the SQS pollers and the schedulers,
on the test session's emulator, with OS-chosen ports."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from devstack.apigw import routes
from devstack.emulator import Emulator
from devstack.gateway import Gateway, gateway_for
from devstack.harness import local_stack, stack_environment
from devstack.invoke import handler_for
from devstack.server import DevStack
from devstack.template import Stack, default_parameters, load_template
from devstack.workers import (
    LocalFunction,
    Scheduler,
    SqsPoller,
    parse_rate,
    schedule_sources,
    sqs_sources,
)
from viralspot.adapters import aws

pytestmark = pytest.mark.server

# A template of our own: routes, queues and schedules the real one may not have yet.
FAKE_TEMPLATE = """
Parameters:
  LowCap: {Type: Number, Default: 3}
  Every: {Type: String, Default: rate(2 minutes)}
Resources:
  WorkQueue:
    Type: AWS::SQS::Queue
  OtherQueue:
    Type: AWS::SQS::Queue
  Admin:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../functions/admin/
      Handler: app.lambda_handler
      Events:
        Reprocess:
          Type: Api
          Properties: {Path: "/admin/{name}/go", Method: POST, Auth: {ApiKeyRequired: true}}
        Open:
          Type: Api
          Properties: {Path: /admin/open, Method: GET}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../functions/worker/
      Handler: app.lambda_handler
      Timeout: 30
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt WorkQueue.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
        Other:
          Type: SQS
          Properties:
            Queue: !GetAtt OtherQueue.Arn
            ScalingConfig: {MaximumConcurrency: !Ref LowCap}
        Paused:
          Type: SQS
          Properties: {Queue: !GetAtt OtherQueue.Arn, Enabled: false}
  Sweeper:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ../functions/sweeper/
      Handler: app.lambda_handler
      Events:
        Tick:
          Type: Schedule
          Properties: {Schedule: !Ref Every}
        Off:
          Type: Schedule
          Properties: {Schedule: rate(1 minute), Enabled: false}
        Nightly:
          Type: Schedule
          Properties: {Schedule: "cron(0 3 * * ? *)"}
        Modern:
          Type: ScheduleV2
          Properties: {ScheduleExpression: rate(30 seconds), Name: modern}
"""


@pytest.fixture(scope="module")
def fake_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("template") / "template.yaml"
    path.write_text(FAKE_TEMPLATE, encoding="utf-8")
    return load_template(path)


# A browser's cross-origin request says where it comes from; the function's CORS
# answer depends on it.
BROWSER = {"Origin": "https://tool.example"}


def http(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            status, found, raw = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, found, raw = error.code, dict(error.headers), error.read()
    return status, found, json.loads(raw) if raw else None


# ---------------------------------------------------------------- the API over HTTP


@pytest.fixture
def local(stack: Stack, emulator: Emulator) -> Iterator[DevStack]:
    # No workers: the jobs must stay PENDING for the assertions below.
    running = DevStack(stack, emulator.client("sqs"), port=0, workers=False, schedules=False)
    with running:
        yield running


def test_request_dedup_and_status_over_http(local: DevStack) -> None:
    status, headers, first = http("POST", f"{local.api_url}/api/profile/natgeo/request", BROWSER)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"] == "application/json"
    assert "skip_reason" not in first["data"]
    assert first["data"]["queued"] is True
    assert first["data"]["profile_type"] == "new"

    status, _, second = http("POST", f"{local.api_url}/api/profile/%40NatGeo/request")
    assert status == 200
    assert second["data"]["skip_reason"] == "already_in_queue"
    assert second["data"]["request_id"] == first["data"]["request_id"]

    status, _, progress = http("GET", f"{local.api_url}/api/profile/natgeo/status")
    assert status == 200
    assert progress["data"]["status"] == "pending"


def test_errors_and_preflight_look_like_api_gateway(local: DevStack) -> None:
    status, headers, body = http(
        "POST", f"{local.api_url}/api/profile/no%20spaces/request", BROWSER
    )
    assert status == 400  # the function's own answer, passed through
    assert body["success"] is False
    # The function's CORS header, for a browser's request (API Gateway adds none).
    assert headers["Access-Control-Allow-Origin"] == "*"

    # API Gateway's own refusals, in the template's GatewayResponses envelope.
    for method, path in (("GET", "/nope"), ("FROB", "/api/health"), ("GET", "/api/health/")):
        status, headers, body = http(method, f"{local.api_url}{path}")
        assert status == 403, (method, path)
        assert body == {"success": False, "detail": "Missing Authentication Token"}
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert headers["Access-Control-Allow-Origin"] == "*"

    # A documented path with another method reaches the function (ANY), which says 405.
    status, headers, body = http("DELETE", f"{local.api_url}/api/profile/natgeo/status")
    assert status == 405
    assert headers["Allow"] == "GET, OPTIONS"
    assert body["success"] is False

    status, headers, body = http(
        "OPTIONS",
        f"{local.api_url}/api/profile/natgeo/request",
        headers={"Origin": "http://example.test", "Access-Control-Request-Method": "POST"},
    )
    assert status == 200
    assert body is None
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type,X-Api-Key"


def test_whole_system_processes_a_request(stack: Stack, emulator: Emulator) -> None:
    """The real worker behind the real queue: request -> processed, with no polling."""
    processed = threading.Event()

    def load(function_id: str) -> Any:
        handler = handler_for(function_id, stack.template)
        if function_id != "ProcessProfileFunction":
            return handler

        def observed(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                processed.set()

        return observed

    running = DevStack(
        stack,
        emulator.client("sqs"),
        port=0,
        schedules=False,
        poll_wait_seconds=1,
        load_handler=load,
    )
    with running:
        http("POST", f"{running.api_url}/api/profile/natgeo/request")
        assert processed.wait(timeout=5)
        _, _, progress = http("GET", f"{running.api_url}/api/profile/natgeo/status")
    assert progress["data"]["status"] == "completed"


def test_an_operation_the_emulator_lacks_is_refused_at_once_with_a_code(
    stack: Stack, emulator: Emulator
) -> None:
    """moto has no SQS message move tasks; the emulator says so as an endpoint would
    (NotImplemented, HTTP 501, not retried), so redrive can fall back at once."""
    sqs = emulator.client("sqs")
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.refs["LowDeadLetterQueue"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sqs.start_message_move_task(SourceArn=dlq)
    error = refused.value.response
    assert error["Error"]["Code"] == "NotImplemented"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert error["ResponseMetadata"]["RetryAttempts"] == 0


def test_environment_is_every_functions_plus_the_emulator(template: dict[str, Any]) -> None:
    stack = Stack(template=template, parameters=default_parameters(template))
    for name, resource in template["Resources"].items():
        if resource["Type"] in (
            "AWS::DynamoDB::Table",
            "AWS::SQS::Queue",
            "AWS::SecretsManager::Secret",
        ):
            stack.refs[name] = f"physical-{name}"
    env = stack_environment(stack, "http://127.0.0.1:1", base={"LOG_LEVEL": "DEBUG"})
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["JOBS_TABLE"] == "physical-JobsTable"
    assert env["POWERTOOLS_DEV"] == "false"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["AWS_REGION"] == "us-east-1"
    for function_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            own = stack.function_environment(function_id)
            own.pop("LOG_LEVEL")
            assert own.items() <= env.items()


def test_the_harness_points_everything_at_the_emulator_and_undoes_it(
    emulator: Emulator, template: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What could send a handler's call to real AWS, set before the harness starts.
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "https://sqs.example.invalid")
    monkeypatch.delenv("JOBS_TABLE", raising=False)
    with local_stack(emulator, template=template) as up:
        assert "AWS_PROFILE" not in os.environ
        assert "AWS_ENDPOINT_URL_SQS" not in os.environ
        assert os.environ["AWS_ENDPOINT_URL"] == emulator.url
        assert os.environ["JOBS_TABLE"] == up.stack.refs["JobsTable"]
        status, _, answer = up.api().request("POST", "/api/profile/natgeo/request")
        assert status == 200, answer
        assert aws.sqs().meta.endpoint_url == emulator.url
    assert os.environ["AWS_PROFILE"] == "production"
    assert os.environ["AWS_ENDPOINT_URL_SQS"] == "https://sqs.example.invalid"
    assert "JOBS_TABLE" not in os.environ


# ------------------------------------------------- API keys and proxy responses


def fake_api(template: dict[str, Any], answer: Any) -> Gateway:
    function = LocalFunction("Admin", lambda event, _ctx: answer(event))
    return Gateway(routes(template), {"Admin": function}, api_key="s3cret")


def test_api_key_is_enforced_only_where_the_template_asks(fake_template: dict[str, Any]) -> None:
    seen: list[dict[str, Any]] = []

    def answer(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "body": json.dumps(event["pathParameters"])}

    gateway = fake_api(fake_template, answer)
    for headers in ([], [("x-api-key", "wrong")]):
        denied = gateway.handle("POST", "/admin/x/go", headers, b"")
        assert denied.status == 403
        assert json.loads(denied.body) == {"message": "Forbidden"}
    assert seen == []
    allowed = gateway.handle("POST", "/admin/a%40b/go?x=1", [("X-Api-Key", "s3cret")], b"{}")
    assert allowed.status == 200
    assert json.loads(allowed.body) == {"name": "a@b"}
    assert seen[0]["queryStringParameters"] == {"x": "1"}
    assert seen[0]["body"] == "{}"
    assert seen[0]["requestContext"]["identity"]["apiKey"] == "s3cret"
    assert gateway.handle("GET", "/admin/open", [], b"").status == 200


def test_proxy_response_headers_and_binary_bodies(fake_template: dict[str, Any]) -> None:
    gateway = fake_api(
        fake_template,
        lambda _event: {
            "statusCode": 201,
            "headers": {"Content-Type": "image/png", "X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "iVBORw==",
            "isBase64Encoded": True,
        },
    )
    answer = gateway.handle("GET", "/admin/open", [], b"")
    assert answer.status == 201
    assert answer.body == b"\x89PNG"
    assert ("Set-Cookie", "a=1") in answer.headers
    assert ("Set-Cookie", "b=2") in answer.headers
    assert answer.header("content-type") == "image/png"
    # Lambda proxy: API Gateway adds no CORS header to a function's answer.
    assert answer.header("Access-Control-Allow-Origin") is None


def test_failing_or_malformed_function_is_a_502(fake_template: dict[str, Any]) -> None:
    def boom(_event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    malformed: list[Any] = [
        "not a proxy response",
        {"body": "{}"},  # no statusCode
        {"statusCode": "abc", "body": "{}"},
        {"statusCode": 700, "body": "{}"},
        {"statusCode": 200, "body": {"a": 1}},  # a body must be a string
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
    ]
    gateways = [fake_api(fake_template, boom)] + [
        fake_api(fake_template, lambda _event, answer=answer: answer) for answer in malformed
    ]
    for gateway in gateways:
        answer = gateway.handle("GET", "/admin/open", [], b"")
        assert answer.status == 502
        assert json.loads(answer.body) == {"message": "Internal server error"}
    # What API Gateway does accept: a numeric string status, no body, null headers.
    lenient = fake_api(fake_template, lambda _event: {"statusCode": "204", "headers": None})
    accepted = lenient.handle("GET", "/admin/open", [], b"")
    assert (accepted.status, accepted.body) == (204, b"")


def test_the_gateways_own_answers_carry_the_templates_headers(template: dict[str, Any]) -> None:
    """DEFAULT_5XX and DEFAULT_4XX of the template's GatewayResponses: their body and
    their headers (the origin for browsers; Retry-After on a 5xx)."""

    def boom(_event: dict[str, Any], _ctx: Any) -> Any:
        raise RuntimeError("boom")

    stack = Stack(template=template, parameters=default_parameters(template))
    gateway = gateway_for(
        stack,
        {"RequestProfileFunction": LocalFunction("RequestProfileFunction", boom)},
        api_key="k",
    )
    failed = gateway.handle("GET", "/api/profile/natgeo/status", [], b"")
    assert failed.status == 502
    assert json.loads(failed.body) == {"success": False, "detail": "Internal server error"}
    assert failed.header("Retry-After") == "5"
    assert failed.header("Access-Control-Allow-Origin") == "*"
    missing = gateway.handle("GET", "/nowhere", [], b"")
    assert missing.status == 403
    assert missing.header("Access-Control-Allow-Origin") == "*"
    assert missing.header("Retry-After") is None


def test_local_stack_generates_an_api_key_when_a_route_needs_one(
    fake_template: dict[str, Any], emulator: Emulator
) -> None:
    def handler(_event: dict[str, Any], _ctx: Any) -> Any:
        return {"statusCode": 200, "body": "{}"}

    stack = fake_stack(fake_template)
    running = DevStack(
        stack,
        emulator.client("sqs"),
        port=0,
        workers=False,
        schedules=False,
        load_handler=lambda _fid: handler,
    )
    with running:
        assert running.api_key_required
        assert running.api_key
        url = f"{running.api_url}/admin/x/go"
        assert http("POST", url, body=b"")[0] == 403
        assert http("POST", url, headers={"x-api-key": running.api_key}, body=b"")[0] == 200


# ---------------------------------------------------------------- SQS pollers


def queue_depth(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


@pytest.fixture
def probe_queue(aws_env: Emulator) -> tuple[Any, str, str]:
    sqs = aws_env.client("sqs")
    url = sqs.create_queue(QueueName="LocalStackTest", Attributes={"VisibilityTimeout": "1"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return sqs, url, arn


def send(sqs: Any, url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
        )


def test_successful_batch_is_deleted_and_records_look_like_lambdas(
    probe_queue: tuple[Any, str, str],
) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "a", "b")
    events: list[dict[str, Any]] = []
    poller = SqsPoller(
        "Fake", url, arn, 10, lambda event, _ctx: events.append(event), sqs=sqs, wait_seconds=0
    )
    outcome = poller.poll_once()
    assert (outcome.received, outcome.deleted, outcome.failed) == (2, 2, [])
    assert queue_depth(sqs, url) == (0, 0)
    record = events[0]["Records"][0]
    assert record["body"] == "a"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in record["attributes"]
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert {"messageId", "receiptHandle", "md5OfBody"} <= record.keys()


def test_batch_item_failures_leave_only_the_failed_record(
    probe_queue: tuple[Any, str, str],
) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "ok-1", "bad", "ok-2")

    def handler(event: dict[str, Any], _ctx: Any) -> dict[str, Any]:
        bad = [r["messageId"] for r in event["Records"] if r["body"] == "bad"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in bad]}

    poller = SqsPoller(
        "Fake", url, arn, 10, handler, sqs=sqs, report_batch_item_failures=True, wait_seconds=0
    )
    outcome = poller.poll_once()
    assert (outcome.received, outcome.deleted, len(outcome.failed)) == (3, 2, 1)
    assert queue_depth(sqs, url) == (0, 1)
    # The one real wait of this file: the failed record returns after the 1 s timeout.
    again = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=3, AttributeNames=["All"])
    assert [m["Body"] for m in again["Messages"]] == ["bad"]
    assert again["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2"


def test_raising_handler_deletes_nothing(probe_queue: tuple[Any, str, str]) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "a", "b")

    def handler(_event: dict[str, Any], _ctx: Any) -> Any:
        raise RuntimeError("worker crashed")

    outcome = SqsPoller("Fake", url, arn, 10, handler, sqs=sqs, wait_seconds=0).poll_once()
    assert (outcome.received, outcome.deleted, len(outcome.failed)) == (2, 0, 2)
    assert queue_depth(sqs, url) == (0, 2)


def test_unknown_failure_ids_retry_the_whole_batch(probe_queue: tuple[Any, str, str]) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "a", "b")
    poller = SqsPoller(
        "Fake",
        url,
        arn,
        10,
        lambda _e, _c: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        sqs=sqs,
        report_batch_item_failures=True,
        wait_seconds=0,
    )
    assert poller.poll_once().deleted == 0
    assert queue_depth(sqs, url) == (0, 2)


def test_failures_are_ignored_without_report_batch_item_failures(
    probe_queue: tuple[Any, str, str],
) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "a")

    def handler(event: dict[str, Any], _ctx: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    assert (
        SqsPoller("Fake", url, arn, 10, handler, sqs=sqs, wait_seconds=0).poll_once().deleted == 1
    )
    assert queue_depth(sqs, url) == (0, 0)


def test_batch_size_caps_the_batch(probe_queue: tuple[Any, str, str]) -> None:
    sqs, url, arn = probe_queue
    send(sqs, url, "a", "b", "c")
    sizes: list[int] = []
    poller = SqsPoller(
        "Fake", url, arn, 1, lambda e, _c: sizes.append(len(e["Records"])), sqs=sqs, wait_seconds=0
    )
    poller.poll_once()
    assert sizes == [1]


# --------------------------------------------------- event sources from a template


def fake_stack(template: dict[str, Any]) -> Stack:
    stack = Stack(template=template, parameters=default_parameters(template))
    for name in ("WorkQueue", "OtherQueue"):
        stack.refs[name] = f"http://sqs.local/123456789012/{name}"
        stack.arns[name] = f"arn:aws:sqs:us-east-1:123456789012:{name}"
    return stack


def test_sqs_sources_follow_the_template(fake_template: dict[str, Any]) -> None:
    found = {s.event_name: s for s in sqs_sources(fake_stack(fake_template))}
    assert set(found) == {"Work", "Other"}  # Paused is disabled
    assert found["Work"].queue_url.endswith("/WorkQueue")
    assert found["Work"].queue_arn.endswith(":WorkQueue")
    assert (found["Work"].batch_size, found["Work"].concurrency) == (5, 1)
    assert found["Work"].report_batch_item_failures is True
    assert (found["Other"].batch_size, found["Other"].concurrency) == (10, 3)
    assert found["Other"].report_batch_item_failures is False


def test_schedule_sources_follow_the_template(fake_template: dict[str, Any]) -> None:
    found = {s.event_name: s for s in schedule_sources(fake_stack(fake_template))}
    assert set(found) == {"Tick", "Modern"}  # Off is disabled; cron is not run locally
    assert found["Tick"].interval_seconds == 120
    assert found["Tick"].resource_arn == "arn:aws:events:us-east-1:123456789012:rule/SweeperTick"
    assert found["Modern"].interval_seconds == 30
    assert found["Modern"].source == "aws.scheduler"
    overridden = schedule_sources(fake_stack(fake_template), interval_override=0.5)
    assert {s.event_name: s.interval_seconds for s in overridden} == {
        "Tick": 0.5,
        "Nightly": 0.5,
        "Modern": 0.5,
    }


def test_every_event_source_of_the_real_template_is_served(template: dict[str, Any]) -> None:
    stack = Stack(template=template, parameters=default_parameters(template))
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::SQS::Queue":
            stack.refs[name] = f"http://sqs.local/123456789012/{name}"
            stack.arns[name] = f"arn:aws:sqs:us-east-1:123456789012:{name}"
    declared = {
        kind: sum(
            event.get("Type") in kinds
            for resource in template["Resources"].values()
            if resource["Type"] == "AWS::Serverless::Function"
            for event in resource["Properties"].get("Events", {}).values()
        )
        for kind, kinds in (("sqs", ("SQS",)), ("schedule", ("Schedule", "ScheduleV2")))
    }
    assert len(sqs_sources(stack)) == declared["sqs"]
    assert len(schedule_sources(stack)) == declared["schedule"]


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(30 seconds)", 30),
        ("rate(1 second)", 1),
        ("rate(2 hours)", 7200),
        ("rate(1 hour)", 3600),
        (" rate( 10  minutes ) ", 600),
    ],
)
def test_parse_rate(expression: str, seconds: float) -> None:
    assert parse_rate(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["rate(0 minutes)", "rate(1 fortnight)", "cron(0 3 * * ? *)", "rate(1.5 minutes)"]
)
def test_parse_rate_rejects(expression: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(expression)


def test_scheduler_sends_scheduled_events_and_survives_errors() -> None:
    events: list[dict[str, Any]] = []
    twice = threading.Event()

    def handler(event: dict[str, Any], _ctx: Any) -> None:
        events.append(event)
        if len(events) == 1:
            raise RuntimeError("first sweep fails")
        twice.set()

    arn = "arn:aws:events:us-east-1:123456789012:rule/Sweep"
    scheduler = Scheduler("RetryFailedFunction", 0.05, handler, resource_arn=arn)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert twice.wait(timeout=2)
    finally:
        stop.set()
        thread.join(timeout=2)
    assert not thread.is_alive()
    event = events[1]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [arn]
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["detail"] == {}
    assert event["version"] == "0"
    assert event["time"].endswith("Z")
    assert events[0]["id"] != events[1]["id"]
