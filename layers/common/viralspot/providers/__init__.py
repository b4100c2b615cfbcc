"""What a provider answers, in our field names (the port is `viralspot.ports.Provider`).

Two adapters implement the port: `sample` (deterministic synthetic data, offline) and
`rapidapi` (the Instagram Scraper Stable API the original system used).
"""

from __future__ import annotations

from datetime import datetime

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
