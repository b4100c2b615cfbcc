"""Reels as stored and served: one Content item per (username, shortcode)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from viralspot.analytics import ScoredReel

MAX_PAGE = 100
DEFAULT_PAGE = 24


class PostSort(StrEnum):
    POPULAR = "popular"  # outlier score, then views
    RECENT = "recent"
    OLDEST = "oldest"


class Post(ScoredReel):
    """A stored reel, as the posts route returns it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    username: str


class PostsPage(BaseModel):
    username: str
    sort: PostSort
    posts: list[Post]
    count: int
    next_cursor: str | None = None
