"""The ports: one per table or resource the services use (Jobs, Profiles, Content,
Queues) and one for the data source (Provider). Adapters (DynamoDB, SQS, the
providers) and the in-memory fakes of tests/fakes implement them; the services
never import boto3, and no port names a DynamoDB or SQS type: listings are
iterators or domain positions. The one adapter token the domain holds is a feed
stream's `resume` (`feed.StreamRead`): opaque, handed back to the adapter within
one request, never put in a cursor.

Every domain type is imported for type checking only, so any domain module may
import this one without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from viralspot.analytics import ScoredReel
    from viralspot.content import Post, PostSort
    from viralspot.feed import FeedProfile, StreamChunk, StreamRead
    from viralspot.jobs import Job, Priority, SweepKind
    from viralspot.operations import QueueDepth, QueueRedrive
    from viralspot.profiles import Profile
    from viralspot.providers import ProviderProfile, ProviderReel
    from viralspot.queue_stats import PositionFacts, QueueFacts, Sample


class ProfileGuard(StrEnum):
    """What the Profiles item must look like for a new job to be allowed."""

    ABSENT = "absent"
    SECONDARY = "secondary"
    STALE = "stale"
    CRAWLED = "crawled"  # a fresh primary analysed only at crawl depth


class IntakeBlocked(Exception):
    """The atomic intake refused: the items that blocked it, as they were."""

    def __init__(self, job: Job | None, profile: Profile | None) -> None:
        super().__init__("intake blocked")
        self.job = job
        self.profile = profile


# SQS takes at most ten entries per SendMessageBatch call.
BATCH_ENTRIES = 10


class Jobs(Protocol):
    """The Jobs table: one item per username. Intake creates and reads jobs, the
    worker claims and finishes them, the sweeper and the admin routes repair them.
    Every change is conditional on the version read: False/None means it moved on."""

    # -- intake and status --------------------------------------------------------

    def read(self, username: str) -> tuple[Job | None, Profile | None]:
        """The job and the profile, strongly consistent, in one round trip."""
        ...

    def create(
        self,
        job: Job,
        guard: ProfileGuard,
        *,
        recent_before: datetime,
        stale_before: datetime,
    ) -> None:
        """In one atomic step, store `job` if the profile passes `guard` and the
        username has no job, or one COMPLETED before `recent_before`, or one FAILED
        for good. Raises IntakeBlocked with what stood in the way."""
        ...

    def get(self, username: str) -> Job | None: ...

    def raise_priority(self, job: Job, raised: Job) -> bool:
        """Store `raised` over a waiting `job` still exactly as read; False if it changed."""
        ...

    def position_facts(self, job: Job, cap: int) -> PositionFacts:
        """Active jobs served before `job` (higher priority, or same and earlier),
        exactly up to `cap`, and the queue counters for what lies beyond."""
        ...

    def queue_facts(self) -> QueueFacts: ...

    def save_sample(self, sample: Sample, *, replaces: Sample | None) -> bool:
        """Store the drain-rate sample if the stored one is still `replaces`."""
        ...

    # -- sending --------------------------------------------------------------------

    def mark_dispatched(self, job: Job, now: datetime) -> Job | None:
        """Record that the job's message is in SQS; None if the job moved on."""
        ...

    # -- the worker -----------------------------------------------------------------

    def claim(
        self,
        username: str,
        request_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
        lease_id: str,
    ) -> Job | None:
        """Take the job the message names for one attempt, under a lease; None when
        it is not claimable (duplicate delivery, superseded, finished, exhausted)."""
        ...

    def finish(self, claimed: Job, outcome: Job) -> bool:
        """Store the attempt's outcome if the claim (lease) still holds."""
        ...

    def replace(self, expected: Job, new: Job) -> bool:
        """Store `new` over a job still exactly `expected` (same version)."""
        ...

    # -- repairs (the sweeper, process-pending) ---------------------------------------

    def due(
        self,
        kind: SweepKind,
        priority: Priority | None,
        before: datetime,
        *,
        page: int = 50,
        after: tuple[str, str] | None = None,
    ) -> Iterator[Job]:
        """Jobs of `kind` (and `priority`) due at or before `before`, in (sweep time,
        username) order, read lazily `page` at a time; `after` resumes past that
        (sweep time as ISO text, username) position."""
        ...


class Profiles(Protocol):
    """The Profiles table: primaries (analysed) and secondaries (seen as similar)."""

    def get(self, username: str) -> Profile | None: ...

    def get_many(self, usernames: list[str]) -> list[Profile]: ...

    def put_primary(self, profile: Profile) -> None: ...

    def put_secondaries(self, profiles: Sequence[Profile]) -> int:
        """Store profiles not analysed themselves, never over a primary; how many."""
        ...


class Content(Protocol):
    """The Content table: one item per reel, listed per profile and in the feed."""

    def put_reels(
        self,
        username: str,
        reels: Sequence[ScoredReel],
        data_source: str,
        *,
        profile: FeedProfile,
    ) -> None:
        """Store the reels, listed in the viral-ideas feed with what it shows of `profile`."""
        ...

    def remove_other_reels(self, username: str, keep: set[str]) -> int:
        """Delete the profile's reels whose shortcode is not in `keep`; how many."""
        ...

    def page(
        self, username: str, sort: PostSort, limit: int, cursor: str | None
    ) -> tuple[list[Post], str | None]:
        """A page of the profile's reels and the signed cursor of the next one."""
        ...

    def read_streams(self, reads: Sequence[StreamRead]) -> list[StreamChunk]:
        """Each feed read's chunk, in order (the adapter may run them concurrently)."""
        ...


class Queues(Protocol):
    """The work queues (one per priority) and their dead-letter queues."""

    def dispatch(self, job: Job) -> None:
        """Send the job's message to its priority's queue; raises DispatchFailed."""
        ...

    def dispatch_batch(self, jobs: Sequence[Job]) -> list[Job]:
        """Send many jobs' messages in few calls; the jobs whose send was confirmed
        (the others are unsent, as after a DispatchFailed)."""
        ...

    def depth(self, url: str) -> QueueDepth: ...

    def redrive(
        self, source_url: str, target_url: str, *, max_messages: int, deadline: float
    ) -> QueueRedrive:
        """Move a dead-letter queue's messages back to `target_url`."""
        ...


class Provider(Protocol):
    """An Instagram data source. Raises `viralspot.errors.ProviderError` subclasses,
    never transport exceptions."""

    name: str

    def fetch_profile(self, username: str) -> ProviderProfile: ...

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]: ...

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]: ...
