"""The Profiles item: primary (fully analysed) or secondary (a light record found
in someone's similar-profiles list)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict

from viralspot.jobs import Analysis
from viralspot.providers import ProviderProfile


class Tier(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


class Profile(ProviderProfile):
    """What the provider said of the profile, and what we made of it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    tier: Tier
    content_stats: dict[str, Any] | None = None
    engagement_metrics: dict[str, Any] | None = None
    similar_usernames: list[str] = []
    discovered_from: str | None = None
    data_source: str | None = None
    # How deep the stored analysis went (a crawled profile has fewer reels); None in
    # records written before depth was recorded, which were full analyses.
    analysis: Analysis | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_scraped_at: datetime | None = None

    @property
    def crawled_only(self) -> bool:
        """A primary analysed only at crawl depth: a person's request deepens it."""
        return self.tier is Tier.PRIMARY and self.analysis is Analysis.CRAWL

    def is_stale(self, now: datetime, max_age: timedelta) -> bool:
        """A primary whose analysis is older than `max_age` is worth analysing again."""
        return self.tier is Tier.PRIMARY and (
            self.last_scraped_at is None or now - self.last_scraped_at > max_age
        )
