"""Every job reaches a true end, and the API tells the truth about it (issue 14;
DESIGN.md "Systemic faults pause", "One answer", "The sweeper repairs").

One test per defect the issue lists, each on the in-memory fakes running the real
intake, worker, sweeper and status rules (tests/fakes/system.py). The adapters'
side of the same defects is tested on the emulator in
tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from aws_lambda_powertools import Metrics

from tests.fakes.memory_worker import MemoryContent, MemoryProfileStore
from tests.fakes.system import LEASE, System
from viralspot.bootstrap import LazyProvider
from viralspot.config import Settings
from viralspot.errors import (
    ErrorKind,
    ProfileNotFound,
    ProviderTransient,
    ProviderUnauthorized,
    StorageUnavailable,
)
from viralspot.intake import Outcome
from viralspot.jobs import (
    Analysis,
    Job,
    JobStatus,
    Priority,
    QueueName,
    Source,
    SweepKind,
    new_job,
    sweep_entry,
)
from viralspot.lifecycle import Standing
from viralspot.pipeline import Result
from viralspot.profiles import Profile, Tier
from viralspot.retry import RetryPolicy
from viralspot.sweeper import LEASE_EXPIRED, Repair, SweepPolicy
from viralspot.usernames import normalise_username

GRACE = timedelta(minutes=5)
TWO_ATTEMPTS = RetryPolicy(max_attempts=2)


@pytest.fixture
def system() -> System:
    return System()


def completed_profile(system: System, username: str, source: Source = Source.FRONTEND) -> None:
    system.request(username, source)
    assert system.deliver_sent(username) == [Result.COMPLETED]


# -- systemic faults pause, they do not fail ----------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cause"), [("key_missing", "accept our key"), ("down", "which is down")]
)
def test_a_systemic_fault_pauses_the_job_uncharged_until_it_is_fixed(
    system: System, fault: str, cause: str
) -> None:
    """A fault that is not the job's charges no attempt and fails nothing, however
    long it lasts; the status says the job is delayed and why; once fixed, the job
    completes with no manual step."""
    answer = system.request("natgeo").answer
    setattr(system.provider, fault, True)
    results = []
    for _ in range(12):  # an hour of sweeps, five minutes apart
        results += system.deliver_sent()
        system.clock.advance(GRACE + timedelta(seconds=1))
        system.sweep()
    assert len(results) == 12  # the sweeper re-sent it after every grace period
    assert set(results) == {Result.PAUSED}
    job = system.job("natgeo")
    assert job.status is JobStatus.PENDING
    assert job.attempts == 0
    assert job.request_id == answer.request_id
    status = system.status("natgeo")
    assert status.status == "delayed"
    assert status.delay_reason is not None
    assert cause in status.delay_reason
    assert cause in status.message
    assert status.attempts == 0
    assert system.standing("natgeo") is Standing.QUEUED

    setattr(system.provider, fault, False)
    results = system.deliver_sent()
    if not results:  # its last message was consumed while the fault lasted
        system.clock.advance(GRACE + timedelta(seconds=1))
        system.sweep()
        results = system.deliver_sent()
    assert results == [Result.COMPLETED]
    job = system.job("natgeo")
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1
    assert job.delay_reason is None
    assert system.status("natgeo").status == "completed"


def test_a_job_paused_mid_run_keeps_its_earlier_attempts_and_its_error(system: System) -> None:
    system.request("natgeo")
    system.provider.failures = [ProviderTransient("HTTP 429 rate limited")]
    assert system.deliver_sent() == [Result.RETRY_SCHEDULED]
    system.clock.advance(minutes=3)
    system.sweep()
    system.provider.key_missing = True
    assert system.deliver_sent() == [Result.PAUSED]
    job = system.job("natgeo")
    assert job.attempts == 1  # the transient failure's, not the pause's
    status = system.status("natgeo")
    assert status.status == "delayed"
    assert status.previous_error == "HTTP 429 rate limited"
    assert status.error_message is None


def test_storage_trouble_gives_the_job_back_uncharged() -> None:
    """DynamoDB failing mid-run is not the job's fault either: the job is PENDING
    again, uncharged, and the redelivered message completes it."""

    content = MemoryContent()
    content.refuse_next_put = True
    system = System(content=content)
    job = system.request("natgeo").answer
    [(_, sent)] = system.queue.sent
    with pytest.raises(StorageUnavailable):
        system.deliver(sent)  # the record fails: SQS delivers it again
    given_back = system.job("natgeo")
    assert given_back.status is JobStatus.PENDING
    assert given_back.attempts == 0
    delayed = system.status("natgeo")
    assert delayed.status == "delayed"
    assert delayed.message == (
        "Profile natgeo is waiting for storage to be available (write reels:"
        " ProvisionedThroughputExceededException); it is processed automatically once"
        " that is resolved"
    )
    assert system.deliver(sent) is Result.COMPLETED
    assert system.job("natgeo").attempts == 1
    assert system.job("natgeo").request_id == job.request_id


def test_a_provider_that_cannot_be_built_pauses_inside_the_attempt() -> None:
    """Building the provider (reading its key) happens inside the claimed attempt,
    so a missing key reaches the job instead of failing the message before any claim."""
    settings = Settings(
        profiles_table="p",
        content_table="c",
        jobs_table="j",
        high_queue_url="h",
        low_queue_url="l",
        provider="rapidapi",
        rapidapi_key_parameter=None,
    )
    provider = LazyProvider(settings)  # nothing read yet
    assert provider.name == "rapidapi"
    with pytest.raises(ProviderUnauthorized):
        provider.fetch_profile("natgeo")


# -- every state has an exit ---------------------------------------------------------------


def two_failed_attempts(system: System) -> None:
    """natgeo requested, failed twice on a transient fault and sent again by the
    sweeper each time: its third attempt is its last (MaxAttempts 3)."""
    system.request("natgeo")
    system.provider.failures = [ProviderTransient("HTTP 500") for _ in range(2)]
    for _ in range(2):
        assert system.deliver_sent() == [Result.RETRY_SCHEDULED]
        system.clock.advance(minutes=5)
        system.sweep()


def exhausted_pending(system: System, *, sent: bool) -> Job:
    """A PENDING job whose attempts reached MaxAttempts (lowered after its retry was
    sent): no claim can ever take it."""
    two_failed_attempts(system)
    job = system.job("natgeo")
    assert job.status is JobStatus.PENDING
    assert job.attempts == 2
    if not sent:
        job = job.model_copy(update={"dispatched_at": None})
        system.jobs.put(job)
    system.pipeline_policy = type(system.pipeline_policy)(lease=LEASE, retry=TWO_ATTEMPTS)
    system.sweep_policy = SweepPolicy(retry=TWO_ATTEMPTS, min_time_left_ms=0)
    return job


def test_an_exhausted_pending_job_is_closed_by_its_message(system: System) -> None:
    exhausted_pending(system, sent=True)
    assert system.deliver_sent() == [Result.CLOSED]
    job = system.job("natgeo")
    assert job.failed_for_good
    assert job.error_message == "HTTP 500"
    assert system.status("natgeo").status == "failed"
    again = system.request("natgeo")
    assert again.outcome is Outcome.NEW  # the name is not blocked for ever
    assert again.answer.request_id != job.request_id


def test_an_exhausted_pending_job_is_closed_by_the_sweeper(system: System) -> None:
    exhausted_pending(system, sent=False)
    system.lose_sent()
    system.clock.advance(GRACE + timedelta(seconds=1))
    report = system.sweep()
    assert report.repairs[Repair.FAILED_FOR_GOOD] == 1
    assert report.repairs[Repair.REDISPATCHED] == 0
    assert system.job("natgeo").failed_for_good
    assert system.request("natgeo").outcome is Outcome.NEW


@pytest.mark.parametrize("closer", ["worker", "sweeper"])
def test_a_closed_job_ends_like_any_exhausted_job_with_a_reason_and_a_kind(
    system: System, closer: str
) -> None:
    """Found by the state machine: a job whose attempts were all charged by deaths
    (no attempt recorded an error) was closed with no error_kind. It ends like every
    job whose attempts ran out: transient, with a reason, listed as exhausted."""
    system.request("natgeo")
    [(_, sent)] = system.queue.sent
    job = system.job("natgeo").model_copy(update={"attempts": 2})
    if closer == "sweeper":
        job = job.model_copy(update={"dispatched_at": None})
    system.jobs.put(job)
    system.pipeline_policy = type(system.pipeline_policy)(lease=LEASE, retry=TWO_ATTEMPTS)
    system.sweep_policy = SweepPolicy(retry=TWO_ATTEMPTS, min_time_left_ms=0)
    if closer == "worker":
        assert system.deliver(sent) is Result.CLOSED
    else:
        system.clock.advance(GRACE + timedelta(seconds=1))
        assert system.sweep().repairs[Repair.FAILED_FOR_GOOD] == 1
    closed = system.job("natgeo")
    assert closed.failed_for_good
    assert closed.error_kind is ErrorKind.TRANSIENT
    assert closed.error_message == "attempts used up (MaxAttempts)"
    assert sweep_entry(closed) is not None
    assert sweep_entry(closed)[0] is SweepKind.EXHAUSTED  # type: ignore[index]
    status = system.status("natgeo")
    assert (status.status, status.error_kind) == ("failed", "transient")


def test_each_sweeper_pass_gets_a_share_of_the_run_high_first(system: System) -> None:
    """Many expired leases do not starve due retries and lost messages, and within
    each pass HIGH comes before LOW whatever the order in time."""
    system.sweep_policy = SweepPolicy(max_jobs=4, min_time_left_ms=0)
    now = system.clock()
    for i in range(6):
        system.jobs.put(
            new_job(f"crawled{i}", Source.CRAWLER, now - timedelta(hours=1)).model_copy(
                update={
                    "status": JobStatus.PROCESSING,
                    "attempts": 1,
                    "last_attempt": now - timedelta(hours=1),
                    "lease_until": now - timedelta(minutes=50),
                    "lease_id": f"lease{i}",
                }
            )
        )

    def retrying(name: str, source: Source, due: timedelta) -> None:
        system.jobs.put(
            new_job(name, source, now - timedelta(hours=1)).model_copy(
                update={
                    "status": JobStatus.FAILED,
                    "attempts": 1,
                    "error_message": "HTTP 429",
                    "error_kind": ErrorKind.TRANSIENT,
                    "next_retry_at": now - due,
                }
            )
        )

    retrying("low_retry", Source.CRAWLER, timedelta(minutes=30))
    retrying("high_retry", Source.FRONTEND, timedelta(minutes=1))
    system.jobs.put(new_job("low_unsent", Source.CRAWLER, now - timedelta(hours=2)))
    system.jobs.put(new_job("high_unsent", Source.FRONTEND, now - timedelta(minutes=6)))

    report = system.sweep()

    assert report.examined == 4
    assert report.repairs[Repair.RETRIED] == 1
    assert report.repairs[Repair.REDISPATCHED] == 1
    assert report.repairs[Repair.LEASE_EXPIRED] == 2
    sent = {job.username for _, job in system.queue.sent}
    assert sent == {"high_retry", "high_unsent"}
    assert len(system.queue.on(QueueName.HIGH)) == 2
    assert system.queue.on(QueueName.LOW) == []


# -- one answer ------------------------------------------------------------------------------


class DiesAfterStoringTheProfile(MemoryProfileStore):
    """The worker's container dies (timeout, out of memory) right after the profile
    is stored, before the job is completed."""

    armed = False

    def put_primary(self, profile: Profile) -> None:
        super().put_primary(profile)
        if self.armed:
            self.armed = False
            raise SystemExit("killed after storing the profile")


def test_a_last_attempt_that_dies_after_storing_the_profile_is_completed() -> None:
    profiles = DiesAfterStoringTheProfile()
    system = System(profiles=profiles)
    two_failed_attempts(system)
    profiles.armed = True
    with pytest.raises(SystemExit):
        system.deliver_sent()
    assert system.job("natgeo").attempts == 3  # the last one

    system.clock.advance(LEASE + timedelta(seconds=1))
    report = system.sweep()

    assert report.repairs[Repair.COMPLETED] == 1
    job = system.job("natgeo")
    assert job.status is JobStatus.COMPLETED
    assert job.error_message is None
    assert system.status("natgeo").status == "completed"
    assert system.request("natgeo").outcome is Outcome.RECENTLY_COMPLETED


def test_a_lease_expiring_before_the_profile_was_stored_is_still_a_failed_attempt(
    system: System,
) -> None:
    """The other side of the rule above: an older analysis of the profile does not
    complete a job whose own attempt stored nothing."""
    completed_profile(system, "natgeo")
    system.clock.advance(days=8)
    system.request("natgeo")  # a refresh
    [_, (_, refresh)] = system.queue.sent
    system.lose_sent()
    claimed = system.jobs.claim(
        "natgeo",
        refresh.request_id,
        now=system.clock(),
        lease_until=system.clock() + LEASE,
        max_attempts=3,
        lease_id="dead-worker",
    )
    assert claimed is not None
    system.clock.advance(LEASE + timedelta(seconds=1))
    assert system.sweep().repairs[Repair.LEASE_EXPIRED] == 1
    job = system.job("natgeo")
    assert job.awaiting_retry
    assert job.error_message == LEASE_EXPIRED


def test_a_deepening_job_is_not_completed_by_the_crawl_analysis_it_replaces(
    system: System,
) -> None:
    """Found by the state machine: a person's request deepens a crawl analysis the
    moment it is stored; its job dies after its claim. The crawl analysis was
    scraped at the claim's instant (same millisecond, or a clock ahead), yet it is
    not this job's work: the lease expiry is a failed attempt, not a completion."""
    system.discover("natgeo", 1, "someone")
    assert system.deliver_sent() == [Result.COMPLETED]
    assert system.request("natgeo", Source.FRONTEND).outcome is Outcome.UPGRADED
    [(_, deepen)] = system.queue.sent[1:]
    system.lose_sent()
    assert system.jobs.claim(
        "natgeo",
        deepen.request_id,
        now=system.clock(),  # the instant the crawl analysis was stored
        lease_until=system.clock() + LEASE,
        max_attempts=3,
        lease_id="dies-now",
    )
    system.clock.advance(LEASE + timedelta(seconds=1))
    report = system.sweep()
    assert report.repairs[Repair.COMPLETED] == 0
    assert report.repairs[Repair.LEASE_EXPIRED] == 1
    job = system.job("natgeo")
    assert job.awaiting_retry
    assert system.status("natgeo").analysis is None  # still in queue, not "completed"


def test_a_raise_that_loses_a_race_with_the_sweepers_retry_reads_again(system: System) -> None:
    """The sweeper turns the crawler's job FAILED -> PENDING between the person's read
    and the person's raise: the raise fails on the stale version, reads again, and
    raises the job as it now is."""
    system.discover("natgeo", 1, "someone")
    system.provider.failures = [ProviderTransient("HTTP 429")]
    assert system.deliver_sent() == [Result.RETRY_SCHEDULED]
    system.clock.advance(minutes=3)  # the retry is due

    def sweep_in_between(_: str) -> None:
        system.jobs.after_read = None
        assert system.sweep().repairs[Repair.RETRIED] == 1

    system.jobs.after_read = sweep_in_between
    decision = system.request("natgeo", Source.FRONTEND)

    assert decision.outcome is Outcome.PRIORITY_RAISED
    assert decision.answer.priority is Priority.HIGH
    assert decision.answer.status == "pending"
    job = system.job("natgeo")
    assert job.priority is Priority.HIGH
    assert job.status is JobStatus.PENDING
    assert [j.request_id for j in system.queue.on(QueueName.HIGH)] == [job.request_id]


def test_a_retrying_jobs_status_shows_the_earlier_error_as_history(system: System) -> None:
    system.request("natgeo")
    system.provider.failures = [ProviderTransient("HTTP 429 rate limited")]
    assert system.deliver_sent() == [Result.RETRY_SCHEDULED]
    waiting = system.status("natgeo")
    assert waiting.status == "failed"
    assert waiting.error_message == "HTTP 429 rate limited"  # the current state

    system.clock.advance(minutes=3)
    system.sweep()
    retrying = system.status("natgeo")
    assert retrying.status == "pending"
    assert retrying.error_message is None
    assert retrying.error_kind is None
    assert retrying.previous_error == "HTTP 429 rate limited"


# -- one spelling ----------------------------------------------------------------------------


def all_keys(system: System) -> set[str]:
    return (
        {job.username for job in system.jobs.all()}
        | set(system.profiles._items)
        | {name for name, _ in system.content.items}
    )


def test_the_providers_spelling_of_the_name_is_stored_under_the_jobs_name(
    system: System,
) -> None:
    system.provider.spelling["natgeo"] = "NatGeo"
    completed_profile(system, "natgeo")
    profile = system.profiles.get("natgeo")
    assert profile is not None
    assert profile.tier is Tier.PRIMARY
    assert all_keys(system) == {"natgeo"}
    assert system.standing("natgeo") is Standing.RECENT


def test_an_answer_about_another_account_is_an_error_on_the_job(system: System) -> None:
    system.provider.spelling["natgeo"] = "natgeo_fan"
    system.request("natgeo")
    assert system.deliver_sent() == [Result.RETRY_SCHEDULED]
    job = system.job("natgeo")
    assert job.error_kind is ErrorKind.TRANSIENT
    assert job.error_message is not None
    assert "natgeo_fan" in job.error_message
    assert system.profiles.get("natgeo") is None
    assert system.profiles.get("natgeo_fan") is None


def test_discovered_names_are_normalised_and_invalid_ones_skipped(system: System) -> None:
    Metrics().clear_metrics()  # what earlier tests in this process added
    system.provider.similar["natgeo"] = [
        "Bob.Smith",
        "bob.smith",
        "@BOB.SMITH",
        "not valid!",
        "x" * 31,
        "..dots",
        "NatGeo",
    ]
    completed_profile(system, "natgeo")
    crawled = [job for job in system.jobs.all() if job.source is Source.CRAWLER]
    assert [job.username for job in crawled] == ["bob.smith"]
    assert crawled[0].discovered_from == "natgeo"
    profile = system.profiles.get("natgeo")
    assert profile is not None
    assert profile.similar_usernames == ["bob.smith"]
    assert all(normalise_username(key) == key for key in all_keys(system))
    # Counted where the operator looks: the worker's metrics (shared by every instance).
    # The provider answers the fan-out's first five: two of them are not usernames.
    assert system.worker.policy.discovery_fan_out == 5
    published = Metrics().metric_set["Worker_similar_dropped"]
    assert published["Value"] == [2.0]


# -- a person's analysis is never thinned -----------------------------------------------------


def test_a_crawler_request_refreshes_a_persons_stale_profile_at_full_depth(
    system: System,
) -> None:
    completed_profile(system, "natgeo")
    system.clock.advance(days=8)
    decision = system.request("natgeo", Source.CRAWLER)
    assert decision.outcome is Outcome.UPGRADED  # a refresh
    job = system.job("natgeo")
    assert job.priority is Priority.LOW
    assert job.analysis is Analysis.FULL
    assert system.deliver_sent() == [Result.COMPLETED]
    assert system.provider.reels_asked[-1] == ("natgeo", system.pipeline_policy.reels_target)
    profile = system.profiles.get("natgeo")
    assert profile is not None
    assert profile.analysis is Analysis.FULL
    assert len(system.content.reels_of("natgeo")) == system.pipeline_policy.reels_target


def test_a_refresh_replaces_the_analysed_set(system: System) -> None:
    completed_profile(system, "natgeo")
    system.clock.advance(days=8)
    system.provider.new_since["natgeo"] = 20  # twenty new reels, and
    system.provider.posted["natgeo"] = 60  # the account deleted most of the old ones
    system.request("natgeo")
    assert system.deliver_sent() == [Result.COMPLETED]
    profile = system.profiles.get("natgeo")
    assert profile is not None
    assert profile.content_stats is not None
    stored = {reel.shortcode for reel in system.content.reels_of("natgeo")}
    assert len(stored) == profile.content_stats["total_reels"] == 60
    assert stored == {f"natgeo-{20 - i}" for i in range(60)}


def test_a_person_raising_a_crawler_job_takes_its_source_depth_and_analysis(
    system: System,
) -> None:
    system.provider.similar["natgeo"] = ["child"]
    system.provider.similar["child"] = ["grandchild"]
    completed_profile(system, "natgeo")
    crawled = system.job("child")
    assert (crawled.source, crawled.depth, crawled.analysis) == (
        Source.CRAWLER,
        1,
        Analysis.CRAWL,
    )

    decision = system.request("child", Source.FRONTEND)

    assert decision.outcome is Outcome.PRIORITY_RAISED
    job = system.job("child")
    assert (job.source, job.priority, job.depth, job.analysis, job.discovered_from) == (
        Source.FRONTEND,
        Priority.HIGH,
        0,
        Analysis.FULL,
        None,
    )
    assert job.request_id == crawled.request_id
    results = system.deliver_sent()
    assert Result.COMPLETED in results
    assert ("child", system.pipeline_policy.reels_target) in system.provider.reels_asked
    # The person's analysis discovers from the top: its similar profile is queued.
    grandchild = system.job("grandchild")
    assert (grandchild.source, grandchild.depth) == (Source.CRAWLER, 1)


def test_crawling_does_not_replace_a_persons_failed_job(system: System) -> None:
    answer = system.request("natgeo").answer
    system.provider.failures = [ProfileNotFound("natgeo does not exist")]
    assert system.deliver_sent() == [Result.FAILED]

    decision = system.request("natgeo", Source.CRAWLER)

    assert decision.outcome is Outcome.FAILED_KEPT
    assert decision.answer.queued is False
    job = system.job("natgeo")
    assert job.request_id == answer.request_id
    assert job.source is Source.FRONTEND
    status = system.status("natgeo")
    assert status.status == "failed"
    assert status.request_id == answer.request_id
    assert status.error_message == "natgeo does not exist"
    # The person asking again does start a fresh job.
    assert system.request("natgeo").outcome is Outcome.NEW


@pytest.mark.parametrize("source", [Source.FRONTEND, Source.API])
def test_a_persons_request_deepens_a_crawled_profile(system: System, source: Source) -> None:
    system.discover("natgeo", 1, "someone")
    assert system.deliver_sent() == [Result.COMPLETED]
    assert system.status("natgeo").analysis == "crawl"
    assert (
        len(system.content.reels_of("natgeo")) == system.pipeline_policy.low_priority_reels_target
    )
    system.clock.advance(minutes=11)  # past "recently completed"

    decision = system.request("natgeo", source)

    assert decision.outcome is Outcome.UPGRADED
    assert decision.answer.queued is True
    assert decision.answer.upgraded is True
    assert decision.answer.profile_type == "upgrade"
    assert "crawl depth" in decision.answer.message
    assert system.job("natgeo").analysis is Analysis.FULL
    assert system.deliver_sent() == [Result.COMPLETED]
    assert system.status("natgeo").analysis == "full"
    assert len(system.content.reels_of("natgeo")) == system.pipeline_policy.reels_target
    # Full now: the next request is answered from the stored analysis.
    system.clock.advance(minutes=11)
    assert system.request("natgeo", source).outcome is Outcome.ALREADY_PROCESSED
