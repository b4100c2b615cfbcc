"""In-memory fakes of the intake ports (viralspot.ports), for fast rule tests.

They keep the semantics of the DynamoDB adapters, not just their signatures:

- `MemoryJobStore.create` is one atomic step (under a lock) with the conditions of
  `DynamoJobStore.create`: the profile guard (ABSENT / SECONDARY / STALE) and the
  "job replaceable" rule (no job, COMPLETED before `recent_before`, or FAILED
  without `next_retry_at`). When it refuses, it raises `IntakeBlocked` with what
  DynamoDB's `ReturnValuesOnConditionCheckFailure=ALL_OLD` would return: the item
  of each condition that failed (the profile only if its guard failed and it
  exists; the job only if the job condition failed).
- `count_ahead` orders active jobs by (priority rank, enqueued_at, username), as the
  ActiveQueueIndex sort key does.
- `raise_priority` is conditional on the job still being PENDING with the same
  request_id and a stored priority below the new one (only ever upward), as the
  adapter's `priority IN (<lower priorities>)` condition.

Every fake takes a lock, so threads can hammer them concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from viralspot.errors import DispatchFailed
from viralspot.jobs import Job, JobStatus, Priority, QueueName
from viralspot.ports import IntakeBlocked, ProfileGuard, WriteConflict
from viralspot.profiles import Profile, Tier

DEFAULT_START = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


class SteppableClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("the domain works in aware UTC datetimes")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta if delta is not None else timedelta(**kwargs)
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


class MemoryProfiles:
    """The Profiles table: a `ProfileReader`, plus `put` for arranging tests."""

    def __init__(self, profiles: list[Profile] | None = None) -> None:
        self._lock = threading.RLock()
        self._items: dict[str, Profile] = {p.username: p for p in profiles or []}

    def get(self, username: str) -> Profile | None:
        with self._lock:
            return self._items.get(username)

    def put(self, profile: Profile) -> None:
        with self._lock:
            self._items[profile.username] = profile

    def delete(self, username: str) -> None:
        with self._lock:
            self._items.pop(username, None)


def _profile_passes(profile: Profile | None, guard: ProfileGuard, stale_before: datetime) -> bool:
    if guard is ProfileGuard.ABSENT:
        return profile is None
    if profile is None:
        return False
    if guard is ProfileGuard.SECONDARY:
        return profile.tier is Tier.SECONDARY
    # STALE: tier = primary AND (no last_scraped_at OR last_scraped_at < stale_before)
    return profile.tier is Tier.PRIMARY and (
        profile.last_scraped_at is None or profile.last_scraped_at < stale_before
    )


def _job_replaceable(existing: Job | None, recent_before: datetime) -> bool:
    if existing is None:
        return True
    if existing.status is JobStatus.COMPLETED:
        # `completed_at < :recent_before`: a COMPLETED job without completed_at fails
        # the comparison in DynamoDB, so it is not replaceable either.
        return existing.completed_at is not None and existing.completed_at < recent_before
    return existing.status is JobStatus.FAILED and existing.next_retry_at is None


def _queue_key(job: Job) -> tuple[int, datetime, str]:
    return (job.priority.rank, job.enqueued_at, job.username)


class MemoryJobStore:
    """The Jobs table with the atomic intake write of `DynamoJobStore` (a `JobStore`)."""

    def __init__(self, profiles: MemoryProfiles | None = None) -> None:
        self.profiles = profiles if profiles is not None else MemoryProfiles()
        self._lock = threading.RLock()
        self._items: dict[str, Job] = {}
        self._conflicts_left = 0
        self.create_calls = 0
        # Called inside create() after a refusal is decided, before it is raised,
        # outside the lock: lets a test slip a concurrent change in between.
        self.after_block: Callable[[Job], None] | None = None

    # -- arranging and inspecting ------------------------------------------------

    def put(self, job: Job) -> None:
        with self._lock:
            self._items[job.username] = job

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._items.values())

    def conflict_next(self, times: int) -> None:
        """The next `times` calls of create() fail as DynamoDB's TransactionConflict."""
        with self._lock:
            self._conflicts_left = times

    # -- JobStore ------------------------------------------------------------------

    def create(
        self,
        job: Job,
        guard: ProfileGuard,
        *,
        recent_before: datetime,
        stale_before: datetime,
    ) -> None:
        with self._lock:
            self.create_calls += 1
            if self._conflicts_left > 0:
                self._conflicts_left -= 1
                raise WriteConflict()
            profile = self.profiles.get(job.username)
            existing = self._items.get(job.username)
            profile_ok = _profile_passes(profile, guard, stale_before)
            job_ok = _job_replaceable(existing, recent_before)
            if profile_ok and job_ok:
                self._items[job.username] = job
                return
            blocked = IntakeBlocked(
                job=None if job_ok else existing,
                profile=None if profile_ok else profile,
            )
        if self.after_block is not None:
            self.after_block(job)
        raise blocked

    def get(self, username: str) -> Job | None:
        with self._lock:
            return self._items.get(username)

    def count_ahead(self, job: Job) -> int:
        mine = _queue_key(job)
        with self._lock:
            return sum(
                1 for other in self._items.values() if other.is_active and _queue_key(other) < mine
            )

    def raise_priority(self, job: Job, priority: Priority, now: datetime) -> Job | None:
        with self._lock:
            current = self._items.get(job.username)
            if (
                current is None
                or current.request_id != job.request_id
                or current.status is not job.status
                or not (current.status is JobStatus.PENDING or current.awaiting_retry)
                or current.priority.rank <= priority.rank
            ):
                return None
            raised = current.model_copy(update={"priority": priority, "updated_at": now})
            self._items[job.username] = raised
            return raised


class RecordingDispatcher:
    """A `Dispatcher` that records what it sent, per queue; `fail = True` makes it
    raise DispatchFailed (and send nothing), as SqsDispatcher does on an SQS error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent: list[tuple[QueueName, Job]] = []
        self.failed: list[Job] = []
        self.fail = False

    def dispatch(self, job: Job) -> None:
        with self._lock:
            if self.fail:
                self.failed.append(job)
                raise DispatchFailed(f"send {job.username}: injected failure")
            self.sent.append((job.priority.queue, job))

    def on(self, queue: QueueName) -> list[Job]:
        with self._lock:
            return [job for name, job in self.sent if name is queue]
