"""The retry rule (DESIGN.md, Rules: "Failure"): how many attempts a job gets and how long it
waits between them. One policy, read from the settings once, used by the worker
(which records a failed attempt) and the sweeper (which records an expired lease)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=3, ge=1)
    backoff_cap_minutes: int = Field(default=30, ge=1)
    # The unit of the 2^attempts backoff: a minute; lower it only for demos.
    backoff_base_seconds: float = Field(default=60, gt=0)

    def delay(self, attempts: int) -> timedelta:
        """The wait after `attempts` failed attempts: 2^attempts units, capped."""
        return min(
            timedelta(seconds=self.backoff_base_seconds * 2**attempts),
            timedelta(minutes=self.backoff_cap_minutes),
        )

    def exhausted(self, attempts: int) -> bool:
        """No claim may start another attempt."""
        return attempts >= self.max_attempts
