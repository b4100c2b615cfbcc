"""Where a username stands (DESIGN.md "One answer").

Intake and status decide "processed / in queue / failed" with this one function
over the same two items (the job and the profile, read together), so a request and
a status poll never contradict each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from viralspot.jobs import Job
from viralspot.profiles import Profile, Tier


class Standing(StrEnum):
    QUEUED = "queued"  # a job waits, runs, or awaits its retry
    RECENT = "recent"  # completed within the recent window
    PROCESSED = "processed"  # a primary analysis that is not stale
    FAILED = "failed"  # the last job failed for good and nothing newer exists
    OPEN = "open"  # nothing decided: a request queues a job


def standing(
    job: Job | None, profile: Profile | None, now: datetime, stale_after: timedelta
) -> Standing:
    if job is not None and (job.is_active or job.awaiting_retry):
        return Standing.QUEUED
    if job is not None and job.completed_recently(now):
        return Standing.RECENT
    if is_fresh_primary(profile, now, stale_after):
        return Standing.PROCESSED
    if job is not None and job.failed_for_good:
        return Standing.FAILED
    return Standing.OPEN


def is_fresh_primary(profile: Profile | None, now: datetime, stale_after: timedelta) -> bool:
    return (
        profile is not None
        and profile.tier is Tier.PRIMARY
        and not profile.is_stale(now, stale_after)
    )
