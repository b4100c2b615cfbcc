"""The request rule (DESIGN.md "Dedup is one atomic step", "Priority", "Queue position").

A request is decided by one atomic write; whatever blocked it is the answer, so
no second read is needed. A job is only ever reported as queued once it is stored.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from viralspot.clock import Clock, to_iso, to_millis
from viralspot.errors import DispatchFailed, StorageError, StorageUnavailable
from viralspot.jobs import (
    RECENT_COMPLETION_WINDOW,
    Job,
    JobStatus,
    Priority,
    ProfileType,
    Source,
    estimated_time,
    new_job,
)
from viralspot.ports import Dispatcher, IntakeBlocked, JobStore, ProfileGuard, WriteConflict
from viralspot.profiles import Profile, Tier

NEXT_CHECK = "30 seconds"

logger = Logger(child=True)

# Estimate for a job whose position was not counted: the slowest bucket.
_UNCOUNTED = 11


class Outcome(StrEnum):
    """One per answer; each is a metric."""

    NEW = "new"
    UPGRADED = "upgraded"  # a secondary or stale profile queued for full analysis
    PRIORITY_RAISED = "priority_raised"
    ALREADY_IN_QUEUE = "already_in_queue"
    ALREADY_PROCESSED = "already_processed"
    RECENTLY_COMPLETED = "recently_completed"


class IntakeAnswer(BaseModel):
    """The seed's response fields; absent ones are left out of the JSON."""

    queued: bool
    message: str
    estimated_time: str
    profile_type: str
    status: str
    priority: Priority | None = None
    request_id: str | None = None
    queue_position: int | None = None
    next_check_recommended: str | None = None
    created_at: str | None = None
    skip_reason: str | None = None
    fallback_mode: bool | None = None
    upgraded: bool | None = None
    next_retry_at: str | None = None


@dataclass(frozen=True)
class Decision:
    answer: IntakeAnswer
    outcome: Outcome


@dataclass(frozen=True)
class IntakePolicy:
    stale_after: timedelta
    # Real DynamoDB cancels concurrent transactions on one item (TransactionConflict);
    # the loser retries and then sees the winner's job.
    conflict_retries: int = 5


def request_profile(
    username: str,
    source: Source,
    *,
    jobs: JobStore,
    dispatcher: Dispatcher,
    policy: IntakePolicy,
    clock: Clock,
    depth: int = 0,
    discovered_from: str | None = None,
    expect: ProfileGuard = ProfileGuard.ABSENT,
    with_position: bool = True,
) -> Decision:
    """Queue `username` (already normalised) unless it is processed, queued or fresh.

    `expect` is a hint of the profile's state (discovery has just stored it as a
    secondary): a right guess saves a round; a wrong one costs one, never a wrong
    answer. Without `with_position` the queue position is not counted (discovery
    ignores it)."""
    now = to_millis(clock())
    guard = expect
    job = new_job(username, source, now, depth=depth, discovered_from=discovered_from)
    job = job.model_copy(update={"profile_type": _profile_type_for(guard)})
    conflicts = 0
    # Each round is one atomic write. A second round happens only when the profile
    # exists: the write is then repeated conditional on the state we saw (secondary
    # or stale), so a concurrent change still makes it fail rather than slip past.
    while True:
        try:
            jobs.create(
                job,
                guard,
                recent_before=now - RECENT_COMPLETION_WINDOW,
                stale_before=now - policy.stale_after,
            )
        except IntakeBlocked as blocked:
            answer = _answer_for_blocked(
                blocked,
                job,
                now,
                policy,
                jobs=jobs,
                dispatcher=dispatcher,
                with_position=with_position,
            )
            if answer is not None:
                return answer
            next_guard = _guard_for(blocked.profile, now, policy.stale_after)
            if next_guard is None or next_guard == guard:
                # The profile changed between rounds (another request won): go again
                # from scratch, bounded like a conflict.
                next_guard = ProfileGuard.ABSENT
                conflicts += 1
                if conflicts > policy.conflict_retries:
                    raise StorageUnavailable("profile is changing too fast to decide") from None
            guard = next_guard
            job = job.model_copy(update={"profile_type": _profile_type_for(guard)})
            continue
        except WriteConflict:
            conflicts += 1
            if conflicts > policy.conflict_retries:
                raise StorageUnavailable("too much contention on this profile") from None
            time.sleep(random.uniform(0.01, 0.05) * conflicts)  # noqa: S311 - jitter
            continue
        return _queued(job, jobs=jobs, dispatcher=dispatcher, with_position=with_position)


def _guard_for(
    profile: Profile | None, now: datetime, stale_after: timedelta
) -> ProfileGuard | None:
    if profile is None:
        return None
    if profile.tier is Tier.SECONDARY:
        return ProfileGuard.SECONDARY
    if profile.is_stale(now, stale_after):
        return ProfileGuard.STALE
    return None


def _profile_type_for(guard: ProfileGuard) -> ProfileType:
    return {
        ProfileGuard.ABSENT: ProfileType.NEW,
        ProfileGuard.SECONDARY: ProfileType.UPGRADE,
        ProfileGuard.STALE: ProfileType.REFRESH,
    }[guard]


def _queued(
    job: Job, *, jobs: JobStore, dispatcher: Dispatcher, with_position: bool = True
) -> Decision:
    fallback = False
    try:
        dispatcher.dispatch(job)
    except DispatchFailed:
        # The job is stored: the sweeper sends it after its grace period. Saying
        # "queued" is true; saying it was sent would not be.
        fallback = True
    position = _position(jobs, job) if with_position else None
    upgrade = job.profile_type is not ProfileType.NEW
    if fallback:
        message = f"Profile {job.username} is queued; dispatch is delayed and will be retried automatically"
    elif job.profile_type is ProfileType.UPGRADE:
        message = f"Profile {job.username} upgraded from secondary: queued for full analysis at {job.priority} priority"
    elif job.profile_type is ProfileType.REFRESH:
        message = f"Profile {job.username} is out of date: queued for a fresh analysis at {job.priority} priority"
    else:
        message = (
            f"Profile {job.username} added to {job.priority.lower()} priority processing queue"
        )
    return Decision(
        IntakeAnswer(
            queued=True,
            message=message,
            estimated_time=estimated_time(position or _UNCOUNTED),
            profile_type=job.profile_type.value,
            status="pending",
            priority=job.priority,
            request_id=job.request_id,
            queue_position=position,
            next_check_recommended=NEXT_CHECK,
            fallback_mode=True if fallback else None,
            upgraded=True if upgrade else None,
        ),
        Outcome.UPGRADED if upgrade else Outcome.NEW,
    )


def _answer_for_blocked(
    blocked: IntakeBlocked,
    requested: Job,
    now: datetime,
    policy: IntakePolicy,
    *,
    jobs: JobStore,
    dispatcher: Dispatcher,
    with_position: bool,
) -> Decision | None:
    """The answer when an existing job or a fresh profile decides; None to retry."""
    existing = blocked.job
    if existing is not None and (existing.is_active or existing.awaiting_retry):
        return _already_in_queue(
            existing,
            requested.priority,
            now,
            jobs=jobs,
            dispatcher=dispatcher,
            with_position=with_position,
        )
    if existing is not None and existing.completed_recently(now):
        created = existing.completed_at or existing.updated_at
        return Decision(
            IntakeAnswer(
                queued=False,
                message=f"Profile {existing.username} was recently processed and is now available",
                estimated_time="complete",
                profile_type="primary",
                status="exists",
                created_at=to_iso(created) if created else None,
                skip_reason="recently_completed",
            ),
            Outcome.RECENTLY_COMPLETED,
        )
    profile = blocked.profile
    if profile is not None and _guard_for(profile, now, policy.stale_after) is None:
        return _already_processed(profile)
    return None


def _position(jobs: JobStore, job: Job) -> int | None:
    """The job's queue position, or None if it cannot be counted right now: the job
    is stored by then, so a failed count must not turn the answer into an error."""
    try:
        return 1 + jobs.count_ahead(job)
    except StorageError as exc:
        logger.warning(
            "queue position unavailable", extra={"username": job.username, "error": str(exc)}
        )
        return None


def _already_processed(profile: Profile) -> Decision:
    created = profile.created_at or profile.last_scraped_at
    return Decision(
        IntakeAnswer(
            queued=False,
            message=f"Profile {profile.username} is already fully processed",
            estimated_time="complete",
            profile_type="primary",
            status="exists",
            created_at=to_iso(created) if created else None,
            skip_reason="already_processed",
        ),
        Outcome.ALREADY_PROCESSED,
    )


def _already_in_queue(
    existing: Job,
    requested: Priority,
    now: datetime,
    *,
    jobs: JobStore,
    dispatcher: Dispatcher,
    with_position: bool,
) -> Decision:
    job = existing
    outcome = Outcome.ALREADY_IN_QUEUE
    waiting = existing.status is JobStatus.PENDING or existing.awaiting_retry
    if waiting and requested.rank < existing.priority.rank:
        raised = jobs.raise_priority(existing, requested, now)
        if raised is not None:
            job = raised
            outcome = Outcome.PRIORITY_RAISED
        # A job awaiting its retry needs no message: the sweeper's retry dispatches it
        # on its (new) priority's queue. A PENDING one moving to the other queue gets a
        # second message there; the old one stays, whichever copy arrives first claims
        # the job and the other is dropped by the claim rule.
        if (
            raised is not None
            and raised.status is JobStatus.PENDING
            and (raised.priority.queue is not existing.priority.queue)
        ):
            try:
                dispatcher.dispatch(job)
            except DispatchFailed:
                # Not lost: the original message still waits on the slower queue.
                logger.warning(
                    "priority raised but high-queue send failed", extra={"username": job.username}
                )
    status = job.status.value.lower()
    if job.awaiting_retry:
        message = f"Profile {job.username} is already in queue (status: FAILED, retry scheduled)"
    elif outcome is Outcome.PRIORITY_RAISED:
        message = f"Profile {job.username} is already in queue; moved up to {job.priority} priority"
    else:
        message = f"Profile {job.username} is already in queue (status: {job.status.value})"
    position = _position(jobs, job) if job.is_active and with_position else None
    return Decision(
        IntakeAnswer(
            queued=True,
            message=message,
            estimated_time=estimated_time(position or _UNCOUNTED),
            profile_type="queued",
            status=status,
            priority=job.priority,
            request_id=job.request_id,
            queue_position=position,
            next_check_recommended=NEXT_CHECK,
            skip_reason="already_in_queue",
            upgraded=True if outcome is Outcome.PRIORITY_RAISED else None,
            next_retry_at=to_iso(job.next_retry_at) if job.next_retry_at else None,
        ),
        outcome,
    )
