"""In-memory fakes of the worker's and the sweeper's ports, on top of tests/fakes/memory.py.

Same conditional semantics as the DynamoDB adapters, condition by condition:

- `claim` (DynamoJobStore.claim): `request_id = :rid AND attempts < :max AND
  (status = PENDING OR (status = PROCESSING AND lease_until < :now))`; then
  PROCESSING, attempts + 1, last_attempt = updated_at = now, the new lease, no
  next_retry_at.
- `finish` (DynamoJobStore.finish): put the outcome if `request_id`, PROCESSING,
  `lease_until` and `updated_at` are still those of the claim.
- `replace` (DynamoJobStore.replace): put if `request_id`, `status` and `updated_at`
  (and, for a waiting job, `dispatched_at`) are still those of the version read.
- `due` (DynamoJobStore.due): the SweepIndex query over every shard. The index keys
  come from `jobs.sweep_entry` and the adapter's own `sweep_partition`, as
  `job_to_item` derives them, so a job is in the index exactly when it would be there
  in DynamoDB, and `sweep_at <= before` compares the same ISO
  strings. It reads lazily, resuming strictly after the last key returned, as the
  adapter's pages do.

Timestamps compare as DynamoDB compares them: as the stored millisecond ISO strings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

from tests.fakes.memory import MemoryJobStore, MemoryProfiles
from viralspot.adapters.dynamo_jobs import sweep_partition
from viralspot.analytics import ScoredReel
from viralspot.clock import to_iso
from viralspot.errors import StorageUnavailable
from viralspot.feed import FeedProfile
from viralspot.jobs import Job, JobStatus, Priority, SweepKind, claimed, sweep_entry
from viralspot.profiles import Profile, Tier
from viralspot.sharding import shard_of


def _same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return to_iso(a) == to_iso(b)


class MemoryWorkerJobStore(MemoryJobStore):
    """The Jobs table for intake, worker and sweeper: all of `ports.Jobs`."""

    def __init__(self, profiles: MemoryProfiles | None = None) -> None:
        super().__init__(profiles)
        self.claims = 0

    # -- worker ----------------------------------------------------------------

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
        with self._lock:
            job = self._items.get(username)
            if job is not None and job.lease_id == lease_id and job.status is JobStatus.PROCESSING:
                return job  # our own earlier success, retried after a lost answer
            if job is None or job.request_id != request_id or job.attempts >= max_attempts:
                return None
            expired = (
                job.status is JobStatus.PROCESSING
                and job.lease_until is not None
                and to_iso(job.lease_until) < to_iso(now)
            )
            if job.status is not JobStatus.PENDING and not expired:
                return None
            taken = claimed(job, now, lease_until, lease_id)
            self._store(job, taken)
            self.claims += 1
            return taken

    def finish(self, claimed: Job, outcome: Job) -> bool:
        if claimed.lease_until is None:
            raise ValueError("finish() needs the claimed job, with its lease")
        with self._lock:
            current = self._items.get(claimed.username)
            if (
                current is None
                or current.request_id != claimed.request_id
                or current.status is not JobStatus.PROCESSING
                or not _same_instant(current.lease_until, claimed.lease_until)
                or not _same_instant(current.updated_at, claimed.updated_at)
            ):
                return False
            self._store(current, outcome)
            return True

    # -- sweeper ---------------------------------------------------------------

    def due(
        self,
        kind: SweepKind,
        priority: Priority | None,
        before: datetime,
        *,
        page: int = 50,
        after: tuple[str, str] | None = None,
    ) -> Iterator[Job]:
        cutoff = to_iso(before)
        while True:
            with self._lock:
                indexed = []
                for job in self._items.values():
                    # The index keys as `job_to_item` derives them (without the rest of
                    # the item, which the sweeper's many queries would pay for).
                    entry = sweep_entry(job)
                    if entry is None:
                        continue
                    entry_kind, since = entry
                    key = (to_iso(since), job.username)
                    if (
                        sweep_partition(entry_kind, job.priority, shard_of(job.username))
                        == sweep_partition(kind, priority, shard_of(job.username))
                        and key[0] <= cutoff
                        and (after is None or key > after)
                    ):
                        indexed.append((key, job))
            indexed.sort(key=lambda entry: entry[0])
            if not indexed:
                return
            for key, job in indexed[:page]:
                after = key
                yield job

    def replace(self, expected: Job, new: Job) -> bool:
        if expected.updated_at is None:
            raise ValueError("replace() needs a stored job (with updated_at)")
        with self._lock:
            current = self._items.get(expected.username)
            if (
                current is None
                or current.request_id != expected.request_id
                or current.status is not expected.status
                or current.priority is not expected.priority
                or not _same_instant(current.updated_at, expected.updated_at)
                or (
                    current.status is JobStatus.PENDING
                    and not _same_instant(current.dispatched_at, expected.dispatched_at)
                )
            ):
                return False
            self._store(current, new)
            return True


class MemoryProfileStore(MemoryProfiles):
    """The Profiles table (`ports.Profiles`) as DynamoProfileStore writes it."""

    def put_primary(self, profile: Profile) -> None:
        with self._lock:
            existing = self._items.get(profile.username)
            # `created_at = if_not_exists(created_at, :created)`: first seen, not last analysed.
            created = (existing.created_at if existing else None) or profile.created_at
            self._items[profile.username] = profile.model_copy(update={"created_at": created})

    def put_secondaries(self, profiles: Sequence[Profile]) -> int:
        """Never over a primary (`attribute_not_exists(username) OR tier = secondary`)."""
        written = 0
        with self._lock:
            for profile in list(profiles)[:100]:
                existing = self._items.get(profile.username)
                if existing is None or existing.tier is Tier.SECONDARY:
                    self._items[profile.username] = profile
                    written += 1
        return written

    def get_many(self, usernames: list[str]) -> list[Profile]:
        with self._lock:
            return [
                self._items[name]
                for name in list(dict.fromkeys(usernames))[:100]
                if name in self._items
            ]


class MemoryContent:
    """The Content table's writes (`ports.Content.put_reels`, `remove_other_reels`):
    one item per (username, shortcode)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[tuple[str, str], ScoredReel] = {}
        self.feed_profiles: dict[str, FeedProfile] = {}
        self.writes = 0
        # The next put_reels is refused as DynamoDB refuses a throttled write.
        self.refuse_next_put = False

    def put_reels(
        self,
        username: str,
        reels: Sequence[ScoredReel],
        data_source: str,
        *,
        profile: FeedProfile,
    ) -> None:
        if self.refuse_next_put:
            self.refuse_next_put = False
            raise StorageUnavailable("write reels: ProvisionedThroughputExceededException")
        with self._lock:
            self.writes += 1
            self.feed_profiles[username] = profile
            for reel in reels:
                self.items[(username, reel.shortcode)] = reel

    def remove_other_reels(self, username: str, keep: set[str]) -> int:
        with self._lock:
            stale = [key for key in self.items if key[0] == username and key[1] not in keep]
            for key in stale:
                del self.items[key]
            return len(stale)

    def reels_of(self, username: str) -> list[ScoredReel]:
        with self._lock:
            return [reel for (name, _), reel in self.items.items() if name == username]
