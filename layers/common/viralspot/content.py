"""Reels as stored and served: one Content item per (username, shortcode)."""

from __future__ import annotations

import base64
import binascii
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from viralspot.analytics import ScoredReel
from viralspot.errors import InvalidInput

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


def encode_cursor(position: dict[str, Any]) -> str:
    """Opaque to callers: the storage's resume point, URL-safe."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor: pass back the next_cursor of a previous page") from None
    if not isinstance(data, dict):
        raise InvalidInput("Invalid cursor: pass back the next_cursor of a previous page")
    return data
