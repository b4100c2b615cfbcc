"""What a caller polling `GET /api/profile/{username}/status` is told."""

from __future__ import annotations

from pydantic import BaseModel

from viralspot.clock import Clock, to_iso, utc_now
from viralspot.jobs import Job, JobStatus
from viralspot.ports import JobStore, ProfileReader
from viralspot.profiles import Tier
from viralspot.queue_stats import POSITION_CAP, position_of


class StatusAnswer(BaseModel):
    username: str
    completed: bool
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
    next_retry_at: str | None = None
    completed_at: str | None = None


def get_status(
    username: str, *, jobs: JobStore, profiles: ProfileReader, clock: Clock = utc_now
) -> StatusAnswer:
    job = jobs.get(username)
    if job is None:
        profile = profiles.get(username)
        if profile is not None and profile.tier is Tier.PRIMARY:
            scraped = profile.last_scraped_at or profile.created_at
            return StatusAnswer(
                username=username,
                completed=True,
                status="completed",
                message=f"Profile {username} is processed and available",
                estimated_time="complete",
                completed_at=to_iso(scraped) if scraped else None,
            )
        return StatusAnswer(
            username=username,
            completed=False,
            status="not_found",
            message=f"Profile {username} has not been requested; POST /api/profile/{username}/request to queue it",
        )
    return _status_of(job, jobs, clock)


def _status_of(job: Job, jobs: JobStore, clock: Clock) -> StatusAnswer:
    base = StatusAnswer(
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
    if job.is_active:
        place = position_of(job, clock(), jobs.position_facts(job, POSITION_CAP))
        verb = "waiting in queue" if job.status is JobStatus.PENDING else "being processed"
        return base.model_copy(
            update={
                "message": f"Profile {job.username} is {verb}",
                "queue_position": place.position,
                "estimated_time": place.estimated_time,
            }
        )
    if job.status is JobStatus.COMPLETED:
        return base.model_copy(
            update={
                "message": f"Profile {job.username} is processed and available",
                "estimated_time": "complete",
            }
        )
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
    return base.model_copy(
        update={
            "message": (
                f"Processing failed after {job.attempts} attempt(s): {job.error_message}. "
                "A new request starts a fresh job."
            ),
            "estimated_time": "unknown",
        }
    )
