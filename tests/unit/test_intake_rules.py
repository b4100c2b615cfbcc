"""The intake rules of DESIGN.md ("Dedup is one atomic step", "Priority", "Queue
position", "Failure") on in-memory fakes of the ports: fast, no AWS."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fakes.memory import MemoryJobStore, MemoryProfiles, RecordingDispatcher
from tests.support import FIXED_START, StepClock
from viralspot import intake
from viralspot.clock import to_iso
from viralspot.errors import ErrorKind, InvalidInput, StorageUnavailable
from viralspot.intake import Decision, IntakePolicy, Outcome
from viralspot.jobs import (
    RECENT_COMPLETION_WINDOW,
    Analysis,
    Job,
    JobStatus,
    Priority,
    ProfileType,
    QueueName,
    Source,
    new_job,
)
from viralspot.profiles import Profile, Tier
from viralspot.queue_stats import estimated_wait
from viralspot.retry import RetryPolicy
from viralspot.usernames import normalise_username

STALE_AFTER = timedelta(days=7)


@dataclass
class Intake:
    """The intake service wired to fakes."""

    clock: StepClock = field(default_factory=lambda: StepClock(FIXED_START))
    profiles: MemoryProfiles = field(default_factory=MemoryProfiles)
    dispatcher: RecordingDispatcher = field(default_factory=RecordingDispatcher)
    policy: IntakePolicy = field(default_factory=lambda: IntakePolicy(stale_after=STALE_AFTER))
    jobs: MemoryJobStore = field(init=False)

    def __post_init__(self) -> None:
        self.jobs = MemoryJobStore(self.profiles)

    @property
    def now(self) -> datetime:
        return self.clock()

    def request(self, username: str = "natgeo", source: Source = Source.FRONTEND) -> Decision:
        return intake.request_profile(
            username,
            source,
            jobs=self.jobs,
            dispatcher=self.dispatcher,
            policy=self.policy,
            clock=self.clock,
        )

    def existing_job(
        self,
        username: str = "natgeo",
        source: Source = Source.FRONTEND,
        *,
        age: timedelta = timedelta(minutes=30),
        **changes: object,
    ) -> Job:
        job = new_job(username, source, self.now - age).model_copy(update=changes)
        self.jobs.put(job)
        return job

    def primary(
        self,
        username: str = "natgeo",
        *,
        scraped_ago: timedelta,
        analysis: Analysis | None = None,
    ) -> Profile:
        created = self.now - timedelta(days=60)
        profile = Profile(
            username=username,
            tier=Tier.PRIMARY,
            analysis=analysis,
            created_at=created,
            updated_at=self.now - scraped_ago,
            last_scraped_at=self.now - scraped_ago,
        )
        self.profiles.put(profile)
        return profile

    def secondary(self, username: str = "natgeo") -> Profile:
        profile = Profile(
            username=username,
            tier=Tier.SECONDARY,
            discovered_from="someone",
            created_at=self.now - timedelta(days=1),
        )
        self.profiles.put(profile)
        return profile


@pytest.fixture
def svc() -> Intake:
    return Intake()


# -- new profiles and priority -------------------------------------------------------


def test_new_profile_is_queued_first_at_high_priority(svc: Intake) -> None:
    decision = svc.request("natgeo")
    answer = decision.answer
    assert decision.outcome is Outcome.NEW
    assert answer.queued is True
    assert answer.profile_type == "new"
    assert answer.status == "pending"
    assert answer.priority is Priority.HIGH
    assert answer.queue_position == 1
    assert answer.estimated_time == "1-2 minutes"
    assert answer.next_check_recommended == "30 seconds"
    assert answer.upgraded is None
    assert answer.fallback_mode is None
    assert answer.skip_reason is None
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.request_id == answer.request_id
    assert stored.status is JobStatus.PENDING
    assert stored.attempts == 0
    assert stored.enqueued_at == svc.now
    assert [job.request_id for _, job in svc.dispatcher.sent] == [answer.request_id]


@pytest.mark.parametrize(
    ("source", "priority", "queue"),
    [
        (Source.FRONTEND, Priority.HIGH, QueueName.HIGH),
        (Source.ADMIN, Priority.HIGH, QueueName.HIGH),
        (Source.API, Priority.MEDIUM, QueueName.MEDIUM),
        (Source.BULK, Priority.MEDIUM, QueueName.MEDIUM),
        (Source.CRAWLER, Priority.LOW, QueueName.LOW),
    ],
)
def test_priority_and_queue_follow_the_source(
    svc: Intake, source: Source, priority: Priority, queue: QueueName
) -> None:
    answer = svc.request("natgeo", source).answer
    assert answer.priority is priority
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert (stored.priority, stored.source) == (priority, source)
    assert [(q, j.request_id) for q, j in svc.dispatcher.sent] == [(queue, answer.request_id)]


def test_queue_position_counts_higher_priority_and_earlier_jobs(svc: Intake) -> None:
    svc.request("low_one", Source.CRAWLER)
    svc.clock.advance(seconds=1)
    svc.request("medium_one", Source.API)
    svc.clock.advance(seconds=1)
    svc.request("high_one", Source.FRONTEND)
    svc.clock.advance(seconds=1)
    # A later HIGH overtakes every MEDIUM and LOW, but not the earlier HIGH.
    assert svc.request("high_two", Source.FRONTEND).answer.queue_position == 2
    assert svc.request("medium_two", Source.BULK).answer.queue_position == 4
    assert svc.request("low_two", Source.CRAWLER).answer.queue_position == 6


def test_finished_jobs_do_not_count_in_the_queue_position(svc: Intake) -> None:
    svc.existing_job("done", status=JobStatus.COMPLETED, completed_at=svc.now)
    svc.existing_job(
        "gave_up", status=JobStatus.FAILED, error_kind=ErrorKind.PERMANENT, error_message="x"
    )
    svc.existing_job("running", status=JobStatus.PROCESSING)
    assert svc.request("natgeo").answer.queue_position == 2  # only "running"


@pytest.mark.parametrize(
    ("ahead", "expected"),
    [
        (0, "1-2 minutes"),
        (1, "2-5 minutes"),
        (2, "2-5 minutes"),
        (3, "5-15 minutes"),
        (9, "5-15 minutes"),
        # Beyond 10 the time comes from the measured drain rate; none is measured yet.
        (10, "more than 15 minutes"),
    ],
)
def test_estimated_time_follows_the_position(svc: Intake, ahead: int, expected: str) -> None:
    for i in range(ahead):
        svc.existing_job(f"ahead_{i}", age=timedelta(minutes=i + 1))
    answer = svc.request("natgeo").answer
    assert answer.queue_position == ahead + 1
    assert answer.estimated_time == expected


@pytest.mark.parametrize(
    ("position", "drain", "expected"),
    [
        (1, None, "1-2 minutes"),
        (2, None, "2-5 minutes"),
        (3, None, "2-5 minutes"),
        (4, None, "5-15 minutes"),
        (10, None, "5-15 minutes"),
        (11, None, "more than 15 minutes"),
        (11, 0.0, "more than 15 minutes"),
        # From the drain rate (jobs per minute), never a fixed "15-30 minutes".
        (11, 1.0, "about 15 minutes"),
        (100, 2.0, "about 50 minutes"),
        (500, 2.0, "about 4 hours"),
        (10_000, 2.0, "about 3 days"),
    ],
)
def test_estimated_time_thresholds(position: int, drain: float | None, expected: str) -> None:
    assert estimated_wait(position, drain) == expected


@pytest.mark.parametrize(
    ("attempts", "minutes"), [(0, 1), (1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]
)
def test_retry_delay_doubles_and_caps_at_thirty_minutes(attempts: int, minutes: int) -> None:
    assert RetryPolicy().delay(attempts) == timedelta(minutes=minutes)


def test_retry_delay_cap_is_configurable() -> None:
    assert RetryPolicy(backoff_cap_minutes=10).delay(4) == timedelta(minutes=10)


# -- duplicates ---------------------------------------------------------------------------


def test_second_request_is_already_in_queue_with_the_same_request_id(svc: Intake) -> None:
    first = svc.request("natgeo").answer
    svc.clock.advance(seconds=5)
    decision = svc.request("natgeo")
    second = decision.answer
    assert decision.outcome is Outcome.ALREADY_IN_QUEUE
    assert second.skip_reason == "already_in_queue"
    assert second.request_id == first.request_id
    assert second.queued is True
    assert second.profile_type == "queued"
    assert second.status == "pending"
    assert second.priority is Priority.HIGH
    assert second.queue_position == 1
    assert second.upgraded is None
    assert len(svc.dispatcher.sent) == 1
    assert len(svc.jobs.all()) == 1


def test_processing_job_is_reported_as_processing(svc: Intake) -> None:
    job = svc.existing_job(status=JobStatus.PROCESSING, attempts=1)
    answer = svc.request().answer
    assert answer.status == "processing"
    assert answer.skip_reason == "already_in_queue"
    assert answer.request_id == job.request_id
    assert "PROCESSING" in answer.message
    assert svc.dispatcher.sent == []


def test_completed_five_minutes_ago_is_recently_completed(svc: Intake) -> None:
    completed_at = svc.now - timedelta(minutes=5)
    job = svc.existing_job(status=JobStatus.COMPLETED, completed_at=completed_at, attempts=1)
    svc.primary(scraped_ago=timedelta(minutes=5))
    decision = svc.request()
    answer = decision.answer
    assert decision.outcome is Outcome.RECENTLY_COMPLETED
    assert answer.queued is False
    assert answer.skip_reason == "recently_completed"
    assert answer.status == "exists"
    assert answer.profile_type == "primary"
    assert answer.estimated_time == "complete"
    assert answer.created_at == to_iso(completed_at)
    assert answer.request_id is None
    assert svc.jobs.get("natgeo") == job
    assert svc.dispatcher.sent == []


def test_recently_completed_wins_even_over_a_secondary_profile(svc: Intake) -> None:
    # The window applies whatever the tier: a profile just processed is not queued again.
    svc.existing_job(status=JobStatus.COMPLETED, completed_at=svc.now - timedelta(minutes=9))
    svc.secondary()
    assert svc.request().answer.skip_reason == "recently_completed"
    assert svc.dispatcher.sent == []


def test_completed_eleven_minutes_ago_with_fresh_primary_is_already_processed(
    svc: Intake,
) -> None:
    job = svc.existing_job(status=JobStatus.COMPLETED, completed_at=svc.now - timedelta(minutes=11))
    profile = svc.primary(scraped_ago=timedelta(minutes=11))
    decision = svc.request()
    answer = decision.answer
    assert decision.outcome is Outcome.ALREADY_PROCESSED
    assert answer.queued is False
    assert answer.skip_reason == "already_processed"
    assert answer.status == "exists"
    assert answer.profile_type == "primary"
    assert answer.estimated_time == "complete"
    assert profile.created_at is not None
    assert answer.created_at == to_iso(profile.created_at)
    assert svc.jobs.get("natgeo") == job
    assert svc.dispatcher.sent == []


def test_fresh_primary_without_any_job_is_already_processed(svc: Intake) -> None:
    svc.primary(scraped_ago=timedelta(days=6, hours=23))
    assert svc.request().answer.skip_reason == "already_processed"
    assert svc.jobs.all() == []


def test_completed_long_ago_with_stale_primary_is_queued_for_refresh(svc: Intake) -> None:
    old = svc.existing_job(
        status=JobStatus.COMPLETED, completed_at=svc.now - timedelta(minutes=11), attempts=1
    )
    svc.primary(scraped_ago=STALE_AFTER + timedelta(minutes=1))
    decision = svc.request()
    answer = decision.answer
    assert decision.outcome is Outcome.UPGRADED
    assert answer.queued is True
    assert answer.profile_type == "refresh"
    assert answer.upgraded is True
    assert answer.status == "pending"
    assert answer.request_id != old.request_id
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.request_id == answer.request_id
    assert stored.status is JobStatus.PENDING
    assert stored.profile_type is ProfileType.REFRESH
    assert stored.attempts == 0
    assert [j.request_id for _, j in svc.dispatcher.sent] == [answer.request_id]


def test_primary_without_last_scraped_at_counts_as_stale(svc: Intake) -> None:
    svc.profiles.put(Profile(username="natgeo", tier=Tier.PRIMARY, created_at=svc.now))
    assert svc.request().answer.profile_type == "refresh"


def test_secondary_profile_is_upgraded_to_a_full_analysis(svc: Intake) -> None:
    svc.secondary()
    decision = svc.request(source=Source.API)
    answer = decision.answer
    assert decision.outcome is Outcome.UPGRADED
    assert answer.queued is True
    assert answer.profile_type == "upgrade"
    assert answer.upgraded is True
    assert answer.priority is Priority.MEDIUM
    assert answer.queue_position == 1
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.profile_type is ProfileType.UPGRADE
    assert [(q, j.request_id) for q, j in svc.dispatcher.sent] == [
        (QueueName.MEDIUM, answer.request_id)
    ]
    # The read saw the secondary: one write, conditional on it still being one.
    assert svc.jobs.create_calls == 1


def test_failed_for_good_gets_a_fresh_job(svc: Intake) -> None:
    old = svc.existing_job(
        status=JobStatus.FAILED,
        attempts=3,
        error_kind=ErrorKind.TRANSIENT,
        error_message="rate limited",
    )
    answer = svc.request().answer
    assert answer.profile_type == "new"
    assert answer.request_id != old.request_id
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.request_id == answer.request_id
    assert stored.status is JobStatus.PENDING
    assert stored.attempts == 0
    assert stored.error_message is None
    assert len(svc.dispatcher.sent) == 1


def test_failed_awaiting_retry_is_already_in_queue_with_its_retry_time(svc: Intake) -> None:
    retry_at = svc.now + timedelta(minutes=4)
    old = svc.existing_job(
        status=JobStatus.FAILED,
        attempts=2,
        error_kind=ErrorKind.TRANSIENT,
        error_message="rate limited",
        next_retry_at=retry_at,
    )
    decision = svc.request()
    answer = decision.answer
    assert decision.outcome is Outcome.ALREADY_IN_QUEUE
    assert answer.queued is True
    assert answer.skip_reason == "already_in_queue"
    assert answer.status == "failed"
    assert answer.request_id == old.request_id
    assert answer.next_retry_at == to_iso(retry_at)
    assert answer.queue_position is None  # not in the active queue until the sweeper revives it
    assert svc.jobs.get("natgeo") == old
    assert svc.dispatcher.sent == []


# -- crawl depth ------------------------------------------------------------------------


@pytest.mark.parametrize("completed_ago", [timedelta(minutes=3), timedelta(hours=2)])
@pytest.mark.parametrize("source", [Source.FRONTEND, Source.API])
def test_a_persons_request_deepens_a_profile_analysed_for_crawling(
    svc: Intake, source: Source, completed_ago: timedelta
) -> None:
    svc.existing_job(
        source=Source.CRAWLER,
        status=JobStatus.COMPLETED,
        completed_at=svc.now - completed_ago,
        attempts=1,
    )
    svc.primary(scraped_ago=completed_ago, analysis=Analysis.CRAWL)
    decision = svc.request("natgeo", source)
    assert decision.outcome is Outcome.UPGRADED
    assert decision.answer.profile_type == "upgrade"
    assert "crawl depth" in decision.answer.message
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert (stored.status, stored.analysis, stored.source) == (
        JobStatus.PENDING,
        Analysis.FULL,
        source,
    )


def test_crawling_asks_nothing_more_of_a_profile_analysed_for_crawling(svc: Intake) -> None:
    svc.primary(scraped_ago=timedelta(hours=2), analysis=Analysis.CRAWL)
    assert svc.request("natgeo", Source.CRAWLER).answer.skip_reason == "already_processed"
    assert svc.jobs.all() == []


def test_crawling_refreshes_a_persons_stale_profile_at_the_persons_depth(svc: Intake) -> None:
    svc.primary(scraped_ago=STALE_AFTER + timedelta(hours=1), analysis=Analysis.FULL)
    assert svc.request("natgeo", Source.CRAWLER).answer.profile_type == "refresh"
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert (stored.priority, stored.analysis) == (Priority.LOW, Analysis.FULL)


def test_a_person_raising_a_crawler_job_makes_it_the_persons(svc: Intake) -> None:
    svc.existing_job(source=Source.CRAWLER, depth=1, discovered_from="someone")
    svc.request("natgeo", Source.FRONTEND)
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert (stored.source, stored.priority, stored.analysis, stored.depth) == (
        Source.FRONTEND,
        Priority.HIGH,
        Analysis.FULL,
        0,
    )


def test_crawling_leaves_a_persons_failed_job_as_the_persons_answer(svc: Intake) -> None:
    failed_job = svc.existing_job(
        status=JobStatus.FAILED, error_kind=ErrorKind.PERMANENT, error_message="not found"
    )
    decision = svc.request("natgeo", Source.CRAWLER)
    assert decision.outcome is Outcome.FAILED_KEPT
    assert svc.jobs.get("natgeo") == failed_job
    assert svc.dispatcher.sent == []


# -- priority raise -----------------------------------------------------------------------


@pytest.mark.parametrize("waiting", [Source.CRAWLER, Source.API])
def test_high_request_raises_a_waiting_lower_priority_job(svc: Intake, waiting: Source) -> None:
    first = svc.request("natgeo", waiting).answer
    assert first.priority is not Priority.HIGH
    svc.clock.advance(seconds=30)
    decision = svc.request("natgeo", Source.FRONTEND)
    answer = decision.answer
    assert decision.outcome is Outcome.PRIORITY_RAISED
    assert answer.upgraded is True
    assert answer.priority is Priority.HIGH
    assert answer.request_id == first.request_id
    assert answer.skip_reason == "already_in_queue"
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH
    assert stored.request_id == first.request_id
    assert stored.updated_at == svc.now
    # The original message stays on its queue; a copy goes to the high queue.
    assert Priority.HIGH.queue is QueueName.HIGH
    assert [j.request_id for j in svc.dispatcher.on(QueueName.HIGH)] == [first.request_id]
    assert [j.request_id for j in svc.dispatcher.on(first.priority.queue)] == [first.request_id]
    assert len(svc.jobs.all()) == 1


def test_raised_job_overtakes_earlier_lower_priority_jobs(svc: Intake) -> None:
    svc.request("medium_one", Source.API)
    svc.clock.advance(seconds=1)
    svc.request("natgeo", Source.CRAWLER)
    svc.clock.advance(seconds=1)
    assert svc.request("natgeo", Source.FRONTEND).answer.queue_position == 1


@pytest.mark.parametrize(
    ("waiting", "asking"),
    [
        (Source.FRONTEND, Source.API),  # never lowered
        (Source.FRONTEND, Source.CRAWLER),
        (Source.API, Source.CRAWLER),
        (Source.API, Source.BULK),  # same priority: nothing to do
    ],
)
def test_lower_or_equal_request_leaves_the_priority_alone(
    svc: Intake, waiting: Source, asking: Source
) -> None:
    first = svc.request("natgeo", waiting).answer
    answer = svc.request("natgeo", asking).answer
    assert answer.priority is first.priority
    assert answer.upgraded is None
    assert len(svc.dispatcher.sent) == 1


def test_medium_request_moves_a_waiting_low_job_to_the_medium_queue(svc: Intake) -> None:
    first = svc.request("natgeo", Source.CRAWLER).answer
    answer = svc.request("natgeo", Source.API).answer
    assert answer.priority is Priority.MEDIUM
    assert answer.upgraded is True
    # A copy on the medium queue: the original may wait behind a crawler backlog.
    assert [j.request_id for j in svc.dispatcher.on(QueueName.MEDIUM)] == [first.request_id]
    assert [j.request_id for j in svc.dispatcher.on(QueueName.LOW)] == [first.request_id]
    assert svc.dispatcher.on(QueueName.HIGH) == []


def test_high_request_raises_a_job_awaiting_retry_without_sending(svc: Intake) -> None:
    job = svc.existing_job(
        source=Source.CRAWLER,
        status=JobStatus.FAILED,
        attempts=1,
        error_kind=ErrorKind.TRANSIENT,
        error_message="HTTP 429",
        next_retry_at=svc.now + timedelta(minutes=2),
    )
    answer = svc.request("natgeo", Source.FRONTEND).answer
    assert answer.skip_reason == "already_in_queue"
    assert answer.upgraded is True
    assert answer.priority is Priority.HIGH
    assert answer.request_id == job.request_id
    # The sweeper's retry sends it, on the high queue now; nothing is sent here.
    assert svc.dispatcher.sent == []
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH
    assert stored.next_retry_at == job.next_retry_at


def test_a_failed_position_count_still_answers_queued(svc: Intake) -> None:
    def broken(job: object, cap: int) -> object:
        raise StorageUnavailable("GSI throttled")

    svc.jobs.position_facts = broken  # type: ignore[method-assign,assignment]
    answer = svc.request().answer
    assert answer.queued is True
    assert answer.profile_type == "new"
    assert answer.queue_position is None
    assert answer.estimated_time == "more than 15 minutes"
    assert len(svc.jobs.all()) == 1


def test_processing_job_is_not_raised(svc: Intake) -> None:
    job = svc.existing_job(source=Source.CRAWLER, status=JobStatus.PROCESSING, attempts=1)
    decision = svc.request("natgeo", Source.FRONTEND)
    assert decision.outcome is Outcome.ALREADY_IN_QUEUE
    assert decision.answer.priority is Priority.LOW
    assert decision.answer.upgraded is None
    assert svc.jobs.get("natgeo") == job
    assert svc.dispatcher.sent == []


def test_job_claimed_between_the_refusal_and_the_raise_is_not_raised(svc: Intake) -> None:
    job = svc.existing_job(source=Source.CRAWLER)

    def worker_claims(_: str) -> None:
        svc.jobs.put(job.model_copy(update={"status": JobStatus.PROCESSING, "attempts": 1}))

    svc.jobs.after_read = worker_claims
    decision = svc.request("natgeo", Source.FRONTEND)
    assert decision.outcome is Outcome.ALREADY_IN_QUEUE
    assert decision.answer.upgraded is None
    assert decision.answer.priority is Priority.LOW
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.priority is Priority.LOW
    assert svc.dispatcher.sent == []


def _interleave(svc: Intake, source: Source) -> list[Decision]:
    """Run a whole request for `source` right after the next read takes its snapshot,
    before the request that read goes on: two Lambdas racing."""
    other: list[Decision] = []

    def run_other(_: str) -> None:
        if not other:
            svc.jobs.after_read = None
            other.append(svc.request("natgeo", source))

    svc.jobs.after_read = run_other
    return other


# A request acts on the snapshot its read returned. The raise must be conditional on
# the job still being as read, or a request holding an old snapshot raises (and
# dispatches) again, or lowers a raised job; losing, it reads again and decides anew.


def test_stale_snapshot_does_not_raise_twice(svc: Intake) -> None:
    svc.existing_job(source=Source.CRAWLER)
    other = _interleave(svc, Source.FRONTEND)
    mine = svc.request("natgeo", Source.FRONTEND)
    assert other[0].answer.upgraded is True
    assert mine.answer.request_id == other[0].answer.request_id
    assert mine.answer.upgraded is None
    assert len(svc.dispatcher.on(QueueName.HIGH)) == 1


def test_late_medium_raise_does_not_lower_a_high_job(svc: Intake) -> None:
    svc.existing_job(source=Source.CRAWLER)
    other = _interleave(svc, Source.FRONTEND)
    late = svc.request("natgeo", Source.API)  # saw LOW; the HIGH raise lands first
    assert other[0].answer.priority is Priority.HIGH
    assert late.answer.upgraded is None
    assert svc.dispatcher.on(QueueName.LOW) == []  # no MEDIUM re-send
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH


def test_raise_failing_to_dispatch_still_answers_upgraded(svc: Intake) -> None:
    first = svc.request("natgeo", Source.CRAWLER).answer
    svc.dispatcher.fail = True
    answer = svc.request("natgeo", Source.FRONTEND).answer
    # The original message still waits on the low queue: nothing is lost.
    assert answer.upgraded is True
    assert answer.request_id == first.request_id
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.priority is Priority.HIGH


# -- failures -------------------------------------------------------------------------------


def test_dispatch_failure_answers_queued_in_fallback_mode_and_keeps_the_job(svc: Intake) -> None:
    svc.dispatcher.fail = True
    answer = svc.request().answer
    assert answer.queued is True
    assert answer.fallback_mode is True
    assert answer.status == "pending"
    assert answer.profile_type == "new"
    assert answer.queue_position == 1
    stored = svc.jobs.get("natgeo")
    assert stored is not None
    assert stored.request_id == answer.request_id
    assert stored.status is JobStatus.PENDING
    assert svc.dispatcher.sent == []
    assert [j.request_id for j in svc.dispatcher.failed] == [answer.request_id]


# Intake and store must agree at the window's edge: "recent" is age <= window, and
# the store replaces a COMPLETED job only when completed_at < now - window. (They
# once disagreed at age == window: neither held, and the request ended in a 503.)
def test_completed_exactly_at_the_window_edge_still_gets_an_answer(svc: Intake) -> None:
    svc.existing_job(status=JobStatus.COMPLETED, completed_at=svc.now - RECENT_COMPLETION_WINDOW)
    decision = svc.request()
    assert decision.answer.skip_reason == "recently_completed"
    svc.clock.advance(milliseconds=1)
    assert svc.request().answer.profile_type == "new"


# -- concurrency on the fakes ----------------------------------------------------------------


def test_concurrent_requests_on_the_fakes_make_one_job() -> None:
    svc = Intake()
    threads = 32
    barrier = threading.Barrier(threads)
    answers: list[intake.IntakeAnswer] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        barrier.wait()
        source = (Source.CRAWLER, Source.API, Source.FRONTEND)[i % 3]
        answer = svc.request("natgeo", source).answer
        with lock:
            answers.append(answer)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    assert len(answers) == threads
    assert len(svc.jobs.all()) == 1
    assert len({a.request_id for a in answers}) == 1
    assert sum(a.skip_reason is None for a in answers) == 1
    # One first send, plus at most one raise per step up (LOW -> MEDIUM -> HIGH).
    assert 1 <= len(svc.dispatcher.sent) <= 3
    assert {j.request_id for _, j in svc.dispatcher.sent} == {answers[0].request_id}


# -- the username rule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("@NatGeo", "natgeo"),
        ("NatGeo", "natgeo"),
        ("natgeo", "natgeo"),
        ("nat.geo_2024", "nat.geo_2024"),
        ("_", "_"),
        ("a" * 30, "a" * 30),
        ("@" + "B" * 30, "b" * 30),  # the @ is not counted
    ],
)
def test_username_is_normalised(raw: str, expected: str) -> None:
    assert normalise_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (None, "required"),
        ("", "required"),
        ("   ", "required"),
        ("@", "required"),
        ("a" * 31, "too long"),
        ("@" + "a" * 31, "too long"),
        ("nat geo", "invalid characters"),
        (" natgeo", "invalid characters"),
        ("natgeo ", "invalid characters"),
        ("nat\tgeo", "invalid characters"),
        ("naïve", "invalid characters"),
        ("nat😀geo", "invalid characters"),
        ("ｎａｔｇｅｏ", "invalid characters"),  # fullwidth letters  # noqa: RUF001
        ("..", "'.'"),
        ("a..b", "'.'"),
        (".natgeo", "'.'"),
        ("natgeo.", "'.'"),
        ('"quoted"', "invalid characters"),
        ("'", "invalid characters"),
        ("nat/geo", "invalid characters"),
        ("nat-geo", "invalid characters"),
        ("@@natgeo", "invalid characters"),
        ("nat@geo", "invalid characters"),
        ("\nnatgeo", "invalid characters"),
        ("nat\ngeo", "invalid characters"),
    ],
)
def test_invalid_usernames_are_refused_with_a_reason(raw: str | None, detail: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_username(raw)
    assert detail in str(refused.value)


# '^...$' with re.match lets a trailing newline through ('$' matches before it).
@pytest.mark.parametrize("raw", ["natgeo\n", "@NatGeo\n", "natgeo\r\n", "natgeo\x00"])
def test_trailing_newline_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_username(raw)


ALLOWED = re.compile(r"[a-z0-9._]{1,30}")


@given(st.text(max_size=40))
@example("natgeo\n")
@example("@NatGeo")
def test_anything_accepted_is_canonical_and_normalising_is_idempotent(raw: str) -> None:
    try:
        name = normalise_username(raw)
    except InvalidInput:
        return
    assert ALLOWED.fullmatch(name)
    assert ".." not in name
    assert not name.startswith(".")
    assert not name.endswith(".")
    assert normalise_username(name) == name
    assert normalise_username("@" + name) == name


@st.composite
def instagram_names(draw: st.DrawFn) -> str:
    """Allowed characters, mixed case, no '..', not starting or ending in '.'."""
    core = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=1))
    body = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", max_size=29))
    name = (core + body)[:30]
    while ".." in name:
        name = name.replace("..", "._")
    if name.endswith("."):
        name = name[:-1] + "_"
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips, strict=True))


@given(instagram_names(), st.booleans())
@example("A" * 30, True)
@example("_", False)
@example("a.b.c", True)
def test_every_valid_name_is_accepted_with_or_without_at(name: str, at: bool) -> None:
    raw = ("@" if at else "") + name
    assert normalise_username(raw) == name.lower()
