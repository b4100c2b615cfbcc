"""The provider port: what the pipeline needs from an Instagram data source.

Two adapters implement it: `sample` (deterministic synthetic data, offline) and
`rapidapi` (the Instagram Scraper Stable API the original system used).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class ProviderProfile(BaseModel):
    """A profile as the provider describes it, in our field names."""

    model_config = ConfigDict(frozen=True)

    username: str
    full_name: str = ""
    biography: str = ""
    followers_count: int = 0
    following_count: int = 0
    posts_count: int = 0
    profile_pic_url: str | None = None
    is_verified: bool = False
    is_private: bool = False
    is_business: bool = False
    external_url: str | None = None
    category: str | None = None


class ProviderReel(BaseModel):
    """One reel as the provider describes it, in our field names."""

    model_config = ConfigDict(frozen=True)

    shortcode: str
    pk: str | None = None
    taken_at: datetime
    view_count: int = 0
    like_count: int = 0
    comment_count: int = 0
    caption: str = ""
    video_duration: float | None = None
    thumbnail_url: str | None = None
    url: str


class ProfileProvider(Protocol):
    """Raises `viralspot.errors.ProviderError` subclasses, never transport exceptions."""

    name: str

    def fetch_profile(self, username: str) -> ProviderProfile: ...

    def fetch_reels(self, username: str, target: int) -> list[ProviderReel]: ...

    def fetch_similar(self, username: str, limit: int) -> list[ProviderProfile]: ...
