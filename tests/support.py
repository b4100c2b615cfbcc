"""Small helpers shared by the emulator tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.emulator import Emulator
from devstack.invoke import handler_for
from devstack.lambda_context import LocalContext
from devstack.template import Stack
from tests.events import sqs_event


class StepClock:
    """An injectable clock the test moves by hand (no sleeps). Whole seconds, since
    storage keeps milliseconds and a test compares what it stored."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def drain(emulator: Emulator, queue_url: str) -> list[dict[str, Any]]:
    """Every message waiting on the queue, received and deleted."""
    sqs = emulator.client("sqs")
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return got
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        got.extend(batch)


def run_worker(stack: Stack, messages: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """The worker's handler on `messages` as `queue`'s event source mapping delivers them."""
    handler = handler_for("ProcessProfileFunction", stack.template)
    result: dict[str, Any] = handler(
        sqs_event(messages, stack.arns[queue]), LocalContext(function_name="ProcessProfileFunction")
    )
    return result
