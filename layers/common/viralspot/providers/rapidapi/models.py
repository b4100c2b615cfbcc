"""The provider's JSON, as pydantic models that map it into the port's models.

Lenient on purpose: the provider sends null, floats or numeric strings for counts,
drops fields, and nests reels differently from one answer to the next. A field we
cannot read takes its default; only what a record cannot exist without (a profile's
username, a reel's code and time) makes it invalid, and the caller skips it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from viralspot.providers import ProviderProfile, ProviderReel


def _count(value: Any) -> int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return 0
    if isinstance(value, float):
        return max(int(value), 0) if math.isfinite(value) else 0
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    return 0


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    return _text(value) or None


def _flag(value: Any) -> bool:
    return value is True


def _identifier(value: Any) -> str | None:
    return None if value is None or isinstance(value, bool) else str(value)


def _epoch(value: Any) -> datetime:
    """Seconds since the epoch (a number or numeric text), as UTC; ValueError otherwise."""
    if isinstance(value, str):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
        raise ValueError("not an epoch")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError("epoch out of range") from exc


def _or_empty(value: Any) -> Any:
    return value or []


def _token(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# A non-negative count: anything unreadable (null, text, NaN, a bool) counts 0.
Count = Annotated[int, BeforeValidator(_count)]
# A finite number of seconds, or absent.
Seconds = Annotated[float | None, BeforeValidator(_seconds)]
# Stripped text; anything that is not text is "".
Text = Annotated[str, BeforeValidator(_text)]
# Stripped text, absent when empty.
OptionalText = Annotated[str | None, BeforeValidator(_optional_text)]
# Only a JSON `true` is true.
Flag = Annotated[bool, BeforeValidator(_flag)]
# An identifier the provider sends as a number or as text.
Identifier = Annotated[str | None, BeforeValidator(_identifier)]
Epoch = Annotated[datetime, BeforeValidator(_epoch)]


class _Answer(BaseModel):
    """A JSON object of the provider's: unknown keys ignored, null meaning absent
    (so a null takes the field's default, and an alias after it is tried)."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return data

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        data = cls._unwrap(data)
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class Account(_Answer):
    """A profile, as the profile endpoint describes it."""

    username: Text = Field(min_length=1)
    full_name: Text = ""
    biography: Text = ""
    followers_count: Count = Field(0, validation_alias="follower_count")
    following_count: Count = 0
    posts_count: Count = Field(0, validation_alias="media_count")
    profile_pic_url: OptionalText = None
    is_verified: Flag = False
    is_private: Flag = False
    is_business: Flag = False
    external_url: OptionalText = None
    category: OptionalText = None

    def to_profile(self, username: str | None = None) -> ProviderProfile:
        """The port's profile; `username` replaces the provider's spelling."""
        fields = self.model_dump()
        if username is not None:
            fields["username"] = username
        return ProviderProfile(**fields)


class SimilarAccount(Account):
    """One entry of a similar-accounts list."""

    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # Some variants wrap each account as {"user": {...}}.
        if isinstance(data, dict) and isinstance(data.get("user"), dict):
            return data["user"]
        return data


class Reel(_Answer):
    """One item of a reels page, in any of the nestings the provider uses."""

    shortcode: Text = Field(min_length=1, validation_alias="code")
    taken_at: Epoch
    pk: Identifier = None
    view_count: Count = Field(
        0, validation_alias=AliasChoices("play_count", "view_count", "ig_play_count")
    )
    like_count: Count = 0
    comment_count: Count = 0
    caption: Text = Field("", validation_alias=AliasPath("caption", "text"))
    video_duration: Seconds = None
    thumbnail_url: OptionalText = Field(
        None, validation_alias=AliasPath("image_versions2", "candidates", 0, "url")
    )

    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        # {"node": {"media": {...}}}, {"node": {...}}, {"media": {...}} or the media itself.
        if not isinstance(data, dict):
            return data
        node = data.get("node", data)
        return node.get("media", node) if isinstance(node, dict) else node

    def to_reel(self) -> ProviderReel:
        return ProviderReel(
            **self.model_dump(), url=f"https://www.instagram.com/reel/{self.shortcode}/"
        )


class ReelsPage(BaseModel):
    """One page of reels. `reels` is required: an answer without it is malformed."""

    model_config = ConfigDict(frozen=True)

    # `"reels": null` is how an account without reels sometimes looks.
    reels: Annotated[list[Any], BeforeValidator(_or_empty)]
    # An empty or missing token is the last page.
    pagination_token: Annotated[str | None, BeforeValidator(_token)] = None


# Where the similar-accounts endpoint puts its list, by answer variant.
SIMILAR_LIST_KEYS: Final = ("data", "users", "similar_accounts", "accounts")


def similar_entries(payload: Any) -> list[Any] | None:
    """The list of a similar-accounts answer, or None when it has none."""
    if isinstance(payload, list):
        return payload
    if not isinstance(payload, dict):
        return None
    for key in SIMILAR_LIST_KEYS:
        value = payload.get(key)
        if isinstance(value, list):
            return value
        # Some variants wrap once more: {"data": {"users": [...]}}.
        if isinstance(value, dict):
            nested = similar_entries(value)
            if nested is not None:
                return nested
    return None
