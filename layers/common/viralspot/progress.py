"""What a caller polling `GET /api/profile/{username}/status` is told.

The answer comes from the same read and the same `lifecycle.standing` as the
intake's, so a status poll and a new request never contradict each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from viralspot.clock import Clock, to_iso, utc_now
from viralspot.errors import ErrorKind
from viralspot.jobs import Analysis, Job, JobStatus
from viralspot.lifecycle import Standing, standing
from viralspot.ports import Jobs
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import POSITION_CAP, position_of


class StatusAnswer(BaseModel):
    username: str
    completed: bool
    # pending | delayed | processing | completed | failed | not_found
    status: str
    message: str
    priority: str | None = None
    queue_position: int | None = None
    estimated_time: str | None = None
    attempts: int | None = None
    last_attempt: str | None = None
    request_id: str | None = None
    error_message: str | None = None
    error_kind: str | None = None
    # The error of an earlier attempt of a job that is being retried: history, not
    # the current state.
    previous_error: str | None = None
    # Why a waiting job is held back by a fault that is not its own.
    delay_reason: str | None = None
    next_retry_at: str | None = None
    completed_at: str | None = None
    # How deep the stored analysis went: "full", or "crawl" (fewer reels).
    analysis: str | None = None


def get_status(
    username: str, *, jobs: Jobs, stale_after: timedelta, clock: Clock = utc_now
) -> StatusAnswer:
    job, profile = jobs.read(username)
    now = clock()
    where = standing(job, profile, now, stale_after)
    if where is Standing.QUEUED and job is not None:
        return _in_queue(job, jobs, now)
    if where is Standing.FAILED and job is not None:
        # Retries that ran out on a transient fault are the operator's to re-run
        # (redrive re-opens them); a missing or private profile stays failed.
        rerun = (
            " An operator's redrive re-runs it once the cause is fixed."
            if job.error_kind is not ErrorKind.PERMANENT
            else ""
        )
        return _of(job).model_copy(
            update={
                "message": (
                    f"Processing failed after {job.attempts} attempt(s): {job.error_message}. "
                    f"A new request starts a fresh job.{rerun}"
                ),
                "estimated_time": "unknown",
            }
        )
    if profile is not None and profile.tier is Tier.PRIMARY:
        return _completed(username, job, profile)
    return StatusAnswer(
        username=username,
        completed=False,
        status="not_found",
        message=f"Profile {username} has not been requested; POST /api/profile/{username}/request to queue it",
    )


def _of(job: Job) -> StatusAnswer:
    return StatusAnswer(
        username=job.username,
        completed=job.status is JobStatus.COMPLETED,
        status=job.status.value.lower(),
        message="",
        priority=job.priority.value,
        attempts=job.attempts,
        last_attempt=to_iso(job.last_attempt) if job.last_attempt else None,
        request_id=job.request_id,
        error_message=job.error_message,
        error_kind=job.error_kind.value if job.error_kind else None,
        next_retry_at=to_iso(job.next_retry_at) if job.next_retry_at else None,
        completed_at=to_iso(job.completed_at) if job.completed_at else None,
    )


def _in_queue(job: Job, jobs: Jobs, now: datetime) -> StatusAnswer:
    base = _of(job)
    if job.awaiting_retry:
        return base.model_copy(
            update={
                "message": (
                    f"Attempt {job.attempts} failed ({job.error_message}); "
                    f"retrying automatically at {base.next_retry_at}"
                ),
                "estimated_time": "after the next retry",
            }
        )
    # An active job's recorded error belongs to an attempt before this one.
    base = base.model_copy(
        update={"error_message": None, "error_kind": None, "previous_error": job.error_message}
    )
    place = position_of(job, now, jobs.position_facts(job, POSITION_CAP))
    if job.status is JobStatus.PENDING and job.delay_reason:
        return base.model_copy(
            update={
                "status": "delayed",
                "delay_reason": job.delay_reason,
                "message": (
                    f"Profile {job.username} is waiting for {_reason(job.delay_reason)}; "
                    "it is processed automatically once that is resolved"
                ),
                "queue_position": place.position,
                "estimated_time": "when the cause is resolved",
            }
        )
    verb = "waiting in queue" if job.status is JobStatus.PENDING else "being processed"
    return base.model_copy(
        update={
            "message": f"Profile {job.username} is {verb}",
            "queue_position": place.position,
            "estimated_time": place.estimated_time,
        }
    )


def _reason(text: str) -> str:
    return text.removeprefix("waiting for ")


def _completed(username: str, job: Job | None, profile: Profile) -> StatusAnswer:
    scraped = profile.last_scraped_at or profile.created_at
    base = (
        _of(job)
        if job is not None and job.status is JobStatus.COMPLETED
        else StatusAnswer(
            username=username,
            completed=True,
            status="completed",
            message="",
            completed_at=to_iso(scraped) if scraped else None,
        )
    )
    return base.model_copy(
        update={
            "completed": True,
            "status": "completed",
            "error_message": None,
            "error_kind": None,
            "message": f"Profile {username} is processed and available",
            "estimated_time": "complete",
            "analysis": str(profile.analysis or Analysis.FULL),
        }
    )
