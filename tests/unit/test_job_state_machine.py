"""The Jobs lifecycle as a state machine: the real services on in-memory fakes.

`viralspot.intake.request_profile`, `viralspot.pipeline.Worker` and
`viralspot.sweeper.sweep` run unchanged over the fakes of tests/fakes (which keep
the DynamoDB adapters' conditions), an SQS-like queue with at-least-once delivery
and a dead-letter queue, a scripted provider and a clock that only the rules move.
Hypothesis interleaves requests, deliveries (success, transient and permanent
provider failures, a worker dying at three points, a worker stalling past its
lease while another copy of the message runs), duplicate deliveries of old
messages, clock jumps from a second to eight days, and sweeps, with SQS sends
failing now and then.

After every step:
- at most one live claim per username, whatever the request_id;
- attempts never above max_attempts (and nothing PENDING or awaiting a retry that
  could never be claimed again);
- no promise broken: a `queued: true` answer's job is still the username's job
  until it has COMPLETED or FAILED for good, and only then replaced;
- a COMPLETED job's profile is stored as primary, with its reels.
And at the end (and whenever `settle` runs): once time passes and the sweeper and
the queue are left to work, every job is COMPLETED or FAILED for good.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from devstack.template import Stack
from tests.fakes.memory import SteppableClock
from tests.fakes.memory_worker import MemoryContent, MemoryProfileStore, MemoryWorkerJobStore
from viralspot import intake, sweeper
from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.analytics import ScoredReel
from viralspot.clock import to_iso
from viralspot.errors import (
    DispatchFailed,
    ErrorKind,
    ProfileNotFound,
    ProviderTransient,
)
from viralspot.feed import FeedProfile
from viralspot.intake import IntakePolicy
from viralspot.jobs import (
    Job,
    JobMessage,
    JobStatus,
    Priority,
    Source,
    SweepKind,
    completed,
    failed,
    new_job,
    raised_for,
)
from viralspot.pipeline import PipelinePolicy, Result, Worker
from viralspot.ports import IntakeBlocked, ProfileGuard
from viralspot.profiles import Profile, Tier
from viralspot.providers import ProviderProfile, ProviderReel

USERNAMES = ("alpha", "beta", "gamma")
# Two, not the template's three: the machine reaches "attempts used up" in fewer
# steps, and nothing in the rules depends on the number.
MAX_ATTEMPTS = 2
LEASE = timedelta(seconds=240)
REELS = 3
SQS_MAX_RECEIVES = 3  # the template's maxReceiveCount: then the dead-letter queue
OUTCOMES = (
    "success",
    "transient",
    "permanent",
    "crash_fetch",  # the worker dies while calling the provider
    "crash_content",  # ... after writing the reels
    "crash_primary",  # ... after writing the profile, before completing the job
    "stall",  # hangs past its lease; another copy of the message runs meanwhile
)
CLOCK_STEPS = (1, 30, 61, 239, 241, 301, 900, 1801, 3600, 4 * 3600, 8 * 86400)


class Crash(BaseException):  # a death, not an error: no `except Exception` stops it
    """The worker's process dies here (timeout, out of memory): nothing after runs."""


def _similar_of(username: str) -> str:
    return USERNAMES[(USERNAMES.index(username) + 1) % len(USERNAMES)]


class ScriptedProvider:
    """Fails or succeeds as the next scripted step says; crawls one similar profile."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: list[str] = []
        self.on_stall: Callable[[str], None] = lambda _: None

    def fetch_profile(self, username: str) -> ProviderProfile:
        step = self.script.pop(0) if self.script else "success"
        if step == "transient":
            raise ProviderTransient("429 rate limited (scripted)")
        if step == "permanent":
            raise ProfileNotFound(f"{username} does not exist (scripted)")
        if step == "crash_fetch":
            raise Crash("died while fetching")
        if step == "stall":
            self.on_stall(username)
        return ProviderProfile(username=username, full_name=username.title(), followers_count=1000)

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]:
        base = SteppableClock()()
        return [
            ProviderReel(
                shortcode=f"{username}-{i}",
                taken_at=base - timedelta(days=i),
                view_count=1000 * (i + 1),
                like_count=10,
                comment_count=1,
                url=f"https://www.instagram.com/reel/{username}-{i}/",
            )
            for i in range(REELS)
        ]

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]:
        return [ProviderProfile(username=_similar_of(username))][:limit]


@dataclass
class Faults:
    crash_at: str | None = None


class CrashingContent(MemoryContent):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def put_reels(
        self,
        username: str,
        reels: Sequence[ScoredReel],
        data_source: str,
        *,
        profile: FeedProfile,
    ) -> None:
        super().put_reels(username, reels, data_source, profile=profile)
        if self.faults.crash_at == "crash_content":
            self.faults.crash_at = None
            raise Crash("died after writing the reels")


class CrashingProfiles(MemoryProfileStore):
    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def put_primary(self, profile: Profile) -> None:
        super().put_primary(profile)
        if self.faults.crash_at == "crash_primary":
            self.faults.crash_at = None
            raise Crash("died after writing the profile")


class WatchedJobStore(MemoryWorkerJobStore):
    """Records live claims and replaced jobs, to check the invariants against."""

    def __init__(self, profiles: MemoryProfileStore, clock: SteppableClock) -> None:
        super().__init__(profiles)
        self.clock = clock
        self.live: dict[str, Job] = {}  # username -> the claim its worker still holds
        self.replaced: list[Job] = []
        self.violations: list[str] = []

    def create(
        self, job: Job, guard: ProfileGuard, *, recent_before: datetime, stale_before: datetime
    ) -> None:
        before = self.get(job.username)
        super().create(job, guard, recent_before=recent_before, stale_before=stale_before)
        if before is not None:
            self.replaced.append(before)
            if not (before.status is JobStatus.COMPLETED or before.failed_for_good):
                self.violations.append(f"replaced an unfinished job: {before}")

    def claim(
        self,
        username: str,
        request_id: str,
        *,
        now: datetime,
        lease_until: datetime,
        max_attempts: int,
        lease_id: str,
    ) -> Job | None:
        claimed = super().claim(
            username,
            request_id,
            now=now,
            lease_until=lease_until,
            max_attempts=max_attempts,
            lease_id=lease_id,
        )
        if claimed is not None:
            held = self.live.get(username)
            if held is not None and held.lease_until is not None and held.lease_until >= now:
                self.violations.append(
                    f"{username}: claimed {request_id} while {held.request_id} holds a live lease"
                )
            self.live[username] = claimed
        return claimed

    def finish(self, claimed: Job, outcome: Job) -> bool:
        done = super().finish(claimed, outcome)
        if done and self.live.get(claimed.username) == claimed:
            del self.live[claimed.username]
        return done


@dataclass
class Message:
    body: str
    receives: int = 0


class Queue:
    """Both SQS queues as one bag (order is not guaranteed anyway): a `Dispatcher`."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.dead: list[Message] = []
        self.fail = False
        self.sent = 0

    def dispatch(self, job: Job) -> None:
        if self.fail:
            raise DispatchFailed(f"send {job.username}: injected outage")
        self.messages.append(Message(JobMessage.of(job).model_dump_json()))
        self.sent += 1


class JobLifecycle(RuleBasedStateMachine):
    @initialize()
    def build(self) -> None:
        self.clock = SteppableClock()
        self.faults = Faults()
        self.profiles = CrashingProfiles(self.faults)
        self.content = CrashingContent(self.faults)
        self.jobs = WatchedJobStore(self.profiles, self.clock)
        self.queue = Queue()
        self.provider = ScriptedProvider()
        self.provider.on_stall = self._meanwhile
        self.intake_policy = IntakePolicy(stale_after=timedelta(days=7))
        self.sweep_policy = sweeper.SweepPolicy(
            max_attempts=MAX_ATTEMPTS, page_size=2, min_time_left_ms=0
        )
        self.worker = Worker(
            jobs=self.jobs,
            profiles=self.profiles,
            content=self.content,
            provider=self.provider,
            discover=self._discover,
            policy=PipelinePolicy(
                lease=LEASE, max_attempts=MAX_ATTEMPTS, discovery_max_depth=1, discovery_fan_out=1
            ),
            clock=self.clock,
        )
        self.promised: list[tuple[str, str]] = []
        self.delivered: list[str] = []
        self.results: list[Result] = []
        self.stalled_over: Result | None = None

    # -- wiring, as bootstrap does it ------------------------------------------------

    def _discover(self, username: str, depth: int, parent: str) -> None:
        intake.request_profile(
            username,
            Source.CRAWLER,
            jobs=self.jobs,
            dispatcher=self.queue,
            policy=self.intake_policy,
            clock=self.clock,
            depth=depth,
            discovered_from=parent,
            expect=ProfileGuard.SECONDARY,
            with_position=False,
        )

    def _meanwhile(self, username: str) -> None:
        """While one worker hangs: its lease runs out and another copy of its message
        is delivered and processed to the end."""
        self.clock.advance(LEASE + timedelta(seconds=1))
        body = self.delivered[-1]
        self.stalled_over = self._process(Message(body), "success")

    def _process(self, message: Message, outcome: str) -> Result | None:
        """One delivery, as the SQS event source and the worker's handler treat it."""
        self.delivered.append(message.body)
        self.faults.crash_at = outcome if outcome.startswith("crash_") else None
        self.provider.script = [] if outcome == "success" else [outcome]
        before = JobMessage.model_validate_json(message.body)
        self.stalled_over = None
        try:
            result = self.worker.process(message.body)
        except Crash:
            # The record failed: SQS makes it visible again, until maxReceiveCount.
            message.receives += 1
            target = (
                self.queue.dead if message.receives >= SQS_MAX_RECEIVES else self.queue.messages
            )
            target.append(message)
            return None
        finally:
            self.faults.crash_at = None
            self.provider.script = []
        self.results.append(result)
        if outcome == "stall" and self.stalled_over is Result.COMPLETED:
            # Another attempt took the job and completed it: this one must not finish it.
            assert result is Result.LOST_CLAIM, result
        if currently_in_test_context():  # the plain tests below drive the machine too
            event(f"{outcome} -> {result.value}")
        job = self.jobs.get(before.username)
        expected = {
            Result.COMPLETED: lambda j: j.status is JobStatus.COMPLETED,
            Result.RETRY_SCHEDULED: lambda j: j.awaiting_retry,
            Result.FAILED: lambda j: j.failed_for_good,
        }
        if result in expected and outcome != "stall":
            assert job is not None
            assert expected[result](job), (result, job)
        if result is Result.COMPLETED and outcome == "success":
            assert job is not None
            assert job.request_id == before.request_id
        return result

    # -- rules -----------------------------------------------------------------------

    @rule(
        username=st.sampled_from(USERNAMES),
        source=st.sampled_from(Source),
        send_fails=st.booleans(),
    )
    def request(self, username: str, source: Source, send_fails: bool) -> None:
        self.queue.fail = send_fails
        try:
            answer = intake.request_profile(
                username,
                source,
                jobs=self.jobs,
                dispatcher=self.queue,
                policy=self.intake_policy,
                clock=self.clock,
            ).answer
        finally:
            self.queue.fail = False
        job = self.jobs.get(username)
        if answer.queued:
            assert answer.request_id
            assert job is not None
            assert job.request_id == answer.request_id
            assert job.is_active or job.awaiting_retry
            self.promised.append((username, answer.request_id))
        elif answer.skip_reason == "failed":
            # Crawling leaves a person's failed job as the person's answer.
            assert source is Source.CRAWLER
            assert job is not None
            assert job.failed_for_good
            assert job.source is not Source.CRAWLER
        else:
            assert answer.skip_reason in ("recently_completed", "already_processed")
            profile = self.profiles.get(username)
            assert profile is not None
            assert profile.tier is Tier.PRIMARY

    @precondition(lambda self: bool(self.queue.messages))
    @rule(pick=st.integers(min_value=0, max_value=1_000), outcome=st.sampled_from(OUTCOMES))
    def deliver(self, pick: int, outcome: str) -> None:
        message = self.queue.messages.pop(pick % len(self.queue.messages))
        self._process(message, outcome)

    @precondition(lambda self: bool(self.queue.messages))
    @rule(outcome=st.sampled_from(OUTCOMES))
    def deliver_oldest(self, outcome: str) -> None:
        """Standard queues are roughly first in, first out (and this doubles the share of
        fresh deliveries against duplicates, which are always possible)."""
        self._process(self.queue.messages.pop(0), outcome)

    @precondition(lambda self: bool(self.delivered))
    @rule(pick=st.integers(min_value=0, max_value=1_000), outcome=st.sampled_from(OUTCOMES))
    def deliver_again(self, pick: int, outcome: str) -> None:
        """At-least-once: an old message arrives once more."""
        body = self.delivered[pick % len(self.delivered)]
        self._process(Message(body), outcome)

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(send_fails=st.booleans())
    def sweep(self, send_fails: bool) -> None:
        self.queue.fail = send_fails
        try:
            report = sweeper.sweep(
                store=self.jobs, dispatcher=self.queue, policy=self.sweep_policy, clock=self.clock
            )
        finally:
            self.queue.fail = False
        assert not report.stopped_early
        if not send_fails:
            assert report.repairs["dispatch_failed"] == 0

    @rule()
    def settle(self) -> None:
        self._drain()

    def _drain(self) -> None:
        """Leave the system alone: deliver whatever is queued, let time pass, sweep."""
        for _ in range(10):
            while self.queue.messages:
                self._process(self.queue.messages.pop(0), "success")
            if not self._unfinished():
                break
            self.clock.advance(minutes=31)  # past any lease, backoff and grace period
            sweeper.sweep(
                store=self.jobs, dispatcher=self.queue, policy=self.sweep_policy, clock=self.clock
            )
        assert not self._unfinished(), f"stuck: {self._unfinished()}"
        for username, request_id in self.promised:
            job = self.jobs.get(username)
            assert job is not None, f"{username}/{request_id} disappeared"
            assert job.status is JobStatus.COMPLETED or job.failed_for_good, job

    def _unfinished(self) -> list[Job]:
        return [
            job
            for job in self.jobs.all()
            if not (job.status is JobStatus.COMPLETED or job.failed_for_good)
        ]

    def teardown(self) -> None:
        if hasattr(self, "jobs"):
            self._drain()
            self._check_invariants()

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self._check_invariants()

    def _check_invariants(self) -> None:
        assert not self.jobs.violations, self.jobs.violations
        for job in self.jobs.all():
            assert 0 <= job.attempts <= MAX_ATTEMPTS, job
            if job.status is JobStatus.PENDING or job.awaiting_retry:
                # Otherwise no claim could ever take it again: stuck for ever.
                assert job.attempts < MAX_ATTEMPTS, job
            if job.status is JobStatus.PROCESSING:
                assert job.lease_until is not None, job
            if job.status is JobStatus.COMPLETED:
                profile = self.profiles.get(job.username)
                assert profile is not None, job
                assert profile.tier is Tier.PRIMARY, (job, profile)
                assert len(self.content.reels_of(job.username)) == REELS, job
        current = {job.username: job.request_id for job in self.jobs.all()}
        finished = {
            (job.username, job.request_id)
            for job in self.jobs.replaced
            if job.status is JobStatus.COMPLETED or job.failed_for_good
        }
        for username, request_id in self.promised:
            assert current.get(username) == request_id or (username, request_id) in finished, (
                f"promise {username}/{request_id} broken: job is {self.jobs.get(username)}"
            )


JobLifecycle.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_job_lifecycle = JobLifecycle.TestCase


# ---------------------------------------------------------------- the harness itself


def test_stalled_worker_loses_its_claim_to_the_redelivered_copy() -> None:
    """The `stall` outcome really produces two workers on one job, and the first one
    cannot complete it (otherwise the machine would test less than it claims)."""
    machine = JobLifecycle()
    machine.build()
    machine.request("alpha", Source.FRONTEND, send_fails=False)
    message = machine.queue.messages.pop()
    result = machine._process(message, "stall")
    assert result is Result.LOST_CLAIM
    job = machine.jobs.get("alpha")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    assert Result.COMPLETED in machine.results
    machine.teardown()


def test_crash_before_storing_leaves_the_job_processing_until_the_sweeper_retries_it() -> None:
    machine = JobLifecycle()
    machine.build()
    machine.request("alpha", Source.FRONTEND, send_fails=False)
    assert machine._process(machine.queue.messages.pop(), "crash_fetch") is None
    job = machine.jobs.get("alpha")
    assert job is not None
    assert job.status is JobStatus.PROCESSING
    assert len(machine.queue.messages) == 1  # SQS makes it visible again
    machine.deliver_again(0, "success")  # the lease is live: the copy is dropped
    assert machine.results[-1] is Result.NOT_CLAIMED
    machine.advance(241)
    machine.sweep(send_fails=False)
    job = machine.jobs.get("alpha")
    assert job is not None
    assert job.awaiting_retry
    assert job.error_message == sweeper.LEASE_EXPIRED
    machine.teardown()
    job = machine.jobs.get("alpha")
    assert job is not None
    assert job.status is JobStatus.COMPLETED


def test_a_crash_after_storing_the_profile_completes_the_job_not_fails_it() -> None:
    """The attempt died after its analysis was stored: the sweeper completes the job,
    as a new request would answer already processed (DESIGN.md "One answer")."""
    machine = JobLifecycle()
    machine.build()
    machine.request("alpha", Source.FRONTEND, send_fails=False)
    assert machine._process(machine.queue.messages.pop(), "crash_primary") is None
    machine.queue.messages.clear()
    machine.advance(241)
    machine.sweep(send_fails=False)
    job = machine.jobs.get("alpha")
    assert job is not None
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1
    machine.teardown()


@pytest.mark.parametrize("outcome", ["transient", "crash_fetch"])
def test_three_failed_attempts_fail_for_good(outcome: str) -> None:
    machine = JobLifecycle()
    machine.build()
    machine.request("beta", Source.API, send_fails=False)
    for _ in range(MAX_ATTEMPTS):
        message = machine.queue.messages.pop() if machine.queue.messages else None
        if message is None:
            machine.advance(1801)
            machine.sweep(send_fails=False)
            message = machine.queue.messages.pop()
        machine._process(message, outcome)
        if outcome == "crash_fetch":
            machine.queue.messages.clear()  # the copies arrive while the lease is live
            machine.advance(241)
            machine.sweep(send_fails=False)
    job = machine.jobs.get("beta")
    assert job is not None
    assert job.attempts == MAX_ATTEMPTS
    assert job.failed_for_good
    machine.teardown()


# ---------------------------------------------------------------- the fakes are faithful


def _dump(job: Job | None) -> dict[str, object] | None:
    return None if job is None else job.model_dump(mode="json")


def _apply(store: Any, op: str, args: dict[str, Any]) -> object:
    """One call of the Jobs port, with its answer in a comparable form."""
    if op == "create":
        try:
            store.create(
                args["job"],
                ProfileGuard.ABSENT,
                recent_before=args["now"] - timedelta(minutes=10),
                stale_before=args["now"] - timedelta(days=7),
            )
        except IntakeBlocked as blocked:
            return ("blocked", _dump(blocked.job))
        return "created"
    if op == "claim":
        now = args["now"]
        claimed = store.claim(
            args["name"],
            args["request_id"],
            now=now,
            lease_until=now + LEASE,
            max_attempts=MAX_ATTEMPTS,
            lease_id=args["lease_id"],
        )
        return _dump(claimed)
    if op == "finish":
        return store.finish(args["claimed"], args["outcome"])
    if op == "replace":
        return store.replace(args["expected"], args["new"])
    if op == "mark":
        return _dump(store.mark_dispatched(args["job"], args["now"]))
    if op == "raise":
        return store.raise_priority(
            args["job"], raised_for(args["job"], Source.FRONTEND, args["now"])
        )
    due = store.due(args["kind"], args["priority"], args["before"], page=2, after=args["after"])
    # In order: both give (sweep_at, username) order, which resuming after a position needs.
    return [job.username for job in due]


@pytest.mark.server
def test_fake_job_store_agrees_with_the_dynamodb_adapter(stack: Stack) -> None:
    """The machine above is only as good as its fake: a random walk of intake, claim,
    finish, replace and sweeper queries, applied to MemoryWorkerJobStore and to
    DynamoJobStore on the emulator, must give the same answers and leave the same items."""
    dynamo = DynamoJobStore(stack.refs["JobsTable"], stack.refs["ProfilesTable"])
    fake = MemoryWorkerJobStore()
    rng = random.Random(20261128)
    positions = random.Random(10)
    clock = SteppableClock()
    names = ("u0", "u1", "u2")
    claims: dict[str, Job] = {}
    seen: list[Job] = []  # versions read earlier: stale ones must fail the conditions
    ops: Counter[str] = Counter()
    outcomes: Counter[tuple[str, bool]] = Counter()
    for step in range(300):
        now = clock()
        name = rng.choice(names)
        op = rng.choice(
            ("create", "claim", "claim", "finish", "replace", "due", "mark", "raise", "advance")
        )
        args: dict[str, Any] = {"now": now, "name": name}
        if op == "create":
            args["job"] = new_job(name, rng.choice(list(Source)), now)
        elif op == "claim":
            current = fake.get(name)
            fresh = current is not None and rng.random() < 0.8
            args["request_id"] = current.request_id if current and fresh else "0123456789ab"
            args["lease_id"] = f"lease{step}"
        elif op == "finish" and name in claims:
            claimed = args["claimed"] = claims[name]
            args["outcome"] = (
                completed(claimed, now)
                if rng.random() < 0.5
                else failed(
                    claimed,
                    now,
                    error="boom",
                    kind=ErrorKind.TRANSIENT,
                    max_attempts=MAX_ATTEMPTS,
                    backoff_cap_minutes=30,
                )
            )
        elif op == "replace" and seen:
            expected = args["expected"] = rng.choice(seen[-4:])
            args["new"] = expected.model_copy(
                update={"status": JobStatus.PENDING, "next_retry_at": None, "updated_at": now}
            )
        elif op == "due":
            kind = args["kind"] = rng.choice(list(SweepKind))
            args["priority"] = None if kind is SweepKind.PROCESSING else rng.choice(list(Priority))
            args["before"] = now - timedelta(seconds=rng.choice((0, 300)))
            # A generator of its own: the walk above stays the one its seed was chosen for.
            args["after"] = positions.choice(
                (None, (to_iso(now - timedelta(seconds=positions.choice((0, 300, 4000)))), name))
            )
        elif op in ("mark", "raise") and seen:
            args["job"] = rng.choice(seen[-4:])
        else:
            clock.advance(seconds=rng.choice((1, 60, 241, 1800, 4000)))
            continue
        ops[op] += 1
        answer_fake, answer_dynamo = _apply(fake, op, args), _apply(dynamo, op, args)
        assert answer_fake == answer_dynamo, f"step {step} {op} {name}"
        done = (
            answer_dynamo == "created" if op == "create" else answer_dynamo not in (None, False, [])
        )
        outcomes[op, done] += 1
        if op == "claim" and answer_dynamo is not None:
            claims[name] = Job.model_validate(answer_dynamo)
        stored = dynamo.get(name)
        assert _dump(fake.get(name)) == _dump(stored), f"step {step} {op}: {name}"
        if stored is not None and stored.updated_at is not None:
            seen.append(stored)
    for name in names:
        assert _dump(fake.get(name)) == _dump(dynamo.get(name)), name
    # The walk exercised every call, and each condition both ways.
    assert len(outcomes) == 2 * len(ops) == 14, outcomes
