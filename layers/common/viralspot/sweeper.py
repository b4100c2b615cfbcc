"""The sweeper's rule (DESIGN.md "The sweeper repairs, it does not resend"; nothing
lost). SQS keeps a sent message until it is consumed, dead-lettered or past its
retention, so a job waiting with a message needs nothing. Every run, from the
sparse, sharded SweepIndex only:

- PROCESSING jobs whose lease expired count as a failed transient attempt: retried
  after backoff, or FAILED for good when attempts are used up;
- FAILED jobs whose retry is due go back to PENDING and are dispatched (a job at or
  over MaxAttempts is closed instead: it could never be claimed);
- PENDING jobs whose send was never confirmed (the send failed, or the sender died)
  are dispatched after a grace period;
- PENDING jobs whose message is older than the queue's retention are dispatched
  again (SQS has dropped it).

Each kind of repair gets its share of the run's budget, and within each HIGH comes
before MEDIUM before LOW, oldest first; so the cost of a run is bounded whatever
the backlog, and a person's job is never starved by crawling. Every change is
conditional on the version of the job that was read, so two sweeps running at
once cannot both dispatch one job, and one failing job never aborts a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice

from aws_lambda_powertools import Logger

from viralspot.clock import Clock
from viralspot.errors import DispatchFailed, ErrorKind, ViralSpotError
from viralspot.jobs import (
    Analysis,
    Job,
    JobStatus,
    Priority,
    SweepKind,
    closed,
    completed,
    failed,
)
from viralspot.ports import Jobs, Queues
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import Sample
from viralspot.retry import RetryPolicy

logger = Logger(child=True)

LEASE_EXPIRED = "worker stopped before finishing (lease expired: timeout or crash)"


class Repair(StrEnum):
    RETRIED = "retried"
    REDISPATCHED = "redispatched"
    LEASE_EXPIRED = "lease_expired"
    FAILED_FOR_GOOD = "failed_for_good"
    DISPATCH_FAILED = "dispatch_failed"
    RACE_LOST = "race_lost"
    COMPLETED = "completed"
    ERROR = "error"


@dataclass(frozen=True)
class SweepPolicy:
    pending_grace: timedelta = timedelta(minutes=5)
    # SQS drops a message this long after it was sent (the queues' retention, less
    # an hour's margin): a job still waiting by then needs a new message.
    message_retention: timedelta = timedelta(days=4) - timedelta(hours=1)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    page_size: int = 50
    max_jobs: int = 500  # per run: a backlog is worked off over several runs
    min_time_left_ms: int = 10_000  # stop well before the function times out
    # How often the drain-rate sample moves on (queue_stats.Sample).
    sample_every: timedelta = timedelta(minutes=10)


@dataclass
class SweepReport:
    repairs: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Repair})
    examined: int = 0
    stopped_early: bool = False

    def count(self, repair: Repair) -> None:
        self.repairs[repair.value] += 1


def sweep(
    *,
    store: Jobs,
    dispatcher: Queues,
    policy: SweepPolicy,
    clock: Clock,
    time_left_ms: Callable[[], int] = lambda: 1_000_000,
) -> SweepReport:
    report = SweepReport()
    now = clock()
    _take_sample(store, now, policy)
    passes: list[tuple[SweepKind, datetime, Callable[[Job], Repair]]] = [
        (SweepKind.PROCESSING, now, lambda job: _expire_lease(job, store, policy, clock)),
        (SweepKind.RETRY, now, lambda job: _retry(job, store, dispatcher, policy, clock)),
        (
            SweepKind.UNSENT,
            now - policy.pending_grace,
            lambda job: _send_again(job, store, dispatcher, policy, clock),
        ),
        (
            SweepKind.SENT,
            now - policy.message_retention,
            lambda job: _send_again(job, store, dispatcher, policy, clock),
        ),
    ]
    # Two rounds: first every kind of repair gets an equal share of the run, so a
    # large first pass cannot starve the others; then what is left goes to the
    # passes in order. Within a pass HIGH comes first.
    share = max(1, policy.max_jobs // len(passes))
    for round_share in (share, policy.max_jobs):
        for kind, before, repair in passes:
            allowed = min(round_share, policy.max_jobs - report.examined)
            used = 0
            priorities: list[Priority | None] = (
                [None] if kind is SweepKind.PROCESSING else [*Priority]
            )
            for priority in priorities:
                page = max(1, min(policy.page_size, allowed - used))
                for job in islice(store.due(kind, priority, before, page=page), allowed - used):
                    if time_left_ms() < policy.min_time_left_ms:
                        report.stopped_early = True
                        return report
                    used += 1
                    report.examined += 1
                    report.count(_isolated(repair, job))
            if report.examined >= policy.max_jobs:
                report.stopped_early = True
                return report
    return report


def _isolated(repair: Callable[[Job], Repair], job: Job) -> Repair:
    """One job's repair; its failure is logged and counted, never the run's end."""
    try:
        return repair(job)
    except ViralSpotError as exc:
        logger.warning("repair failed", extra={"username": job.username, "error": str(exc)})
        return Repair.ERROR


def _take_sample(store: Jobs, now: datetime, policy: SweepPolicy) -> None:
    """Move the drain-rate sample on when it is older than `sample_every`."""
    try:
        facts = store.queue_facts()
        current = facts.sample
        if current is not None and now - current.at < policy.sample_every:
            return
        fresh = Sample(at=now, totals=dict(facts.counts.values), previous=current)
        store.save_sample(fresh, replaces=current)
    except ViralSpotError as exc:
        logger.warning("queue sample not taken", extra={"error": str(exc)})


def _expire_lease(job: Job, store: Jobs, policy: SweepPolicy, clock: Clock) -> Repair:
    _, profile = store.read(job.username)
    if _stored_by(job, profile):
        # The attempt died after storing its analysis (a timeout or crash in its last
        # steps): the job did its work, and says so, as a new request would.
        return Repair.COMPLETED if store.finish(job, completed(job, clock())) else Repair.RACE_LOST
    outcome = failed(
        job,
        clock(),
        error=LEASE_EXPIRED,
        kind=ErrorKind.TRANSIENT,
        retry=policy.retry,
    )
    if not store.finish(job, outcome):
        return Repair.RACE_LOST
    logger.warning(
        "lease expired",
        extra={
            "username": job.username,
            "attempts": job.attempts,
            "final": outcome.failed_for_good,
        },
    )
    return Repair.FAILED_FOR_GOOD if outcome.failed_for_good else Repair.LEASE_EXPIRED


def _stored_by(job: Job, profile: Profile | None) -> bool:
    """The stored analysis is this job's: at its depth, and scraped at or after its
    last claim. The depth tells a person's job deepening a crawl analysis from that
    analysis, which may have been stored the same millisecond (or on a clock ahead)."""
    return (
        profile is not None
        and profile.tier is Tier.PRIMARY
        and (profile.analysis or Analysis.FULL) is job.analysis
        and profile.last_scraped_at is not None
        and job.last_attempt is not None
        and profile.last_scraped_at >= job.last_attempt
    )


def _send_again(
    job: Job, store: Jobs, dispatcher: Queues, policy: SweepPolicy, clock: Clock
) -> Repair:
    if policy.retry.exhausted(job.attempts):
        # Its attempts were used up (MaxAttempts lowered meanwhile): no claim can take
        # it, so it is closed with its last error rather than block the name.
        final = closed(job, clock())
        return Repair.FAILED_FOR_GOOD if store.replace(job, final) else Repair.RACE_LOST
    return redispatch(job, store, dispatcher, clock)


def _retry(job: Job, store: Jobs, dispatcher: Queues, policy: SweepPolicy, clock: Clock) -> Repair:
    now = clock()
    if policy.retry.exhausted(job.attempts):
        # MaxAttempts was lowered after this retry was scheduled: as PENDING it could
        # never be claimed, so close it now with its last error.
        final = closed(job, now)
        return Repair.FAILED_FOR_GOOD if store.replace(job, final) else Repair.RACE_LOST
    pending = job.model_copy(
        update={
            "status": JobStatus.PENDING,
            "next_retry_at": None,
            "updated_at": now,
            "dispatched_at": None,
        }
    )
    if not store.replace(job, pending):
        return Repair.RACE_LOST
    return _dispatch(pending, store, dispatcher, now, Repair.RETRIED)


def redispatch(job: Job, store: Jobs, dispatcher: Queues, clock: Clock) -> Repair:
    """Send a PENDING job's message again, once, even if several callers try at once:
    the job first becomes unsent at a new version, which only one caller can write."""
    now = clock()
    touched = to_resend(job, now)
    if not store.replace(job, touched):
        return Repair.RACE_LOST
    return _dispatch(touched, store, dispatcher, now, Repair.REDISPATCHED)


def to_resend(job: Job, now: datetime) -> Job:
    """The version of a waiting job that is about to be sent again: unsent, at a new
    version, so that only one of several callers can write it."""
    return job.model_copy(update={"updated_at": now, "dispatched_at": None})


def _dispatch(job: Job, store: Jobs, dispatcher: Queues, now: datetime, success: Repair) -> Repair:
    try:
        dispatcher.dispatch(job)
    except DispatchFailed as exc:
        # Still PENDING and unsent with a fresh timestamp: the next sweep after the
        # grace period tries again. Nothing is lost.
        logger.warning("dispatch failed", extra={"username": job.username, "error": str(exc)})
        return Repair.DISPATCH_FAILED
    store.mark_dispatched(job, now)
    logger.info(f"job {success.value}", extra={"username": job.username, "priority": job.priority})
    return success
