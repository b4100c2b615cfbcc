"""The Queues port on SQS: sending job messages (SqsDispatcher), approximate depths,
and moving dead letters back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from viralspot.adapters import aws
from viralspot.adapters.sqs_dispatcher import SqsDispatcher
from viralspot.errors import QueueUnavailable
from viralspot.jobs import QueueName
from viralspot.operations import MoveTask, QueueDepth, QueueRedrive

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)

_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}
# What an endpoint without message move tasks answers (the local emulator: devstack
# makes moto say NotImplemented rather than a bare 500).
_NO_MOVE_TASKS = frozenset({"NotImplemented", "UnknownOperationException", "InvalidAction"})


class SqsQueues(SqsDispatcher):
    def __init__(self, queue_urls: dict[QueueName, str], client: SQSClient | None = None) -> None:
        super().__init__(queue_urls, client)
        # Learned on the first redrive: whether this endpoint runs move tasks.
        self._move_tasks: bool | None = None

    def depth(self, url: str) -> QueueDepth:
        attributes = self._attributes(url, list(_ATTRIBUTES))
        return QueueDepth.model_validate(
            {field: int(attributes.get(name, 0)) for name, field in _ATTRIBUTES.items()}
        )

    def _attributes(self, url: str, names: list[Any]) -> dict[str, str]:
        try:
            response = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        except (ClientError, BotoCoreError) as exc:
            raise QueueUnavailable(f"queue attributes: {type(exc).__name__}") from exc
        return {str(k): v for k, v in response.get("Attributes", {}).items()}

    def redrive(
        self, source_url: str, target_url: str, *, max_messages: int, deadline: float
    ) -> QueueRedrive:
        """Move a dead-letter queue's messages back to `target_url`: through an SQS
        message move task where the endpoint has them (AWS: server-side, every
        message, whatever the count), else by hand, up to `max_messages` before
        `deadline` (time.monotonic)."""
        if self._move_tasks is not False:
            try:
                return self._move_task(source_url, target_url)
            except ClientError as exc:
                if aws.error_code(exc) not in _NO_MOVE_TASKS:
                    raise QueueUnavailable(f"redrive: {aws.error_code(exc)}") from exc
                logger.info("no SQS message move tasks here: moving dead letters by hand")
                self._move_tasks = False
            except BotoCoreError as exc:
                raise QueueUnavailable(f"redrive: {type(exc).__name__}") from exc
        return QueueRedrive(moved=self.move(source_url, target_url, max_messages, deadline))

    def _move_task(self, source_url: str, target_url: str) -> QueueRedrive:
        source = self._attributes(source_url, ["QueueArn", "ApproximateNumberOfMessages"])
        target = self._attributes(target_url, ["QueueArn"])
        waiting = int(source.get("ApproximateNumberOfMessages", 0))
        latest = self.client.list_message_move_tasks(
            SourceArn=source["QueueArn"], MaxResults=1
        ).get("Results", [])
        self._move_tasks = True
        if latest and latest[0].get("Status") == "RUNNING":
            # One task per queue at a time: the running one will move these too.
            running = latest[0]
            left = running.get("ApproximateNumberOfMessagesToMove", waiting) - running.get(
                "ApproximateNumberOfMessagesMoved", 0
            )
            return QueueRedrive(
                task=MoveTask(
                    task_handle=running.get("TaskHandle"),
                    status="RUNNING",
                    approximate_messages=max(0, left),
                    started=False,
                )
            )
        if waiting == 0:
            return QueueRedrive()
        handle = self.client.start_message_move_task(
            SourceArn=source["QueueArn"], DestinationArn=target["QueueArn"]
        )["TaskHandle"]
        return QueueRedrive(
            moved=waiting,
            task=MoveTask(
                task_handle=handle, status="RUNNING", approximate_messages=waiting, started=True
            ),
        )

    def move(
        self, source_url: str, target_url: str, max_messages: int, deadline: float | None = None
    ) -> int:
        """Move up to `max_messages` from a dead-letter queue back to its queue, ten
        at a time, stopping at `deadline` (time.monotonic).

        Each batch is sent before it is deleted, so a failure in between leaves a copy
        in both places rather than none: the worker's claim rule makes the duplicate
        harmless. Only what SQS confirmed sending is deleted."""
        moved = 0
        try:
            while moved < max_messages and (deadline is None or time.monotonic() < deadline):
                batch = self.client.receive_message(
                    QueueUrl=source_url,
                    MaxNumberOfMessages=min(10, max_messages - moved),
                    WaitTimeSeconds=0,
                ).get("Messages", [])
                if not batch:
                    break
                sent = self.client.send_message_batch(
                    QueueUrl=target_url,
                    Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)],
                ).get("Successful", [])
                if not sent:
                    break
                self.client.delete_message_batch(
                    QueueUrl=source_url,
                    Entries=[
                        {"Id": ok["Id"], "ReceiptHandle": batch[int(ok["Id"])]["ReceiptHandle"]}
                        for ok in sent
                    ],
                )
                moved += len(sent)
        except (ClientError, BotoCoreError) as exc:
            if not moved:
                raise QueueUnavailable(f"redrive: {type(exc).__name__}") from exc
            # What moved is moved: say so; the rest waits for the next call.
            logger.warning("redrive stopped early", extra={"moved": moved, "error": str(exc)})
        return moved
