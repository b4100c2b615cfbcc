"""The ports the services need. Adapters (DynamoDB, SQS) and in-memory fakes
implement them; the services never import boto3."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from viralspot.analytics import ScoredReel
from viralspot.feed import FeedProfile
from viralspot.jobs import Job
from viralspot.profiles import Profile
from viralspot.queue_stats import PositionFacts, QueueFacts


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


class JobStore(Protocol):
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

    def mark_dispatched(self, job: Job, now: datetime) -> Job | None:
        """Record that the job's message is in SQS; None if the job moved on."""
        ...

    def position_facts(self, job: Job, cap: int) -> PositionFacts:
        """Active jobs served before `job` (higher priority, or same and earlier),
        exactly up to `cap`, and the queue counters for what lies beyond."""
        ...

    def queue_facts(self) -> QueueFacts: ...

    def raise_priority(self, job: Job, raised: Job) -> bool:
        """Store `raised` over a waiting `job` still exactly as read; False if it changed."""
        ...


class ProfileReader(Protocol):
    def get(self, username: str) -> Profile | None: ...


class Dispatcher(Protocol):
    def dispatch(self, job: Job) -> None:
        """Send the job's message to its priority's queue; raises DispatchFailed."""
        ...


# SQS takes at most ten entries per SendMessageBatch call.
BATCH_ENTRIES = 10


class BatchDispatcher(Dispatcher, Protocol):
    def dispatch_batch(self, jobs: Sequence[Job]) -> list[Job]:
        """Send many jobs' messages in few calls; the jobs whose send was confirmed
        (the others are unsent, as after a DispatchFailed)."""
        ...


class WorkerJobStore(Protocol):
    def claim(
        self,
        username: str,
        request_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
        lease_id: str,
    ) -> Job | None: ...

    def finish(self, claimed: Job, outcome: Job) -> bool: ...

    def get(self, username: str) -> Job | None: ...

    def replace(self, expected: Job, new: Job) -> bool: ...


class ProfileWriter(Protocol):
    def put_primary(self, profile: Profile) -> None: ...

    def put_secondaries(self, profiles: Sequence[Profile]) -> int: ...


class ContentWriter(Protocol):
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
