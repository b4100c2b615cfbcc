"""The whole lifecycle on the in-memory fakes: intake, worker, sweeper and status,
wired as viralspot.bootstrap wires them (discovery through the crawler's intake),
with a clock that only the test moves. Every rule runs unchanged.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field
from datetime import timedelta

from tests.fakes.memory import RecordingDispatcher
from tests.fakes.memory_worker import MemoryContent, MemoryProfileStore, MemoryWorkerJobStore
from tests.fakes.provider import FakeProvider
from tests.support import FIXED_START, StepClock
from viralspot import intake, progress, sweeper
from viralspot.intake import Decision, IntakePolicy
from viralspot.jobs import Job, JobMessage, Source
from viralspot.lifecycle import Standing, standing
from viralspot.pipeline import PipelinePolicy, Result, Worker
from viralspot.progress import StatusAnswer
from viralspot.retry import RetryPolicy
from viralspot.sweeper import SweepPolicy, SweepReport

STALE_AFTER = timedelta(days=7)
LEASE = timedelta(seconds=240)


@dataclass
class System:
    clock: StepClock = field(default_factory=lambda: StepClock(FIXED_START))
    profiles: MemoryProfileStore = field(default_factory=MemoryProfileStore)
    content: MemoryContent = field(default_factory=MemoryContent)
    queue: RecordingDispatcher = field(default_factory=RecordingDispatcher)
    provider: FakeProvider = field(default_factory=FakeProvider)
    pipeline_policy: PipelinePolicy = field(
        default_factory=lambda: PipelinePolicy(lease=LEASE, retry=RetryPolicy(max_attempts=3))
    )
    sweep_policy: SweepPolicy = field(
        default_factory=lambda: SweepPolicy(retry=RetryPolicy(max_attempts=3), min_time_left_ms=0)
    )
    intake_policy: IntakePolicy = field(
        default_factory=lambda: IntakePolicy(stale_after=STALE_AFTER)
    )
    jobs: MemoryWorkerJobStore = field(init=False)
    # The Jobs table, if not a plain one on `profiles` (a store that injects faults).
    jobs_store: InitVar[MemoryWorkerJobStore | None] = None
    # Which of the dispatcher's messages (by index) have been handed to the worker.
    delivered: set[int] = field(default_factory=set)

    def __post_init__(self, jobs_store: MemoryWorkerJobStore | None) -> None:
        self.jobs = jobs_store if jobs_store is not None else MemoryWorkerJobStore(self.profiles)

    def request(self, username: str, source: Source = Source.FRONTEND) -> Decision:
        return intake.request_profile(
            username,
            source,
            jobs=self.jobs,
            dispatcher=self.queue,
            policy=self.intake_policy,
            clock=self.clock,
        )

    def discover(self, username: str, depth: int, parent: str) -> None:
        intake.request_profile(
            username,
            Source.CRAWLER,
            jobs=self.jobs,
            dispatcher=self.queue,
            policy=self.intake_policy,
            clock=self.clock,
            depth=depth,
            discovered_from=parent,
            with_position=False,
        )

    @property
    def worker(self) -> Worker:
        return Worker(
            jobs=self.jobs,
            profiles=self.profiles,
            content=self.content,
            provider=self.provider,
            discover=self.discover,
            policy=self.pipeline_policy,
            clock=self.clock,
        )

    def deliver(self, job: Job) -> Result:
        """The worker on the message of `job` (as it was when sent)."""
        return self.worker.process(JobMessage.of(job).model_dump_json())

    def deliver_sent(self, username: str | None = None) -> list[Result]:
        """The worker on every message sent and not yet delivered (only those naming
        `username`, if given), oldest first."""
        results = []
        index = 0
        while index < len(self.queue.sent):  # deliveries may send more (discovery)
            _, job = self.queue.sent[index]
            if index not in self.delivered and username in (None, job.username):
                self.delivered.add(index)
                results.append(self.deliver(job))
            index += 1
        return results

    def lose_sent(self) -> None:
        """Every message sent so far is gone (consumed elsewhere, or lost)."""
        self.delivered.update(range(len(self.queue.sent)))

    def sweep(self) -> SweepReport:
        return sweeper.sweep(
            store=self.jobs, dispatcher=self.queue, policy=self.sweep_policy, clock=self.clock
        )

    def status(self, username: str) -> StatusAnswer:
        return progress.get_status(
            username, jobs=self.jobs, stale_after=self.intake_policy.stale_after, clock=self.clock
        )

    def standing(self, username: str) -> Standing:
        """Where a new request for `username` stands (intake's own function)."""
        job, profile = self.jobs.read(username)
        return standing(job, profile, self.clock(), self.intake_policy.stale_after)

    def job(self, username: str) -> Job:
        found = self.jobs.get(username)
        assert found is not None, f"no job for {username}"
        return found
