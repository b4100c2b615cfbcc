"""Sends job messages to the high or low SQS queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.errors import DispatchFailed
from viralspot.jobs import Job, JobMessage, QueueName

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsDispatcher:
    def __init__(
        self,
        queue_urls: dict[QueueName, str],
        client: SQSClient | None = None,
    ) -> None:
        self._queue_urls = queue_urls
        self._client = client

    @property
    def client(self) -> SQSClient:
        return self._client or aws.sqs()

    def dispatch(self, job: Job) -> None:
        try:
            self.client.send_message(
                QueueUrl=self._queue_urls[job.priority.queue],
                MessageBody=JobMessage.of(job).model_dump_json(),
            )
        except (ClientError, BotoCoreError) as exc:
            raise DispatchFailed(f"send {job.username}: {type(exc).__name__}") from exc
