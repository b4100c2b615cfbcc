"""The sweeper, on an EventBridge schedule: retries due failures, re-dispatches
unclaimed jobs, and repairs jobs whose worker died."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from viralspot import bootstrap

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = bootstrap.services().sweep(time_left_ms=context.get_remaining_time_in_millis)
    for repair, count in report.repairs.items():
        if count:
            metrics.add_metric(name=f"Sweep_{repair}", unit=MetricUnit.Count, value=count)
    logger.info("sweep done", extra={"repairs": report.repairs, "examined": report.examined})
    return {
        "examined": report.examined,
        "repairs": report.repairs,
        "stopped_early": report.stopped_early,
    }
