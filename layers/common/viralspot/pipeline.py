"""The worker's rule (DESIGN.md "Processing", "Failure", "Viral analytics"):
claim the job with a lease, fetch, analyse, store idempotently, complete.

SQS delivers at least once and a worker can die anywhere, so every step is safe to
repeat: the claim decides who runs, writes are keyed by natural keys, and the job
is completed only by the attempt that still holds the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from viralspot.analytics import analyse
from viralspot.clock import Clock
from viralspot.errors import (
    ProviderError,
    ProviderSystemic,
    ProviderTransient,
    StorageError,
)
from viralspot.feed import FeedProfile
from viralspot.jobs import (
    Analysis,
    Job,
    JobMessage,
    JobStatus,
    closed,
    completed,
    failed,
    new_lease_id,
    paused,
)
from viralspot.ports import Content, Jobs, Profiles, Provider
from viralspot.profiles import Profile, Tier
from viralspot.providers import ProviderProfile
from viralspot.retry import RetryPolicy
from viralspot.usernames import username_or_none

logger = Logger(child=True)
metrics = Metrics()

# Discovery goes through the intake rule: (username, depth, discovered_from).
Discover = Callable[[str, int, str], None]


class Result(StrEnum):
    COMPLETED = "completed"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    NOT_CLAIMED = "not_claimed"
    MALFORMED = "malformed"
    LOST_CLAIM = "lost_claim"
    # A fault that is not the job's (the provider's key, the provider down): the job
    # waits, uncharged, and the operator is alerted (a metric and an alarm).
    PAUSED = "paused"
    # A PENDING job that can never be claimed (attempts used up after MaxAttempts was
    # lowered): closed with its last error instead of blocking the name for ever.
    CLOSED = "closed"


@dataclass(frozen=True)
class PipelinePolicy:
    lease: timedelta
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    reels_target: int = 100
    low_priority_reels_target: int = 30
    discovery_max_depth: int = 1
    discovery_fan_out: int = 5

    def reels_for(self, analysis: Analysis) -> int:
        return self.low_priority_reels_target if analysis is Analysis.CRAWL else self.reels_target


@dataclass(frozen=True)
class Worker:
    jobs: Jobs
    profiles: Profiles
    content: Content
    provider: Provider
    discover: Discover
    policy: PipelinePolicy
    clock: Clock

    def process(self, body: str, *, last_delivery: bool = False) -> Result:
        """Run the job a message names. `last_delivery`: SQS dead-letters this message
        if it fails now, so a failure is written on the job for the sweeper."""
        try:
            message = JobMessage.model_validate_json(body)
        except ValidationError as exc:
            # It can never succeed: acknowledge it instead of looping to the DLQ.
            logger.error(
                "malformed job message dropped", extra={"body": body[:500], "error": str(exc)}
            )
            return Result.MALFORMED
        now = self.clock()
        job = self.jobs.claim(
            message.username,
            message.request_id,
            now=now,
            lease_until=now + self.policy.lease,
            max_attempts=self.policy.retry.max_attempts,
            lease_id=new_lease_id(),
        )
        if job is None:
            logger.info(
                "message not claimed: duplicate delivery, superseded or finished job",
                extra={"username": message.username, "job_request_id": message.request_id},
            )
            return self._close_if_exhausted(message)
        try:
            return self._run(job)
        except StorageError as exc:
            # Storage trouble is not the job's: give it back uncharged, then let SQS
            # redeliver the message. On its last delivery the message goes to the
            # dead-letter queue, so the job records that and the sweeper sends it anew.
            reason = (
                f"waiting for the sweeper to send it again: its message was dead-lettered"
                f" after a storage failure ({exc})"
                if last_delivery
                else f"waiting for storage to be available ({exc})"
            )
            self._give_back(job, reason)
            raise

    def _close_if_exhausted(self, message: JobMessage) -> Result:
        job = self.jobs.get(message.username)
        if (
            job is None
            or job.request_id != message.request_id
            or job.status is not JobStatus.PENDING
            or not self.policy.retry.exhausted(job.attempts)
        ):
            return Result.NOT_CLAIMED
        if self.jobs.replace(job, closed(job, self.clock())):
            logger.warning("exhausted job closed", extra=_about(job, attempts=job.attempts))
            return Result.CLOSED
        return Result.NOT_CLAIMED

    def _give_back(self, job: Job, reason: str) -> bool:
        try:
            return self.jobs.finish(job, paused(job, self.clock(), reason))
        except StorageError:
            logger.exception(
                "job could not be given back; its lease will expire", extra=_about(job)
            )
            return False

    def _run(self, job: Job) -> Result:
        logger.info(
            "processing", extra=_about(job, attempt=job.attempts, provider=self.provider.name)
        )
        try:
            fetched = self.provider.fetch_profile(job.username)
            if username_or_none(fetched.username) != job.username:
                # Every key is the job's normalised name (DESIGN.md "One answer"): a
                # different account must not be stored under it, nor it under another.
                raise ProviderTransient(
                    f"provider answered with profile {fetched.username!r} for {job.username!r}"
                )
            reels = self.provider.fetch_reels(job.username, self.policy.reels_for(job.analysis))
            analysis = analyse(reels, fetched.followers_count)
        except ProviderSystemic as exc:
            return self._pause(job, exc)
        except ProviderError as exc:
            return self._fail(job, exc)
        except Exception as exc:
            # A bug (in an adapter or the analytics) must not hide behind a lease
            # expiry minutes later: record it now, as a transient failure, so the job
            # is retried with backoff and, if it persists, fails with this error.
            logger.exception("unexpected error while fetching or analysing", extra=_about(job))
            return self._fail(
                job, ProviderTransient(f"unexpected error: {type(exc).__name__}: {exc}")
            )
        similar = self._similar(job)
        now = self.clock()
        # Reels before the profile: a reader who sees the primary finds its reels. A
        # refresh replaces the analysed set: reels the new analysis does not hold go,
        # so /posts serves exactly what the statistics describe, and the feed lists
        # each reel once, with its new score and keys.
        self.content.put_reels(
            job.username,
            analysis.reels,
            self.provider.name,
            profile=FeedProfile(
                followers_count=fetched.followers_count,
                category=fetched.category,
                crawl_depth=job.analysis is Analysis.CRAWL,
            ),
        )
        self.content.remove_other_reels(job.username, {r.shortcode for r in analysis.reels})
        self.profiles.put_primary(
            _primary(
                fetched.model_copy(update={"username": job.username}),
                analysis.content_stats.model_dump(),
                analysis.engagement_metrics.model_dump(),
                similar,
                self.provider.name,
                now,
                job.analysis,
            )
        )
        if similar:
            self.profiles.put_secondaries(
                [_secondary(p, job.username, self.provider.name, now) for p in similar]
            )
            self._discover(job, similar)
        if not self.jobs.finish(job, completed(job, self.clock())):
            logger.warning(
                "lease lost before completion; another attempt owns the job", extra=_about(job)
            )
            return Result.LOST_CLAIM
        logger.info(
            "completed",
            extra=_about(
                job,
                reels=len(analysis.reels),
                viral_5x=analysis.content_stats.reels_5x,
                similar=len(similar),
                data_source=self.provider.name,
            ),
        )
        return Result.COMPLETED

    def _similar(self, job: Job) -> list[ProviderProfile]:
        if self.policy.discovery_fan_out <= 0:
            return []
        try:
            found = self.provider.fetch_similar(job.username, self.policy.discovery_fan_out)
        except ProviderError as exc:
            # Similar profiles are a bonus: their failure must not fail the analysis.
            logger.warning("similar profiles unavailable", extra=_about(job, error=str(exc)))
            return []
        return _canonical_similar(job, found)[: self.policy.discovery_fan_out]

    def _discover(self, job: Job, similar: list[ProviderProfile]) -> None:
        if job.depth >= self.policy.discovery_max_depth:
            return
        for candidate in similar:
            try:
                self.discover(candidate.username, job.depth + 1, job.username)
            except Exception:
                # Crawling is best effort; the analysis the person asked for is done.
                logger.exception(
                    "discovery failed", extra=_about(job, candidate=candidate.username)
                )

    def _pause(self, job: Job, exc: ProviderSystemic) -> Result:
        logger.error(
            "systemic provider fault: job paused, operator action may be needed",
            extra=_about(job, error=str(exc), fault=type(exc).__name__),
        )
        if not self._give_back(job, f"waiting for {exc.waiting_for}"):
            return Result.LOST_CLAIM
        return Result.PAUSED

    def _fail(self, job: Job, exc: ProviderError) -> Result:
        outcome = failed(
            job,
            self.clock(),
            error=str(exc),
            kind=exc.kind,
            retry=self.policy.retry,
        )
        if not self.jobs.finish(job, outcome):
            logger.warning("lease lost before recording the failure", extra=_about(job))
            return Result.LOST_CLAIM
        logger.warning(
            "attempt failed",
            extra=_about(
                job,
                error=str(exc),
                error_kind=exc.kind.value,
                attempt=job.attempts,
                next_retry_at=outcome.next_retry_at.isoformat() if outcome.next_retry_at else None,
            ),
        )
        if outcome.awaiting_retry:
            return Result.RETRY_SCHEDULED
        return Result.FAILED


def _about(job: Job, **fields: object) -> dict[str, object]:
    """Log fields naming the job (passed per call: a shared logger's keys would leak
    between records of one batch)."""
    return {"username": job.username, "job_request_id": job.request_id, **fields}


def _primary(
    fetched: ProviderProfile,
    content_stats: dict[str, object],
    engagement: dict[str, object],
    similar: list[ProviderProfile],
    data_source: str,
    now: datetime,
    analysis: Analysis,
) -> Profile:
    return Profile(
        **fetched.model_dump(),
        tier=Tier.PRIMARY,
        analysis=analysis,
        content_stats=content_stats,
        engagement_metrics=engagement,
        similar_usernames=[p.username for p in similar],
        data_source=data_source,
        created_at=now,
        updated_at=now,
        last_scraped_at=now,
    )


def _secondary(found: ProviderProfile, parent: str, data_source: str, now: datetime) -> Profile:
    return Profile(
        **found.model_dump(),
        tier=Tier.SECONDARY,
        discovered_from=parent,
        data_source=data_source,
        created_at=now,
        updated_at=now,
    )


def _canonical_similar(job: Job, found: list[ProviderProfile]) -> list[ProviderProfile]:
    """Similar profiles under their canonical names, each once, never the job's own.

    Provider data is untrusted input: a name is about to become a Profiles key, a
    Jobs key and a queued message, so it passes the same username rule as a name a
    person typed, and one that fails it is dropped, never stored."""
    kept: dict[str, ProviderProfile] = {}
    dropped = 0
    for profile in found:
        name = username_or_none(profile.username)
        if name is None:
            dropped += 1
            logger.warning(
                "similar profile dropped: not a username",
                extra=_about(job, candidate=profile.username[:64]),
            )
            continue
        if name != job.username and name not in kept:
            kept[name] = profile.model_copy(update={"username": name})
    if dropped:
        # Powertools' metrics are shared by every instance: the worker's handler
        # publishes this with its own at the end of the invocation.
        metrics.add_metric(name="Worker_similar_dropped", unit=MetricUnit.Count, value=dropped)
    return list(kept.values())
