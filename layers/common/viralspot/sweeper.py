"""The sweeper's rule (DESIGN.md "Failure"; nothing lost): every run, from the
sparse SweepIndex only,

- FAILED jobs whose retry is due go back to PENDING and are dispatched;
- PENDING jobs not claimed within the grace period are dispatched again (their
  send may have failed, or the message was lost);
- PROCESSING jobs whose lease expired count as a failed transient attempt: retried
  after backoff, or FAILED for good when attempts are used up.

Every change is conditional on the version of the job that was read, so two
sweeps running at once cannot both dispatch one job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from viralspot.clock import Clock
from viralspot.errors import DispatchFailed, ErrorKind
from viralspot.jobs import Job, JobStatus, failed
from viralspot.ports import Dispatcher

logger = Logger(child=True)

LEASE_EXPIRED = "worker stopped before finishing (lease expired: timeout or crash)"


class Repair(StrEnum):
    RETRIED = "retried"
    REDISPATCHED = "redispatched"
    LEASE_EXPIRED = "lease_expired"
    FAILED_FOR_GOOD = "failed_for_good"
    DISPATCH_FAILED = "dispatch_failed"
    RACE_LOST = "race_lost"


class SweepStore(Protocol):
    def due(
        self,
        status: JobStatus,
        before: datetime,
        *,
        limit: int,
        start: dict[str, Any] | None = None,
    ) -> tuple[list[Job], dict[str, Any] | None]: ...

    def replace(self, expected: Job, new: Job) -> bool: ...

    def finish(self, claimed: Job, outcome: Job) -> bool: ...


@dataclass(frozen=True)
class SweepPolicy:
    pending_grace: timedelta = timedelta(minutes=5)
    max_attempts: int = 3
    backoff_cap_minutes: int = 30
    backoff_base_seconds: float = 60
    page_size: int = 50
    max_jobs: int = 500  # per run: a backlog is worked off over several runs
    min_time_left_ms: int = 10_000  # stop well before the function times out


@dataclass
class SweepReport:
    repairs: dict[str, int] = field(default_factory=lambda: {r.value: 0 for r in Repair})
    examined: int = 0
    stopped_early: bool = False

    def count(self, repair: Repair) -> None:
        self.repairs[repair.value] += 1


def sweep(
    *,
    store: SweepStore,
    dispatcher: Dispatcher,
    policy: SweepPolicy,
    clock: Clock,
    time_left_ms: Callable[[], int] = lambda: 1_000_000,
) -> SweepReport:
    report = SweepReport()
    now = clock()
    # One pass per SweepIndex partition. A job a pass changes gets a sweep time in
    # the future (retry after backoff, or a fresh dispatch time), so no job is acted
    # on twice in one run.
    passes: list[tuple[JobStatus, datetime, Callable[[Job], Repair]]] = [
        (JobStatus.PROCESSING, now, lambda job: _expire_lease(job, store, policy, clock)),
        (JobStatus.FAILED, now, lambda job: _retry(job, store, dispatcher, policy, clock)),
        (
            JobStatus.PENDING,
            now - policy.pending_grace,
            lambda job: redispatch(job, store, dispatcher, clock),
        ),
    ]
    for status, before, repair in passes:
        start: dict[str, Any] | None = None
        while True:
            if report.examined >= policy.max_jobs or time_left_ms() < policy.min_time_left_ms:
                report.stopped_early = True
                return report
            page_size = min(policy.page_size, policy.max_jobs - report.examined)
            jobs, start = store.due(status, before, limit=page_size, start=start)
            for job in jobs:
                report.examined += 1
                report.count(repair(job))
            if not start:
                break
    return report


def _expire_lease(job: Job, store: SweepStore, policy: SweepPolicy, clock: Clock) -> Repair:
    outcome = failed(
        job,
        clock(),
        error=LEASE_EXPIRED,
        kind=ErrorKind.TRANSIENT,
        max_attempts=policy.max_attempts,
        backoff_cap_minutes=policy.backoff_cap_minutes,
        backoff_base_seconds=policy.backoff_base_seconds,
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


def _retry(
    job: Job, store: SweepStore, dispatcher: Dispatcher, policy: SweepPolicy, clock: Clock
) -> Repair:
    now = clock()
    if job.attempts >= policy.max_attempts:
        # MaxAttempts was lowered after this retry was scheduled: as PENDING it could
        # never be claimed, so close it now with its last error.
        final = job.model_copy(update={"next_retry_at": None, "updated_at": now})
        return Repair.FAILED_FOR_GOOD if store.replace(job, final) else Repair.RACE_LOST
    pending = job.model_copy(
        update={"status": JobStatus.PENDING, "next_retry_at": None, "updated_at": now}
    )
    if not store.replace(job, pending):
        return Repair.RACE_LOST
    return _dispatch(pending, dispatcher, Repair.RETRIED)


def redispatch(job: Job, store: SweepStore, dispatcher: Dispatcher, clock: Clock) -> Repair:
    """Send a PENDING job's message again, once, even if several callers try at once."""
    touched = job.model_copy(update={"updated_at": clock()})
    if not store.replace(job, touched):
        return Repair.RACE_LOST
    return _dispatch(touched, dispatcher, Repair.REDISPATCHED)


def _dispatch(job: Job, dispatcher: Dispatcher, success: Repair) -> Repair:
    try:
        dispatcher.dispatch(job)
    except DispatchFailed as exc:
        # Still PENDING with a fresh timestamp: the next sweep after the grace
        # period tries again. Nothing is lost.
        logger.warning("dispatch failed", extra={"username": job.username, "error": str(exc)})
        return Repair.DISPATCH_FAILED
    logger.info(f"job {success.value}", extra={"username": job.username, "priority": job.priority})
    return success
