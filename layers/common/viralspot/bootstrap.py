"""The one place that wires real adapters to the services (once per container)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from viralspot import intake
from viralspot.adapters.dynamo_content import DynamoContentStore
from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.adapters.dynamo_profiles import DynamoProfileStore
from viralspot.adapters.secrets import secret_string
from viralspot.adapters.sqs_dispatcher import SqsDispatcher
from viralspot.adapters.sqs_queues import SqsQueues
from viralspot.clock import Clock, utc_now
from viralspot.config import Settings, get_settings
from viralspot.errors import ProviderUnauthorized, SecretUnavailable
from viralspot.intake import IntakePolicy
from viralspot.jobs import QueueName, Source
from viralspot.pipeline import PipelinePolicy, Worker
from viralspot.providers import ProfileProvider, ProviderProfile, ProviderReel
from viralspot.sweeper import SweepPolicy


@dataclass(frozen=True)
class Context:
    settings: Settings
    jobs: DynamoJobStore
    profiles: DynamoProfileStore
    content: DynamoContentStore
    dispatcher: SqsDispatcher
    queues: SqsQueues
    policy: IntakePolicy
    clock: Clock
    # The admin key, read on demand (Secrets Manager through Powertools' cache).
    admin_key: Callable[[], str]


def _admin_key(settings: Settings) -> Callable[[], str]:
    def read() -> str:
        if not settings.admin_key_secret:
            raise SecretUnavailable("ADMIN_KEY_SECRET is not configured")
        return secret_string(settings.admin_key_secret)

    return read


def build(settings: Settings, clock: Clock = utc_now) -> Context:
    return Context(
        settings=settings,
        jobs=DynamoJobStore(settings.jobs_table, settings.profiles_table),
        profiles=DynamoProfileStore(settings.profiles_table),
        content=DynamoContentStore(settings.content_table),
        dispatcher=SqsDispatcher(
            {QueueName(name): url for name, url in settings.queue_urls().items()}
        ),
        queues=SqsQueues(),
        policy=IntakePolicy(stale_after=timedelta(days=settings.profile_stale_after_days)),
        clock=clock,
        admin_key=_admin_key(settings),
    )


@cache
def context() -> Context:
    return build(get_settings())


def provider_for(settings: Settings) -> ProfileProvider:
    """The container's provider, asked for on every invocation. Cheap when warm: the
    RapidAPI key comes from SSM through Powertools' 5-minute cache, and the provider
    for that key (its connection pool with it) is built once per container, so a
    rotated key reaches warm containers within minutes and gets a provider of its own."""
    # Imported on demand: the API function never pays for an HTTP client it does not use.
    if settings.provider == "rapidapi":
        from viralspot.providers.rapidapi import rapidapi_from_parameters

        if not settings.rapidapi_key_parameter:
            raise ProviderUnauthorized(
                "PROVIDER=rapidapi needs RAPIDAPI_KEY_PARAMETER (an SSM name)"
            )
        return rapidapi_from_parameters(settings.rapidapi_key_parameter, settings.rapidapi_host)
    return _sample_provider()


@cache
def _sample_provider() -> ProfileProvider:
    # One per container: its documented flaky usernames count failures per process.
    from viralspot.providers.sample import SampleProvider

    # Reels dated back from the start of today (UTC), not from the provider's fixed
    # 2025 instant: the viral-ideas feed lists recent reels, and a demo's feed must
    # not be empty. Still the same data for a username all day.
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    return SampleProvider(reference_time=today)


def build_worker(ctx: Context, provider: ProfileProvider) -> Worker:
    settings = ctx.settings

    def discover(username: str, depth: int, parent: str) -> None:
        intake.request_profile(
            username,
            Source.CRAWLER,
            jobs=ctx.jobs,
            dispatcher=ctx.dispatcher,
            policy=ctx.policy,
            clock=ctx.clock,
            depth=depth,
            discovered_from=parent,
            # Nobody reads a crawled job's position.
            with_position=False,
        )

    return Worker(
        jobs=ctx.jobs,
        profiles=ctx.profiles,
        content=ctx.content,
        provider=provider,
        discover=discover,
        policy=PipelinePolicy(
            lease=timedelta(seconds=settings.lease_seconds),
            max_attempts=settings.max_attempts,
            backoff_cap_minutes=settings.backoff_cap_minutes,
            backoff_base_seconds=settings.backoff_base_seconds,
            reels_target=settings.reels_target,
            low_priority_reels_target=settings.low_priority_reels_target,
            discovery_max_depth=settings.discovery_max_depth,
            discovery_fan_out=settings.discovery_fan_out,
        ),
        clock=ctx.clock,
    )


class LazyProvider:
    """The configured provider, looked up on first use inside the job's attempt: a
    key that is missing or unreadable then pauses that job (ProviderUnauthorized)
    like a rejected one, instead of failing the message before any job is claimed.
    One is made per record; the provider it resolves to is the container's."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resolved: ProfileProvider | None = None
        self.name: str = settings.provider

    def resolve(self) -> ProfileProvider:
        if self._resolved is None:
            self._resolved = provider_for(self._settings)
        return self._resolved

    def fetch_profile(self, username: str) -> ProviderProfile:
        return self.resolve().fetch_profile(username)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        return self.resolve().fetch_reels(username, target)

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return self.resolve().fetch_similar(username, limit)


def worker() -> Worker:
    ctx = context()
    return build_worker(ctx, LazyProvider(ctx.settings))


def sweep_policy(settings: Settings) -> SweepPolicy:
    return SweepPolicy(
        pending_grace=timedelta(minutes=settings.pending_grace_minutes),
        max_attempts=settings.max_attempts,
        backoff_cap_minutes=settings.backoff_cap_minutes,
        backoff_base_seconds=settings.backoff_base_seconds,
        max_jobs=settings.sweep_max_jobs,
        message_retention=timedelta(seconds=settings.queue_retention_seconds) - timedelta(hours=1),
    )


def reset() -> None:
    """Forget the wiring (tests change the environment between cases)."""
    context.cache_clear()
    _sample_provider.cache_clear()
    get_settings.cache_clear()
