"""The request rule (DESIGN.md "Read first, decide atomically", "Priority",
"Queue position").

One strongly consistent read of the job and the profile answers the requests
people repeat most (already processed, already in queue, recently completed) with
no write. Only creating, replacing or upgrading a job writes, and that write is one
conditional transaction: it is the decision, the read only a shortcut. A lost race
is answered from the item that blocked it. A job is only ever reported as queued
once it is stored.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from viralspot.clock import Clock, to_iso, to_millis
from viralspot.errors import DispatchFailed, StorageError, StorageUnavailable
from viralspot.jobs import (
    RECENT_COMPLETION_WINDOW,
    Analysis,
    Job,
    JobStatus,
    Priority,
    ProfileType,
    Source,
    analysis_for,
    new_job,
    priority_for,
    raised_for,
)
from viralspot.lifecycle import Standing, standing
from viralspot.ports import IntakeBlocked, Jobs, ProfileGuard, Queues
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import POSITION_CAP, Position, position_of

NEXT_CHECK = "30 seconds"
# The estimate of a job whose position was not counted (or that waits for a retry).
_UNCOUNTED = "more than 15 minutes"

logger = Logger(child=True)


class Outcome(StrEnum):
    """One per answer; each is a metric."""

    NEW = "new"
    UPGRADED = "upgraded"  # a secondary or stale profile queued for full analysis
    PRIORITY_RAISED = "priority_raised"
    ALREADY_IN_QUEUE = "already_in_queue"
    ALREADY_PROCESSED = "already_processed"
    RECENTLY_COMPLETED = "recently_completed"
    # Crawling asked for a name whose person's job failed for good: that outcome
    # stays what the person sees; crawling does not replace it.
    FAILED_KEPT = "failed_kept"


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
    # Reads and decisions per request: each further round means the items changed
    # under us between the read and the write (another request won, a worker
    # finished), so the next read sees a settled state. Transaction conflicts are
    # retried below this, inside the adapter.
    rounds: int = 4


def request_profile(
    username: str,
    source: Source,
    *,
    jobs: Jobs,
    dispatcher: Queues,
    policy: IntakePolicy,
    clock: Clock,
    depth: int = 0,
    discovered_from: str | None = None,
    with_position: bool = True,
) -> Decision:
    """Queue `username` (already normalised) unless it is processed, queued or fresh.
    Without `with_position` the queue position is not counted (discovery ignores it)."""
    now = to_millis(clock())
    for _ in range(policy.rounds):
        job, profile = jobs.read(username)
        try:
            answer = _answer_from(
                job,
                profile,
                source,
                now,
                policy,
                jobs=jobs,
                dispatcher=dispatcher,
                with_position=with_position,
            )
        except _Changed:
            continue
        if answer is not None:
            return answer
        guard = _guard_for(profile, now, policy.stale_after)
        created = new_job(
            username,
            source,
            now,
            depth=depth,
            discovered_from=discovered_from,
            analysis=_analysis_for(source, profile),
        )
        created = created.model_copy(update={"profile_type": _profile_type_for(guard)})
        try:
            jobs.create(
                created,
                guard,
                recent_before=now - RECENT_COMPLETION_WINDOW,
                stale_before=now - policy.stale_after,
            )
        except IntakeBlocked as blocked:
            # Somebody else's write landed between our read and our transaction:
            # what blocked us is the answer, or (the profile changed) read again.
            try:
                answer = _answer_from(
                    blocked.job,
                    blocked.profile,
                    source,
                    now,
                    policy,
                    jobs=jobs,
                    dispatcher=dispatcher,
                    with_position=with_position,
                )
            except _Changed:
                continue
            if answer is not None:
                return answer
            continue
        return _queued(
            created,
            now,
            jobs=jobs,
            dispatcher=dispatcher,
            with_position=with_position,
            deepens=guard is ProfileGuard.CRAWLED,
        )
    raise StorageUnavailable("profile is changing too fast to decide")


def _answer_from(
    job: Job | None,
    profile: Profile | None,
    source: Source,
    now: datetime,
    policy: IntakePolicy,
    *,
    jobs: Jobs,
    dispatcher: Queues,
    with_position: bool,
) -> Decision | None:
    """The answer the stored items give by themselves; None when a job must be
    written (or, after a lost race, when the items must be read again)."""
    where = standing(job, profile, now, policy.stale_after)
    if where is Standing.QUEUED and job is not None:
        return _already_in_queue(
            job, source, now, jobs=jobs, dispatcher=dispatcher, with_position=with_position
        )
    deepen = profile is not None and profile.crawled_only and source is not Source.CRAWLER
    if where is Standing.RECENT and job is not None and not deepen:
        return _exists(
            f"Profile {job.username} was recently processed and is now available",
            job.completed_at or job.updated_at,
            Outcome.RECENTLY_COMPLETED,
        )
    if where in (Standing.RECENT, Standing.PROCESSED) and deepen:
        return None  # a person's request deepens an analysis made for crawling
    if where is Standing.PROCESSED and profile is not None:
        return _already_processed(profile)
    if (
        where is Standing.FAILED
        and job is not None
        and source is Source.CRAWLER
        and job.source is not Source.CRAWLER
    ):
        return _failed_kept(job)
    return None


def _analysis_for(source: Source, profile: Profile | None) -> Analysis:
    """A person's depth for a person's request, and for crawling that refreshes a
    person's analysis: a refresh never thins what a person asked for."""
    if profile is not None and profile.tier is Tier.PRIMARY and not profile.crawled_only:
        return Analysis.FULL
    return analysis_for(source)


def _failed_kept(job: Job) -> Decision:
    return Decision(
        IntakeAnswer(
            queued=False,
            message=f"Profile {job.username} failed to process: {job.error_message}",
            estimated_time="unknown",
            profile_type="failed",
            status="failed",
            request_id=job.request_id,
            skip_reason="failed",
        ),
        Outcome.FAILED_KEPT,
    )


def _guard_for(profile: Profile | None, now: datetime, stale_after: timedelta) -> ProfileGuard:
    """What the Profiles item must still be for the new job to be right."""
    if profile is None:
        return ProfileGuard.ABSENT
    if profile.tier is Tier.SECONDARY:
        return ProfileGuard.SECONDARY
    if profile.is_stale(now, stale_after):
        return ProfileGuard.STALE
    return ProfileGuard.CRAWLED


def _profile_type_for(guard: ProfileGuard) -> ProfileType:
    return {
        ProfileGuard.ABSENT: ProfileType.NEW,
        ProfileGuard.SECONDARY: ProfileType.UPGRADE,
        ProfileGuard.CRAWLED: ProfileType.UPGRADE,
        ProfileGuard.STALE: ProfileType.REFRESH,
    }[guard]


def _queued(
    job: Job,
    now: datetime,
    *,
    jobs: Jobs,
    dispatcher: Queues,
    with_position: bool,
    deepens: bool = False,
) -> Decision:
    recorded = _send(job, now, jobs=jobs, dispatcher=dispatcher)
    fallback = recorded is None
    position = _position(jobs, job, now) if with_position else None
    if recorded is not None:
        recorded.result()
    upgrade = job.profile_type is not ProfileType.NEW
    if fallback:
        message = f"Profile {job.username} is queued; dispatch is delayed and will be retried automatically"
    elif job.profile_type is ProfileType.UPGRADE and deepens:
        message = f"Profile {job.username} was analysed at crawl depth only: queued for a full analysis at {job.priority} priority"
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
            estimated_time=position.estimated_time if position else _UNCOUNTED,
            profile_type=job.profile_type.value,
            status="pending",
            priority=job.priority,
            request_id=job.request_id,
            queue_position=position.position if position else None,
            next_check_recommended=NEXT_CHECK,
            fallback_mode=True if fallback else None,
            upgraded=True if upgrade else None,
        ),
        Outcome.UPGRADED if upgrade else Outcome.NEW,
    )


def _send(job: Job, now: datetime, *, jobs: Jobs, dispatcher: Queues) -> Future[None] | None:
    """Dispatch the job's message, then record that it was sent, beside whatever the
    caller does next (the position read does not depend on it: one round trip for
    both); None if the send failed. The job is stored either way: an unconfirmed send
    is the sweeper's to repair (DESIGN.md), so saying "queued" is true; saying it was
    sent would not be."""
    try:
        dispatcher.dispatch(job)
    except DispatchFailed as exc:
        logger.warning("dispatch failed", extra={"username": job.username, "error": str(exc)})
        return None
    return _recorder().submit(_record_dispatch, job, now, jobs)


def _record_dispatch(job: Job, now: datetime, jobs: Jobs) -> None:
    try:
        jobs.mark_dispatched(job, now)
    except StorageError as exc:
        # The message is on its way; at worst the sweeper sends a duplicate, which
        # the worker's claim drops.
        logger.warning("dispatch not recorded", extra={"username": job.username, "error": str(exc)})


@cache
def _recorder() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="dispatch-record")


def _position(jobs: Jobs, job: Job, now: datetime) -> Position | None:
    """The job's queue position, or None if it cannot be counted right now: the job
    is stored by then, so a failed count must not turn the answer into an error."""
    try:
        return position_of(job, now, jobs.position_facts(job, POSITION_CAP))
    except StorageError as exc:
        logger.warning(
            "queue position unavailable", extra={"username": job.username, "error": str(exc)}
        )
        return None


def _already_processed(profile: Profile) -> Decision:
    return _exists(
        f"Profile {profile.username} is already fully processed",
        profile.created_at or profile.last_scraped_at,
        Outcome.ALREADY_PROCESSED,
    )


def _exists(message: str, created: datetime | None, outcome: Outcome) -> Decision:
    """The seed's answer for a profile with nothing to queue; its skip_reason is
    the outcome's name (recently_completed, already_processed)."""
    return Decision(
        IntakeAnswer(
            queued=False,
            message=message,
            estimated_time="complete",
            profile_type="primary",
            status="exists",
            created_at=to_iso(created) if created else None,
            skip_reason=outcome.value,
        ),
        outcome,
    )


class _Changed(Exception):
    """The job changed between our read and our write: read again."""


def _already_in_queue(
    existing: Job,
    source: Source,
    now: datetime,
    *,
    jobs: Jobs,
    dispatcher: Queues,
    with_position: bool,
) -> Decision:
    job = existing
    outcome = Outcome.ALREADY_IN_QUEUE
    recorded: Future[None] | None = None
    waiting = existing.status is JobStatus.PENDING or existing.awaiting_retry
    if waiting and priority_for(source).rank < existing.priority.rank:
        raised = raised_for(existing, source, now)
        if not jobs.raise_priority(existing, raised):
            # The job moved on since we read it (a send was recorded, the sweeper
            # retried it, a worker took it): decide again on what it is now.
            raise _Changed()
        job = raised
        outcome = Outcome.PRIORITY_RAISED
        # A job awaiting its retry needs no message: the sweeper's retry dispatches it
        # on its (new) priority's queue. A PENDING one moving to another queue gets a
        # message there; the old one stays, whichever copy arrives first claims the
        # job and the other is dropped by the claim rule.
        if raised.status is JobStatus.PENDING and raised.dispatched_at is None:
            recorded = _send(raised, now, jobs=jobs, dispatcher=dispatcher)
    status = job.status.value.lower()
    if job.awaiting_retry:
        message = f"Profile {job.username} is already in queue (status: FAILED, retry scheduled)"
    elif outcome is Outcome.PRIORITY_RAISED:
        message = f"Profile {job.username} is already in queue; moved up to {job.priority} priority"
    else:
        message = f"Profile {job.username} is already in queue (status: {job.status.value})"
    position = _position(jobs, job, now) if job.is_active and with_position else None
    if recorded is not None:
        recorded.result()
    return Decision(
        IntakeAnswer(
            queued=True,
            message=message,
            estimated_time=position.estimated_time if position else _UNCOUNTED,
            profile_type="queued",
            status=status,
            priority=job.priority,
            request_id=job.request_id,
            queue_position=position.position if position else None,
            next_check_recommended=NEXT_CHECK,
            skip_reason="already_in_queue",
            upgraded=True if outcome is Outcome.PRIORITY_RAISED else None,
            next_retry_at=to_iso(job.next_retry_at) if job.next_retry_at else None,
        ),
        outcome,
    )
