"""Configuration: one validated model, read from the environment the template sets.

Read lazily (first use in a container), never at import, so tests and the local
stack can set the environment before anything looks at it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from viralspot.retry import RetryPolicy


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    profiles_table: str
    content_table: str
    jobs_table: str
    high_queue_url: str
    low_queue_url: str
    # Without a queue of its own (an older stack), MEDIUM work shares the low queue.
    medium_queue_url: str | None = None
    high_dlq_url: str | None = None
    medium_dlq_url: str | None = None
    low_dlq_url: str | None = None

    # A primary profile older than this is analysed again when someone asks for it.
    profile_stale_after_days: float = Field(default=7, gt=0)
    # The worker holds a job this long; it must outlive the worker's timeout so a
    # live worker never loses its claim, yet expire so a dead one's job is repaired.
    lease_seconds: int = Field(default=240, gt=0)
    # MAX_ATTEMPTS, BACKOFF_CAP_MINUTES, BACKOFF_BASE_SECONDS (defaults: RetryPolicy's).
    retry: RetryPolicy = RetryPolicy()
    pending_grace_minutes: float = Field(default=5, gt=0)
    sweep_max_jobs: int = Field(default=500, ge=1)
    # The queues' maxReceiveCount: a message failing on this delivery is dead-lettered.
    max_receive_count: int = Field(default=3, ge=1)
    # The queues' MessageRetentionPeriod: a job whose message is older is sent again.
    queue_retention_seconds: int = Field(default=345_600, ge=7_200)

    provider: Literal["sample", "rapidapi"] = "sample"
    rapidapi_host: str = "instagram-scraper-stable-api.p.rapidapi.com"
    rapidapi_key_parameter: str | None = None

    def queue_urls(self) -> dict[str, str]:
        """Each priority's queue by name (MEDIUM falls back to the low queue)."""
        return {
            "high": self.high_queue_url,
            "medium": self.medium_queue_url or self.low_queue_url,
            "low": self.low_queue_url,
        }

    reels_target: int = Field(default=100, ge=1, le=500)
    low_priority_reels_target: int = Field(default=30, ge=1, le=500)
    discovery_max_depth: int = Field(default=1, ge=0)
    discovery_fan_out: int = Field(default=5, ge=0)
    # Secrets Manager ids (the template passes ARNs): the admin key that earns HIGH
    # priority in bulk, and the key that signs paging cursors. API function only.
    admin_key_secret: str | None = None
    cursor_key_secret: str | None = None


# Each setting and the environment variable the template sets it with.
ENV_VARIABLES = {
    "profiles_table": "PROFILES_TABLE",
    "content_table": "CONTENT_TABLE",
    "jobs_table": "JOBS_TABLE",
    "high_queue_url": "HIGH_QUEUE_URL",
    "low_queue_url": "LOW_QUEUE_URL",
    "medium_queue_url": "MEDIUM_QUEUE_URL",
    "medium_dlq_url": "MEDIUM_DLQ_URL",
    "high_dlq_url": "HIGH_DLQ_URL",
    "low_dlq_url": "LOW_DLQ_URL",
    "profile_stale_after_days": "PROFILE_STALE_AFTER_DAYS",
    "lease_seconds": "LEASE_SECONDS",
    "pending_grace_minutes": "PENDING_GRACE_MINUTES",
    "sweep_max_jobs": "SWEEP_MAX_JOBS",
    "max_receive_count": "MAX_RECEIVE_COUNT",
    "queue_retention_seconds": "QUEUE_RETENTION_SECONDS",
    "provider": "PROVIDER",
    "rapidapi_host": "RAPIDAPI_HOST",
    "rapidapi_key_parameter": "RAPIDAPI_KEY_PARAMETER",
    "reels_target": "REELS_TARGET",
    "low_priority_reels_target": "LOW_PRIORITY_REELS_TARGET",
    "discovery_max_depth": "DISCOVERY_MAX_DEPTH",
    "discovery_fan_out": "DISCOVERY_FAN_OUT",
    "admin_key_secret": "ADMIN_KEY_SECRET",
    "cursor_key_secret": "CURSOR_KEY_SECRET",
}
RETRY_ENV_VARIABLES = {
    "max_attempts": "MAX_ATTEMPTS",
    "backoff_cap_minutes": "BACKOFF_CAP_MINUTES",
    "backoff_base_seconds": "BACKOFF_BASE_SECONDS",
}


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, object] = {
        field: env[var] for field, var in ENV_VARIABLES.items() if env.get(var)
    }
    values["retry"] = {
        field: env[var] for field, var in RETRY_ENV_VARIABLES.items() if env.get(var)
    }
    return Settings.model_validate(values)


@cache
def get_settings() -> Settings:
    """The container's settings, validated once on first use."""
    return settings_from_env()
