"""Events for the handlers, built from the samples in events/ (the same files
`sam local invoke -e` uses), so the tests exercise the shapes users invoke with."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS batch event for messages as ReceiveMessage returned them."""
    template = sample("sqs_high_queue.json")["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            eventSourceARN=queue_arn,
        )
        records.append(record)
    return {"Records": records}


def sqs_event_for_bodies(bodies: list[str], queue_arn: str) -> dict[str, Any]:
    return sqs_event(
        [
            {"MessageId": f"msg-{i}", "ReceiptHandle": f"rh-{i}", "Body": body}
            for i, body in enumerate(bodies)
        ],
        queue_arn,
    )
