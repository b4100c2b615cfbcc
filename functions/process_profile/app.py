"""The worker: SQS batches from the high and low queues, one profile per record."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from viralspot import bootstrap

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def record_handler(record: SQSRecord) -> str:
    # Raising here marks only this record failed; SQS redelivers it after the
    # visibility timeout (storage trouble, the job given back first). Provider
    # failures never raise: they are recorded on the job (retried by the sweeper
    # with backoff, or paused when the fault is not the job's).
    receives = int(record.attributes.approximate_receive_count)
    services = bootstrap.services()
    last = receives >= services.settings.max_receive_count
    result = services.worker().process(record.body, last_delivery=last)
    metrics.add_metric(name=f"Worker_{result.value}", unit=MetricUnit.Count, value=1)
    return result.value


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
