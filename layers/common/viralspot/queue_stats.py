"""Queue statistics that cost the same at any backlog (DESIGN.md "Queue position", "Scale").

Counting live jobs through an index costs a read per job, so at a backlog of a
million a status poll would read megabytes. Instead every job transition adds its
delta to a counter, and readers sum a fixed number of counter shards:

- net counts per state and priority (PENDING, PROCESSING, FAILED = awaiting
  its retry): what queue-status shows, and the basis of positions beyond the cap;
- monotonic totals per priority: ENQUEUED (a job became PENDING) and DONE (a job
  left the queue for good: completed or failed for good). Two readings of DONE
  some minutes apart are the drain rate that estimated times come from.

The counters are written beside the job, never inside a hot item: each write
picks one of `STAT_SHARDS` items at random (DESIGN.md: no item written by every
request). They are estimates by design: the exact answer up to the cap comes from
the sharded index; a crash between a job's write and its counter's leaves the
count off by one, which the estimate tolerates (see docs/scale.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from viralspot.jobs import Job, JobStatus, Priority

# Shards of the counters: each takes 1/STAT_SHARDS of the counter writes.
STAT_SHARDS = 8
# Queue positions are exact up to this many jobs ahead, then estimated.
POSITION_CAP = 100

LIVE_STATES = ("PENDING", "PROCESSING", "FAILED")
# A rate measured over less than this is noise.
MIN_WINDOW = timedelta(minutes=3)
TOTALS = ("ENQUEUED", "DONE")


def live_state(job: Job | None) -> str | None:
    """The counter a job in this state is counted under; None once it has left."""
    if job is None:
        return None
    if job.status is JobStatus.PENDING:
        return "PENDING"
    if job.status is JobStatus.PROCESSING:
        return "PROCESSING"
    if job.awaiting_retry:
        return "FAILED"
    return None


def counter(state: str, priority: Priority) -> str:
    return f"{state}_{priority.value}"


def transition(before: Job | None, after: Job) -> dict[str, int]:
    """What a write from `before` to `after` adds to the counters (zeros left out)."""
    delta: Counter[str] = Counter()
    was, now = live_state(before), live_state(after)
    if before is not None and was is not None:
        delta[counter(was, before.priority)] -= 1
    if now is not None:
        delta[counter(now, after.priority)] += 1
    if now == "PENDING" and was != "PENDING":
        delta[counter("ENQUEUED", after.priority)] += 1
    if was is not None and now is None:
        delta[counter("DONE", before.priority if before else after.priority)] += 1
    return {name: n for name, n in delta.items() if n}


class QueueCounts(BaseModel):
    """The counters summed over their shards."""

    values: dict[str, int] = {}

    def get(self, state: str, priority: Priority) -> int:
        # A count that dipped below zero (a lost increment) means "none".
        return max(0, self.values.get(counter(state, priority), 0))

    def active(self, priority: Priority) -> int:
        return self.get("PENDING", priority) + self.get("PROCESSING", priority)

    def by_state(self) -> dict[str, dict[str, int]]:
        return {state: {p.value: self.get(state, p) for p in Priority} for state in LIVE_STATES}


def summed(shards: Sequence[Mapping[str, int]]) -> QueueCounts:
    total: Counter[str] = Counter()
    for shard in shards:
        total.update({k: int(v) for k, v in shard.items()})
    return QueueCounts(values=dict(total))


@dataclass(frozen=True)
class Sample:
    """The monotonic totals at one moment, kept by the sweeper: two readings some
    minutes apart give the drain and arrival rates."""

    at: datetime
    totals: dict[str, int]
    # The sample this one replaced: rates are measured against it while this one is
    # too recent to measure against.
    previous: Sample | None = None

    def against(self, now: datetime) -> Sample:
        """The sample a rate at `now` is best measured from."""
        if now - self.at < MIN_WINDOW and self.previous is not None:
            return self.previous
        return self


@dataclass(frozen=True)
class QueueFacts:
    counts: QueueCounts
    sample: Sample | None


@dataclass(frozen=True)
class PositionFacts:
    """What a queue position is computed from: the exact number of active jobs ahead
    (None when more than the cap) and the queue's counters."""

    ahead: int | None
    facts: QueueFacts


def rate_per_minute(
    name: str, now: datetime, counts: QueueCounts, sample: Sample | None
) -> float | None:
    """How fast the total `name` grew per minute since `sample`; None if unknown."""
    if sample is None:
        return None
    sample = sample.against(now)
    minutes = (now - sample.at) / timedelta(minutes=1)
    if minutes < 1:
        return None
    return max(0.0, (counts.values.get(name, 0) - sample.totals.get(name, 0)) / minutes)


def drain_per_minute(
    priority: Priority, now: datetime, counts: QueueCounts, sample: Sample | None
) -> float | None:
    return rate_per_minute(counter("DONE", priority), now, counts, sample)


def estimated_position(job: Job, now: datetime, counts: QueueCounts, sample: Sample | None) -> int:
    """Beyond the cap: 1 + the active jobs of higher priority + the job's own
    priority's active jobs less those enqueued after it (its priority's arrival rate
    times how long it has waited; the queue is served oldest first), never below the
    cap it was found beyond."""
    higher = sum(counts.active(p) for p in Priority if p.rank < job.priority.rank)
    own = counts.active(job.priority)
    arrivals = rate_per_minute(counter("ENQUEUED", job.priority), now, counts, sample) or 0.0
    behind = arrivals * max(0.0, (now - job.enqueued_at) / timedelta(minutes=1))
    ahead_own = max(0, round(own - 1 - behind))
    return max(POSITION_CAP + 1, 1 + higher + ahead_own)


@dataclass(frozen=True)
class Position:
    position: int
    estimated_time: str
    exact: bool


def position_of(job: Job, now: datetime, facts: PositionFacts) -> Position:
    """DESIGN.md "Queue position": exact up to the cap, an estimate beyond; the time
    from the job's priority's measured drain rate beyond 10."""
    counts, sample = facts.facts.counts, facts.facts.sample
    if facts.ahead is not None:
        position = 1 + facts.ahead
    else:
        position = estimated_position(job, now, counts, sample)
    # The jobs ahead leave at the combined pace of their priorities' queues.
    rates = [
        drain_per_minute(p, now, counts, sample) for p in Priority if p.rank <= job.priority.rank
    ]
    drain = None if any(r is None for r in rates) else sum(r for r in rates if r is not None)
    return Position(position, estimated_wait(position, drain), facts.ahead is not None)


def estimated_wait(position: int, drain: float | None) -> str:
    """The estimate callers see (DESIGN.md "Queue position")."""
    if position <= 1:
        return "1-2 minutes"
    if position <= 3:
        return "2-5 minutes"
    if position <= 10:
        return "5-15 minutes"
    if not drain:
        return "more than 15 minutes"
    return "about " + _duration(position / drain)


def _duration(minutes: float) -> str:
    if minutes < 60:
        return f"{max(15, math.ceil(minutes / 5) * 5)} minutes"
    hours = minutes / 60
    if hours < 48:
        n = max(1, round(hours))
        return f"{n} hour" + ("s" if n != 1 else "")
    days = round(hours / 24)
    return f"{days} days"
