"""Sends job messages to their priority's SQS queue, one at a time or in batches."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.errors import DispatchFailed
from viralspot.jobs import Job, JobMessage, QueueName
from viralspot.ports import BATCH_ENTRIES

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)


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

    def dispatch_batch(self, jobs: Sequence[Job]) -> list[Job]:
        """Send each job's message, ten to a SendMessageBatch call per queue; the jobs
        whose send SQS confirmed. An entry SQS refused, or a call that failed as a
        whole, leaves its jobs out: the caller treats them as unsent."""
        sent: list[Job] = []
        by_queue = sorted(jobs, key=lambda job: job.priority.rank)
        for queue, group in groupby(by_queue, key=lambda job: job.priority.queue):
            waiting = list(group)
            for start in range(0, len(waiting), BATCH_ENTRIES):
                sent.extend(self._send_batch(queue, waiting[start : start + BATCH_ENTRIES]))
        return sent

    def _send_batch(self, queue: QueueName, jobs: list[Job]) -> list[Job]:
        # Entry ids only need to be unique within the call: the job's place in it.
        entries: list[Any] = [
            {"Id": str(i), "MessageBody": JobMessage.of(job).model_dump_json()}
            for i, job in enumerate(jobs)
        ]
        try:
            response = self.client.send_message_batch(
                QueueUrl=self._queue_urls[queue], Entries=entries
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("batch send failed", extra={"queue": queue, "error": type(exc).__name__})
            return []
        failed = response.get("Failed", [])
        if failed:
            logger.warning(
                "batch entries refused",
                extra={"queue": queue, "codes": sorted({f.get("Code", "") for f in failed})},
            )
        return [jobs[int(ok["Id"])] for ok in response.get("Successful", [])]
