"""Signed paging cursors: the one codec every listing uses (posts, the feed,
process-pending). Pure: HMAC-SHA256 over the position, with a key the wiring
supplies (bootstrap plugs in the stack's secret), so the domain never reaches
for a secret store itself.

A cursor may carry a storage position from one page to the next, so a forged one
must never reach a query. Two locks: only what this API signed decodes (with the
cursor's kind signed too, so a cursor of one listing never opens another); and
each listing checks the decoded position against the call before using it
(`feed._resume`, `operations.PendingPosition`, the posts adapter's key check).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from viralspot.edge import MAX_CURSOR_CHARS
from viralspot.errors import InvalidInput, SecretUnavailable

CursorKey = Callable[[], bytes]

TAG_BYTES = 16
DEFAULT_KIND = "posts"
_CURSOR_ERROR = "Invalid cursor: pass back the next_cursor of a previous answer unchanged"

_key: CursorKey | None = None


def use_key(key: CursorKey) -> None:
    """Where the signing key comes from: called on every encode and decode, so a
    source with its own cache (the secret through Powertools) sees a rotation."""
    global _key
    _key = key


def _signing_key() -> bytes:
    if _key is None:
        raise SecretUnavailable("no cursor key configured")
    return _key()


def _tag(kind: str, payload: bytes) -> bytes:
    message = kind.encode() + b"\x00" + payload
    return hmac.new(_signing_key(), message, hashlib.sha256).digest()[:TAG_BYTES]


def encode_cursor(position: Mapping[str, Any], *, kind: str = DEFAULT_KIND) -> str:
    """An opaque, URL-safe, signed cursor for `position` (plain JSON values)."""
    payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(_tag(kind, payload) + payload).decode().rstrip("=")


def decode_cursor(cursor: str, *, kind: str = DEFAULT_KIND) -> dict[str, Any]:
    """The position `encode_cursor` signed for `kind`; InvalidInput for anything else."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput(_CURSOR_ERROR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(_CURSOR_ERROR) from None
    tag, payload = raw[:TAG_BYTES], raw[TAG_BYTES:]
    if len(tag) < TAG_BYTES or not hmac.compare_digest(tag, _tag(kind, payload)):
        raise InvalidInput(_CURSOR_ERROR)
    position = json.loads(payload)  # signed by us: it is what encode_cursor wrote
    if not isinstance(position, dict):
        raise InvalidInput(_CURSOR_ERROR)
    return position
