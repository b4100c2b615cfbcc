"""What the Lambda service does around the handlers, locally: SQS event source
mappings (long-poll, invoke, delete what succeeded) and EventBridge schedules.

Both are built from the template's function events, so a queue or a schedule
missing from the template is missing locally too. Redelivery and dead-lettering
are left to the emulator's queues, which carry the template's visibility timeout
and redrive policy: a record that is not deleted simply comes back.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devstack.lambda_context import LocalContext
from devstack.template import Stack, resources_of_type

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger("devstack.workers")

Handler = Callable[[dict[str, Any], Any], Any]

ACCOUNT = "123456789012"
REGION = "us-east-1"
# Lambda's own default when a function sets no Timeout.
DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_SQS_BATCH_SIZE = 10
# One ReceiveMessage returns at most 10 messages; larger batches need a batching
# window, which the template does not use.
_SQS_RECEIVE_MAX = 10


class LocalFunction:
    """One warm container of a function: one invocation at a time.

    Handlers keep per-invocation state in module globals (Powertools' resolver
    holds the current event, a BatchProcessor the current records), which is safe
    in Lambda because a container never runs two invocations at once. Every
    caller in this process shares the module, so the same rule is enforced here.
    """

    def __init__(
        self,
        function_id: str,
        handler: Handler,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.function_id = function_id
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            context = LocalContext(
                function_name=self.function_id, timeout_seconds=self.timeout_seconds
            )
            return self.handler(event, context)


def as_function(function_id: str, handler: Handler | LocalFunction) -> LocalFunction:
    return handler if isinstance(handler, LocalFunction) else LocalFunction(function_id, handler)


def function_timeout(template: dict[str, Any], function_id: str) -> float:
    props = template["Resources"][function_id].get("Properties", {})
    global_props = template.get("Globals", {}).get("Function", {})
    raw = props.get("Timeout", global_props.get("Timeout", DEFAULT_TIMEOUT_SECONDS))
    try:
        return float(raw)
    except (TypeError, ValueError):
        # A Ref to a parameter: the caller's Stack would know, but a wrong
        # timeout only affects get_remaining_time_in_millis locally.
        return DEFAULT_TIMEOUT_SECONDS


def log_invocation_error(function_id: str, what: str, exc: BaseException) -> None:
    """One line per failure; the traceback only when debugging."""
    log.error("%s failed on %s: %s: %s", function_id, what, type(exc).__name__, exc)
    log.debug("%s traceback", function_id, exc_info=exc)


# ---------------------------------------------------------------------- SQS


@dataclass(frozen=True)
class SqsSource:
    """One SQS event of a function, resolved against the created stack."""

    function_id: str
    event_name: str
    queue_url: str
    queue_arn: str
    batch_size: int = DEFAULT_SQS_BATCH_SIZE
    concurrency: int = 1
    report_batch_item_failures: bool = False

    def poller(
        self, function: Handler | LocalFunction, *, sqs: SQSClient, wait_seconds: int = 1
    ) -> SqsPoller:
        """This event source mapping, polling for `function` as the template says."""
        return SqsPoller(
            self.function_id,
            self.queue_url,
            self.queue_arn,
            self.batch_size,
            function,
            sqs=sqs,
            report_batch_item_failures=self.report_batch_item_failures,
            wait_seconds=wait_seconds,
        )


def _queue_of(stack: Stack, queue: Any) -> tuple[str, str]:
    """(url, arn) of an event's Queue: `!GetAtt X.Arn` or a literal ARN of the stack."""
    if isinstance(queue, dict) and "Fn::GetAtt" in queue:
        logical = queue["Fn::GetAtt"][0]
        return stack.refs[logical], stack.arns[logical]
    arn = str(stack.resolve(queue))
    for logical, known in stack.arns.items():
        if known == arn and logical in stack.refs:
            return stack.refs[logical], arn
    raise KeyError(f"queue {arn} is not a queue of the template")


def sqs_sources(stack: Stack) -> list[SqsSource]:
    found: list[SqsSource] = []
    functions = resources_of_type(stack.template, "AWS::Serverless::Function")
    for function_id, resource in functions.items():
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "SQS":
                continue
            props = stack.resolve({k: v for k, v in event["Properties"].items() if k != "Queue"})
            if str(props.get("Enabled", True)).lower() == "false":
                log.info("%s.%s is disabled in the template", function_id, event_name)
                continue
            url, arn = _queue_of(stack, event["Properties"]["Queue"])
            scaling = props.get("ScalingConfig") or {}
            found.append(
                SqsSource(
                    function_id=function_id,
                    event_name=event_name,
                    queue_url=url,
                    queue_arn=arn,
                    batch_size=int(props.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
                    concurrency=max(1, int(scaling.get("MaximumConcurrency", 1))),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                )
            )
    return found


@dataclass
class PollOutcome:
    received: int = 0
    deleted: int = 0
    failed: list[str] = field(default_factory=list)  # messageIds left on the queue


def _region_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[3] else REGION


def _message_attributes(message: MessageTypeDef) -> dict[str, Any]:
    """SQS API attribute shape -> the camel-cased shape Lambda puts in records."""
    converted: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        binary = value.get("BinaryValue")
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode("ascii") if binary else None,
            "stringListValues": list(value.get("StringListValues", [])),
            "binaryListValues": [
                base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues", [])
            ],
            "dataType": value["DataType"],
        }
    return converted


def sqs_record(message: MessageTypeDef, queue_arn: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _message_attributes(message),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": _region_of(queue_arn),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller:
    """An SQS event source mapping for one queue and one function.

    `poll_once` is one receive-invoke-delete cycle (what tests drive); `run`
    repeats it until stopped (what the local stack runs in a thread).
    """

    def __init__(
        self,
        function_id: str,
        queue_url: str,
        queue_arn: str,
        batch_size: int,
        handler: Handler | LocalFunction,
        *,
        sqs: SQSClient,
        report_batch_item_failures: bool = False,
        wait_seconds: int = 1,
    ) -> None:
        self.function_id = function_id
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.batch_size = max(1, min(batch_size, _SQS_RECEIVE_MAX))
        self.function = as_function(function_id, handler)
        self.report_batch_item_failures = report_batch_item_failures
        self.wait_seconds = wait_seconds
        self._sqs = sqs

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]

    def poll_once(self, wait_seconds: int | None = None) -> PollOutcome:
        return self.deliver(self.receive(wait_seconds))

    def receive(self, wait_seconds: int | None = None) -> list[MessageTypeDef]:
        received = self._sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(received.get("Messages", []))

    def deliver(self, messages: list[MessageTypeDef]) -> PollOutcome:
        """Invoke the function with one batch and delete what it did not fail."""
        outcome = PollOutcome(received=len(messages))
        if not messages:
            return outcome
        records = [sqs_record(m, self.queue_arn) for m in messages]
        try:
            response = self.function.invoke({"Records": records})
        except Exception as exc:
            # As in Lambda: the whole batch becomes visible again after the timeout.
            log_invocation_error(
                self.function_id, f"a batch of {len(records)} from {self.queue_name}", exc
            )
            outcome.failed = [r["messageId"] for r in records]
            return outcome
        failed = self._failed_ids(response, records)
        done = [r for r in records if r["messageId"] not in failed]
        outcome.failed = [r["messageId"] for r in records if r["messageId"] in failed]
        outcome.deleted = self._delete(done)
        return outcome

    def _failed_ids(self, response: Any, records: list[dict[str, Any]]) -> set[str]:
        failures = response.get("batchItemFailures") if isinstance(response, dict) else None
        if not failures:
            return set()
        if not self.report_batch_item_failures:
            log.warning(
                "%s returned batchItemFailures but its %s event lacks "
                "FunctionResponseTypes: [ReportBatchItemFailures]; Lambda deletes the whole batch",
                self.function_id,
                self.queue_name,
            )
            return set()
        ids = {r["messageId"] for r in records}
        listed = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
        if not all(isinstance(i, str) and i in ids for i in listed):
            # Lambda treats a malformed partial response as a failure of the whole batch.
            log.error(
                "%s returned batchItemFailures with unknown ids %s; the batch is retried",
                self.function_id,
                sorted(str(i) for i in listed - ids),
            )
            return ids
        return {i for i in listed if isinstance(i, str)}

    def _delete(self, records: list[dict[str, Any]]) -> int:
        if not records:
            return 0
        answer = self._sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": r["receiptHandle"]}
                for index, r in enumerate(records)
            ],
        )
        for failure in answer.get("Failed", []):
            log.warning("could not delete a message from %s: %s", self.queue_name, failure)
        return len(answer.get("Successful", []))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                messages = self.receive()
                if stop.is_set():
                    # Left in flight, they come back after the visibility timeout,
                    # as with a Lambda poller that stops mid-batch.
                    return
                self.deliver(messages)
            except Exception as exc:
                if stop.is_set():
                    return  # the emulator went away first during shutdown
                log_invocation_error(self.function_id, f"receiving from {self.queue_name}", exc)
                stop.wait(1.0)


# ---------------------------------------------------------------- schedules

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(expression: str) -> float:
    """Seconds between runs of an EventBridge `rate(...)` expression."""
    found = _RATE.match(expression.strip())
    if not found:
        raise ValueError(f"not a rate() expression: {expression!r}")
    value = int(found.group(1))
    if value <= 0:
        raise ValueError(f"rate must be positive: {expression!r}")
    return float(value * _UNIT_SECONDS[found.group(2).rstrip("s")])


@dataclass(frozen=True)
class ScheduleSource:
    function_id: str
    event_name: str
    interval_seconds: float
    expression: str
    resource_arn: str
    source: str  # "aws.events" (Schedule) or "aws.scheduler" (ScheduleV2)


def schedule_sources(
    stack: Stack, *, interval_override: float | None = None
) -> list[ScheduleSource]:
    found: list[ScheduleSource] = []
    functions = resources_of_type(stack.template, "AWS::Serverless::Function")
    for function_id, resource in functions.items():
        for event_name, event in resource.get("Properties", {}).get("Events", {}).items():
            kind = event.get("Type")
            if kind not in ("Schedule", "ScheduleV2"):
                continue
            props = stack.resolve(event.get("Properties", {}))
            if (
                str(props.get("Enabled", True)).lower() == "false"
                or str(props.get("State", "ENABLED")).upper() == "DISABLED"
            ):
                log.info("%s.%s is disabled in the template", function_id, event_name)
                continue
            expression = str(props.get("Schedule" if kind == "Schedule" else "ScheduleExpression"))
            name = str(props.get("Name") or f"{function_id}{event_name}")
            interval = interval_override
            if interval is None:
                try:
                    interval = parse_rate(expression)
                except ValueError:
                    log.warning(
                        "%s.%s: %s is not supported locally (rate() only); "
                        "give --sweep-interval to run it",
                        function_id,
                        event_name,
                        expression,
                    )
                    continue
            if kind == "Schedule":
                arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"
                source = "aws.events"
            else:
                arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/{name}"
                source = "aws.scheduler"
            found.append(
                ScheduleSource(
                    function_id=function_id,
                    event_name=event_name,
                    interval_seconds=interval,
                    expression=expression,
                    resource_arn=arn,
                    source=source,
                )
            )
    return found


def scheduled_event(
    resource_arn: str, *, source: str = "aws.events", now: datetime | None = None
) -> dict[str, Any]:
    """The event EventBridge delivers for a scheduled rule."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": source,
        "account": ACCOUNT,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource_arn],
        "detail": {},
    }


class Scheduler:
    """Invokes a function every `interval_seconds`, the first time one interval
    after start, as a new rate() rule does."""

    def __init__(
        self,
        function_id: str,
        interval_seconds: float,
        handler: Handler | LocalFunction,
        *,
        resource_arn: str | None = None,
        source: str = "aws.events",
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval must be positive")
        self.function_id = function_id
        self.interval_seconds = interval_seconds
        self.function = as_function(function_id, handler)
        self.resource_arn = resource_arn or f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function_id}"
        self.source = source

    def fire_once(self) -> Any:
        """Invoke once; errors are logged, never raised (the next tick still comes)."""
        try:
            return self.function.invoke(scheduled_event(self.resource_arn, source=self.source))
        except Exception as exc:
            log_invocation_error(self.function_id, "a scheduled event", exc)
            return None

    def run(self, stop: threading.Event) -> None:
        next_at = time.monotonic() + self.interval_seconds
        # Ticks are anchored to the start, so a slow run does not push the schedule.
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            self.fire_once()
            next_at += self.interval_seconds
            next_at = max(next_at, time.monotonic())
