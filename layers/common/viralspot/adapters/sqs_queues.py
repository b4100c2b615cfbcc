"""Queue operations on SQS: approximate depths, and moving dead letters back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.errors import QueueUnavailable
from viralspot.operations import QueueDepth

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


class SqsQueues:
    def __init__(self, client: SQSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SQSClient:
        return self._client or aws.sqs()

    def depth(self, url: str) -> QueueDepth:
        try:
            names: list[Any] = list(_ATTRIBUTES)
            response = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"queue attributes: {type(exc).__name__}") from exc
        attributes: dict[Any, str] = dict(response.get("Attributes", {}))
        return QueueDepth.model_validate(
            {field: int(attributes.get(name, 0)) for name, field in _ATTRIBUTES.items()}
        )

    def move(self, source_url: str, target_url: str, max_messages: int) -> int:
        """Move up to `max_messages` from a dead-letter queue back to its queue.

        Each message is sent before it is deleted, so a failure in between leaves a
        copy in both places rather than none: the worker's claim rule makes the
        duplicate harmless. (SQS's StartMessageMoveTask does this server-side on
        AWS; this loop also works on emulators that lack it.)"""
        moved = 0
        try:
            while moved < max_messages:
                batch = self.client.receive_message(
                    QueueUrl=source_url,
                    MaxNumberOfMessages=min(10, max_messages - moved),
                    WaitTimeSeconds=0,
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    self.client.send_message(QueueUrl=target_url, MessageBody=message["Body"])
                    self.client.delete_message(
                        QueueUrl=source_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                    moved += 1
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"redrive stopped after {moved}: {type(exc).__name__}") from exc
        return moved
