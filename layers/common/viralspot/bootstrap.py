"""The one place that wires real adapters to the services (once per container):
`services()` hands out the ready services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from viralspot import cursors, intake, sweeper
from viralspot.adapters.dynamo_content import DynamoContentStore
from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.adapters.dynamo_profiles import DynamoProfileStore
from viralspot.adapters.secrets import secret_string
from viralspot.adapters.sqs_queues import SqsQueues
from viralspot.clock import Clock, utc_now
from viralspot.config import Settings, get_settings
from viralspot.errors import ProviderUnauthorized, SecretUnavailable
from viralspot.intake import IntakePolicy
from viralspot.jobs import QueueName, Source
from viralspot.pipeline import PipelinePolicy, Worker
from viralspot.ports import Content, Jobs, Profiles, Provider, Queues
from viralspot.providers import ProviderProfile, ProviderReel
from viralspot.retry import RetryPolicy
from viralspot.sweeper import SweepPolicy


@dataclass(frozen=True)
class Services:
    """The container's services, wired to their ports: callers ask for what to do
    (`intake`, `worker`, `sweep`) and never pass the wiring again. Built from real
    adapters by `services()`, or from fakes by a test."""

    settings: Settings
    jobs: Jobs
    profiles: Profiles
    content: Content
    queues: Queues
    policy: IntakePolicy
    clock: Clock
    # The admin key, read on demand (Secrets Manager through Powertools' cache).
    admin_key: Callable[[], str]

    @property
    def retry(self) -> RetryPolicy:
        return self.settings.retry

    def intake(
        self,
        username: str,
        source: Source,
        *,
        depth: int = 0,
        discovered_from: str | None = None,
        with_position: bool = True,
    ) -> intake.Decision:
        """The request rule for one (already normalised) username."""
        return intake.request_profile(
            username,
            source,
            jobs=self.jobs,
            dispatcher=self.queues,
            policy=self.policy,
            clock=self.clock,
            depth=depth,
            discovered_from=discovered_from,
            with_position=with_position,
        )

    def worker(self, provider: Provider | None = None) -> Worker:
        """The worker, over `provider` (default: the configured one, resolved lazily)."""
        settings = self.settings

        def discover(username: str, depth: int, parent: str) -> None:
            # Nobody reads a crawled job's position.
            self.intake(
                username, Source.CRAWLER, depth=depth, discovered_from=parent, with_position=False
            )

        return Worker(
            jobs=self.jobs,
            profiles=self.profiles,
            content=self.content,
            provider=provider if provider is not None else LazyProvider(settings),
            discover=discover,
            policy=PipelinePolicy(
                lease=timedelta(seconds=settings.lease_seconds),
                retry=self.retry,
                reels_target=settings.reels_target,
                low_priority_reels_target=settings.low_priority_reels_target,
                discovery_max_depth=settings.discovery_max_depth,
                discovery_fan_out=settings.discovery_fan_out,
            ),
            clock=self.clock,
        )

    @property
    def sweep_policy(self) -> SweepPolicy:
        settings = self.settings
        return SweepPolicy(
            pending_grace=timedelta(minutes=settings.pending_grace_minutes),
            retry=self.retry,
            max_jobs=settings.sweep_max_jobs,
            message_retention=timedelta(seconds=settings.queue_retention_seconds)
            - timedelta(hours=1),
        )

    def sweep(
        self,
        *,
        time_left_ms: Callable[[], int] = lambda: 1_000_000,
        policy: SweepPolicy | None = None,
    ) -> sweeper.SweepReport:
        """One sweeper run (default policy: the settings')."""
        return sweeper.sweep(
            store=self.jobs,
            dispatcher=self.queues,
            policy=policy or self.sweep_policy,
            clock=self.clock,
            time_left_ms=time_left_ms,
        )


def _admin_key(settings: Settings) -> Callable[[], str]:
    def read() -> str:
        if not settings.admin_key_secret:
            raise SecretUnavailable("ADMIN_KEY_SECRET is not configured")
        return secret_string(settings.admin_key_secret)

    return read


def _cursor_key() -> bytes:
    # The settings of the moment, read on each use (cached by get_settings and
    # Powertools), so a rebuilt wiring never signs with an old stack's key.
    secret = get_settings().cursor_key_secret
    if not secret:
        raise SecretUnavailable("CURSOR_KEY_SECRET is not configured")
    return secret_string(secret).encode()


def build(settings: Settings, clock: Clock = utc_now) -> Services:
    cursors.use_key(_cursor_key)
    return Services(
        settings=settings,
        jobs=DynamoJobStore(settings.jobs_table, settings.profiles_table),
        profiles=DynamoProfileStore(settings.profiles_table),
        content=DynamoContentStore(settings.content_table),
        queues=SqsQueues({QueueName(name): url for name, url in settings.queue_urls().items()}),
        policy=IntakePolicy(stale_after=timedelta(days=settings.profile_stale_after_days)),
        clock=clock,
        admin_key=_admin_key(settings),
    )


@cache
def services() -> Services:
    """The container's services, built on first use."""
    return build(get_settings())


def provider_for(settings: Settings) -> Provider:
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
def _sample_provider() -> Provider:
    # One per container: its documented flaky usernames count failures per process.
    from viralspot.providers.sample import SampleProvider

    # Reels dated back from the start of today (UTC), not from the provider's fixed
    # 2025 instant: the viral-ideas feed lists recent reels, and a demo's feed must
    # not be empty. Still the same data for a username all day.
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    return SampleProvider(reference_time=today)


class LazyProvider:
    """The configured provider, looked up on first use inside the job's attempt: a
    key that is missing or unreadable then pauses that job (ProviderUnauthorized)
    like a rejected one, instead of failing the message before any job is claimed.
    One is made per record; the provider it resolves to is the container's."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._resolved: Provider | None = None
        self.name: str = settings.provider

    def resolve(self) -> Provider:
        if self._resolved is None:
            self._resolved = provider_for(self._settings)
        return self._resolved

    def fetch_profile(self, username: str) -> ProviderProfile:
        return self.resolve().fetch_profile(username)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        return self.resolve().fetch_reels(username, target)

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return self.resolve().fetch_similar(username, limit)


def reset() -> None:
    """Forget the wiring (tests change the environment between cases)."""
    services.cache_clear()
    _sample_provider.cache_clear()
    get_settings.cache_clear()
