"""In-memory fakes of the intake ports (viralspot.ports), for fast rule tests.

They keep the semantics of the DynamoDB adapters, not just their signatures:

- `MemoryJobStore.create` is one atomic step (under a lock) with the conditions of
  `DynamoJobStore.create`: the profile guard (ABSENT / SECONDARY / STALE) and the
  "job replaceable" rule (no job, COMPLETED before `recent_before`, or FAILED
  without `next_retry_at`). When it refuses, it raises `IntakeBlocked` with what
  DynamoDB's `ReturnValuesOnConditionCheckFailure=ALL_OLD` would return: the item
  of each condition that failed (the profile only if its guard failed and it
  exists; the job only if the job condition failed).
- `read` returns the job and the profile as they are (a strongly consistent read).
- `position_facts` orders active jobs by (priority rank, enqueued_at, username), as
  the ActiveQueueIndex sort key does, and gives up beyond the cap as the capped
  shard counts do; the counters move with every write by `queue_stats.transition`,
  as the adapter's do.
- `raise_priority` and `mark_dispatched` are conditional on the version read, as
  the adapter's conditions are.

Every fake takes a lock, so threads can hammer them concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from viralspot.errors import DispatchFailed
from viralspot.jobs import Job, JobStatus, QueueName
from viralspot.ports import IntakeBlocked, ProfileGuard
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import PositionFacts, QueueCounts, QueueFacts, Sample, transition


class MemoryProfiles:
    """The Profiles table as intake reads it (`ports.Profiles.get`), plus `put` for
    arranging tests."""

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
    if guard is ProfileGuard.CRAWLED:
        return profile.crawled_only
    # STALE: tier = primary AND (no last_scraped_at OR last_scraped_at < stale_before)
    return profile.tier is Tier.PRIMARY and (
        profile.last_scraped_at is None or profile.last_scraped_at < stale_before
    )


def _job_replaceable(existing: Job | None, recent_before: datetime, guard: ProfileGuard) -> bool:
    if existing is None:
        return True
    if existing.status is JobStatus.COMPLETED and guard is ProfileGuard.CRAWLED:
        return True
    if existing.status is JobStatus.COMPLETED:
        # `completed_at < :recent_before`: a COMPLETED job without completed_at fails
        # the comparison in DynamoDB, so it is not replaceable either.
        return existing.completed_at is not None and existing.completed_at < recent_before
    return existing.status is JobStatus.FAILED and existing.next_retry_at is None


def _queue_key(job: Job) -> tuple[int, datetime, str]:
    return (job.priority.rank, job.enqueued_at, job.username)


class MemoryJobStore:
    """The Jobs table with the atomic intake write of `DynamoJobStore` (intake's part
    of `ports.Jobs`; `MemoryWorkerJobStore` adds the rest)."""

    def __init__(self, profiles: MemoryProfiles | None = None) -> None:
        self.profiles = profiles if profiles is not None else MemoryProfiles()
        self._lock = threading.RLock()
        self._items: dict[str, Job] = {}
        self._counters: dict[str, int] = {}
        self._sample: Sample | None = None
        self.create_calls = 0
        # Called by read() with the username after its snapshot is taken, outside the
        # lock: lets a test slip a concurrent change in before the caller acts on it.
        self.after_read: Callable[[str], None] | None = None

    # -- arranging and inspecting ------------------------------------------------

    def put(self, job: Job) -> None:
        with self._lock:
            self._items[job.username] = job

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._items.values())

    def _store(self, before: Job | None, after: Job) -> None:
        """Write `after` and count the transition, as the adapter does (lock held)."""
        self._items[after.username] = after
        for name, n in transition(before, after).items():
            self._counters[name] = self._counters.get(name, 0) + n

    # -- ports.Jobs, intake's part ------------------------------------------------------------------

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
            profile = self.profiles.get(job.username)
            existing = self._items.get(job.username)
            profile_ok = _profile_passes(profile, guard, stale_before)
            job_ok = _job_replaceable(existing, recent_before, guard)
            if profile_ok and job_ok:
                self._store(None, job)
                return
            raise IntakeBlocked(
                job=None if job_ok else existing,
                profile=None if profile_ok else profile,
            )

    def read(self, username: str) -> tuple[Job | None, Profile | None]:
        with self._lock:
            seen = self._items.get(username), self.profiles.get(username)
        if self.after_read is not None:
            self.after_read(username)
        return seen

    def get(self, username: str) -> Job | None:
        with self._lock:
            return self._items.get(username)

    def mark_dispatched(self, job: Job, now: datetime) -> Job | None:
        with self._lock:
            current = self._items.get(job.username)
            if (
                current is None
                or current.request_id != job.request_id
                or current.status is not JobStatus.PENDING
                or current.priority is not job.priority
            ):
                return None
            sent = current.model_copy(update={"dispatched_at": now})
            self._store(current, sent)
            return sent

    def position_facts(self, job: Job, cap: int) -> PositionFacts:
        mine = _queue_key(job)
        with self._lock:
            ahead = sum(
                1 for other in self._items.values() if other.is_active and _queue_key(other) < mine
            )
        return PositionFacts(ahead=ahead if ahead <= cap else None, facts=self.queue_facts())

    def queue_facts(self) -> QueueFacts:
        with self._lock:
            return QueueFacts(counts=QueueCounts(values=dict(self._counters)), sample=self._sample)

    def save_sample(self, sample: Sample, *, replaces: Sample | None) -> bool:
        with self._lock:
            current = self._sample
            if (current is None) != (replaces is None) or (
                current is not None and replaces is not None and current.at != replaces.at
            ):
                return False
            self._sample = sample
            return True

    def raise_priority(self, job: Job, raised: Job) -> bool:
        with self._lock:
            current = self._items.get(job.username)
            if current is None or current != job:
                return False
            self._store(current, raised)
            return True


class RecordingDispatcher:
    """`ports.Queues.dispatch` that records what it sent, per queue; `fail = True` makes it
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
