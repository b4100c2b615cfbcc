"""The one place that wires real adapters to the services (once per container)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.adapters.dynamo_profiles import DynamoProfileStore
from viralspot.adapters.sqs_dispatcher import SqsDispatcher
from viralspot.clock import Clock, utc_now
from viralspot.config import Settings, get_settings
from viralspot.intake import IntakePolicy
from viralspot.jobs import QueueName


@dataclass(frozen=True)
class Context:
    settings: Settings
    jobs: DynamoJobStore
    profiles: DynamoProfileStore
    dispatcher: SqsDispatcher
    policy: IntakePolicy
    clock: Clock


def build(settings: Settings, clock: Clock = utc_now) -> Context:
    return Context(
        settings=settings,
        jobs=DynamoJobStore(settings.jobs_table, settings.profiles_table),
        profiles=DynamoProfileStore(settings.profiles_table),
        dispatcher=SqsDispatcher(
            {QueueName.HIGH: settings.high_queue_url, QueueName.LOW: settings.low_queue_url}
        ),
        policy=IntakePolicy(stale_after=timedelta(days=settings.profile_stale_after_days)),
        clock=clock,
    )


@cache
def context() -> Context:
    return build(get_settings())


def reset() -> None:
    """Forget the wiring (tests change the environment between cases)."""
    context.cache_clear()
    get_settings.cache_clear()
