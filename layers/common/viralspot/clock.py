"""Time as the domain sees it: aware UTC datetimes, stored as fixed-width ISO strings.

Fixed width matters: the Jobs indexes sort and compare these strings, so every
timestamp must order lexicographically the way it orders in time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return to_millis(datetime.now(UTC))


def to_millis(moment: datetime) -> datetime:
    """`moment` at the precision it is stored with, so a decision taken on it in
    Python agrees with the condition DynamoDB evaluates on the stored string."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def to_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
