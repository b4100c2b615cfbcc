"""Small helpers shared by the emulator tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.emulator import Emulator


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
