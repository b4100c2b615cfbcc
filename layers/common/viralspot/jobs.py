"""The Jobs item and its lifecycle rules (DESIGN.md: Priority, Queue position, Failure).

One job per username at a time: PENDING -> PROCESSING -> COMPLETED, or FAILED
(transient: with `next_retry_at`, picked up again by the sweeper; for good:
without it). Everything here is pure; storage lives in the adapters.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from viralspot.errors import ErrorKind
from viralspot.retry import RetryPolicy

# A profile that completed this recently is not queued again, whatever its tier.
RECENT_COMPLETION_WINDOW = timedelta(minutes=10)


class Source(StrEnum):
    FRONTEND = "frontend"
    API = "api"
    ADMIN = "admin"
    CRAWLER = "crawler"
    BULK = "bulk"


class Priority(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"

    @property
    def rank(self) -> int:
        """0 is served first; the active index sorts on it."""
        return _RANK[self]

    @property
    def queue(self) -> QueueName:
        # One queue per priority (DESIGN.md "Priority"): no work of another priority
        # sits ahead of a person's request, and a MEDIUM request never waits behind a
        # crawler backlog; each queue's concurrency is capped on its own.
        return _QUEUE[self]


class QueueName(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


_RANK = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}
_QUEUE = {
    Priority.HIGH: QueueName.HIGH,
    Priority.MEDIUM: QueueName.MEDIUM,
    Priority.LOW: QueueName.LOW,
}

PRIORITY_BY_SOURCE = {
    Source.FRONTEND: Priority.HIGH,
    Source.ADMIN: Priority.HIGH,
    Source.API: Priority.MEDIUM,
    Source.BULK: Priority.MEDIUM,
    Source.CRAWLER: Priority.LOW,
}


class JobStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Analysis(StrEnum):
    """How deep a job analyses a profile: a person's request gets the full set of
    reels, crawling a lighter one (DESIGN.md "One answer": crawling never thins a
    person's analysis)."""

    FULL = "full"
    CRAWL = "crawl"


class ProfileType(StrEnum):
    """Why a job exists: a profile never seen, a secondary upgraded, a stale primary."""

    NEW = "new"
    UPGRADE = "upgrade"
    REFRESH = "refresh"


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    request_id: str
    status: JobStatus
    priority: Priority
    source: Source
    enqueued_at: datetime
    profile_type: ProfileType = ProfileType.NEW
    analysis: Analysis = Analysis.FULL
    depth: int = Field(default=0, ge=0)
    discovered_from: str | None = None
    attempts: int = Field(default=0, ge=0)
    last_attempt: datetime | None = None
    lease_until: datetime | None = None
    # Which claim holds the lease: a claim whose answer was lost recognises its own
    # success by it when botocore retries the call.
    lease_id: str | None = None
    next_retry_at: datetime | None = None
    error_message: str | None = None
    error_kind: ErrorKind | None = None
    completed_at: datetime | None = None
    updated_at: datetime | None = None
    # When this job's current message was last handed to SQS. None while a send is
    # unconfirmed (never sent, the send failed, or the sender died before saying so):
    # only those jobs, and ones older than the queue's retention, need the sweeper.
    dispatched_at: datetime | None = None
    # Why a waiting job is held back by a fault that is not its own (the provider's
    # key, the provider down, a dead-lettered message): shown by the status route,
    # cleared when an attempt ends.
    delay_reason: str | None = None

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.PENDING, JobStatus.PROCESSING)

    @property
    def awaiting_retry(self) -> bool:
        return self.status is JobStatus.FAILED and self.next_retry_at is not None

    @property
    def failed_for_good(self) -> bool:
        return self.status is JobStatus.FAILED and self.next_retry_at is None

    def completed_recently(self, now: datetime) -> bool:
        return (
            self.status is JobStatus.COMPLETED
            and self.completed_at is not None
            # "<=": the store replaces a COMPLETED job only when completed_at is strictly
            # before now - window, so at exactly the window's edge it is still recent.
            and now - self.completed_at <= RECENT_COMPLETION_WINDOW
        )


class SweepKind(StrEnum):
    """Why the sweeper might have to look at a job, and from when (DESIGN.md "The
    sweeper repairs, it does not resend")."""

    UNSENT = "UNSENT"  # PENDING, its send unconfirmed: due after the grace period
    SENT = "SENT"  # PENDING with a message in SQS: due only past the queue's retention
    PROCESSING = "PROCESSING"  # due when its lease expires
    RETRY = "RETRY"  # FAILED awaiting retry: due at next_retry_at
    # FAILED for good after retries ran out (never a permanent error): not swept,
    # but `redrive` re-opens these once the operator has fixed the cause.
    EXHAUSTED = "EXHAUSTED"


def sweep_entry(job: Job) -> tuple[SweepKind, datetime] | None:
    """The job's place in the sweeper's index: its kind and the moment that kind's
    clock started; None for a job that has ended."""
    if job.status is JobStatus.PENDING:
        if job.dispatched_at is not None:
            return SweepKind.SENT, job.dispatched_at
        return SweepKind.UNSENT, job.updated_at or job.enqueued_at
    if job.status is JobStatus.PROCESSING and job.lease_until is not None:
        return SweepKind.PROCESSING, job.lease_until
    if job.awaiting_retry and job.next_retry_at is not None:
        return SweepKind.RETRY, job.next_retry_at
    if job.failed_for_good and job.error_kind is not ErrorKind.PERMANENT:
        return SweepKind.EXHAUSTED, job.updated_at or job.enqueued_at
    return None


def new_lease_id() -> str:
    return uuid.uuid4().hex[:16]


def claimed(job: Job, now: datetime, lease_until: datetime, lease_id: str) -> Job:
    """The job as one attempt takes it (the claim's update, for adapters and fakes)."""
    return job.model_copy(
        update={
            "status": JobStatus.PROCESSING,
            "attempts": job.attempts + 1,
            "last_attempt": now,
            "lease_until": lease_until,
            "lease_id": lease_id,
            "updated_at": now,
            "next_retry_at": None,
        }
    )


def priority_for(source: Source) -> Priority:
    return PRIORITY_BY_SOURCE[source]


def new_request_id() -> str:
    # 12 hex digits: short enough to read out, and unique per username in practice;
    # the worker's claim also checks status, so a collision could not run a job twice.
    return uuid.uuid4().hex[:12]


def analysis_for(source: Source) -> Analysis:
    return Analysis.CRAWL if source is Source.CRAWLER else Analysis.FULL


def new_job(
    username: str,
    source: Source,
    now: datetime,
    *,
    depth: int = 0,
    discovered_from: str | None = None,
    analysis: Analysis | None = None,
) -> Job:
    return Job(
        username=username,
        request_id=new_request_id(),
        status=JobStatus.PENDING,
        priority=priority_for(source),
        source=source,
        analysis=analysis or analysis_for(source),
        enqueued_at=now,
        depth=depth,
        discovered_from=discovered_from,
        updated_at=now,
    )


def raised_for(job: Job, source: Source, now: datetime) -> Job:
    """A waiting job taken over by a request of higher priority: it becomes that
    request's job (its source, a full analysis, discovery from the top), keeping its
    request_id and its place in time."""
    priority = priority_for(source)
    moves_queue = priority.queue is not job.priority.queue
    person = source is not Source.CRAWLER
    return job.model_copy(
        update={
            "priority": priority,
            "source": source,
            "analysis": Analysis.FULL if person else job.analysis,
            "depth": 0 if person else job.depth,
            "discovered_from": None if person else job.discovered_from,
            "updated_at": now,
            # A PENDING job moving to another queue needs a message there: until it
            # is confirmed, the sweeper treats the job as unsent.
            "dispatched_at": None if moves_queue else job.dispatched_at,
        }
    )


def paused(job: Job, now: datetime, reason: str) -> Job:
    """A claimed job given back untouched by a fault that is not its own (DESIGN.md
    "Systemic faults pause"): PENDING again, the attempt not charged, its send
    unconfirmed so the sweeper dispatches it again after the grace period."""
    return job.model_copy(
        update={
            "status": JobStatus.PENDING,
            "attempts": max(0, job.attempts - 1),
            "lease_until": None,
            "lease_id": None,
            "dispatched_at": None,
            "delay_reason": reason[:500],
            "updated_at": now,
        }
    )


def reopened(job: Job, now: datetime) -> Job:
    """A job FAILED for good after its retries ran out, opened again by the operator
    (redrive) once the cause is fixed: PENDING, attempts reset, to be dispatched."""
    return job.model_copy(
        update={
            "status": JobStatus.PENDING,
            "attempts": 0,
            "next_retry_at": None,
            "dispatched_at": None,
            "delay_reason": None,
            "updated_at": now,
        }
    )


def closed(job: Job, now: datetime) -> Job:
    """A waiting job no claim can take (its attempts reached MaxAttempts, lowered
    meanwhile): FAILED for good with its last error, as if its last attempt had
    failed, so it ends with a reason and a kind like every exhausted job."""
    return job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "next_retry_at": None,
            "error_message": job.error_message or "attempts used up (MaxAttempts)",
            "error_kind": job.error_kind or ErrorKind.TRANSIENT,
            "lease_until": None,
            "lease_id": None,
            "delay_reason": None,
            "updated_at": now,
        }
    )


class JobMessage(BaseModel):
    """The SQS message body: just enough for the worker to claim the job it names."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    username: str
    request_id: str
    priority: Priority
    depth: int = 0

    @classmethod
    def of(cls, job: Job) -> JobMessage:
        return cls(
            username=job.username,
            request_id=job.request_id,
            priority=job.priority,
            depth=job.depth,
        )


def completed(job: Job, now: datetime) -> Job:
    return job.model_copy(
        update={
            "status": JobStatus.COMPLETED,
            "completed_at": now,
            "updated_at": now,
            "lease_until": None,
            "lease_id": None,
            "delay_reason": None,
            "next_retry_at": None,
            "error_message": None,
            "error_kind": None,
        }
    )


def failed(
    job: Job,
    now: datetime,
    *,
    error: str,
    kind: ErrorKind,
    retry: RetryPolicy,
) -> Job:
    """A failed attempt: retried after a backoff while attempts remain and the error is
    transient; otherwise FAILED for good (no next_retry_at)."""
    again = kind is ErrorKind.TRANSIENT and not retry.exhausted(job.attempts)
    return job.model_copy(
        update={
            "status": JobStatus.FAILED,
            "error_message": error[:500],
            "error_kind": kind,
            "next_retry_at": now + retry.delay(job.attempts) if again else None,
            "lease_until": None,
            "lease_id": None,
            "delay_reason": None,
            "updated_at": now,
        }
    )
