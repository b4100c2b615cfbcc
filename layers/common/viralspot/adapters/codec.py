"""Plain Python values <-> DynamoDB attribute values, and DynamoDB keys <-> paging
cursors.

DynamoDB has one number type; the low-level client wants Decimal, pydantic wants
int or float. Conversion happens here and nowhere else. So does every paging
cursor: `encode_cursor` / `decode_cursor` / `start_key` are the one way a listing
turns a LastEvaluatedKey into a cursor and back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from viralspot.adapters.secrets import secret_string
from viralspot.config import get_settings
from viralspot.edge import MAX_CURSOR_CHARS
from viralspot.errors import InvalidInput, SecretUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A Python mapping as a DynamoDB item; None values are left out (sparse indexes)."""
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def value(v: Any) -> Any:
    return _serializer.serialize(_to_dynamo(v))


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


# ------------------------------------------------------------------ paging cursors
#
# A cursor carries a DynamoDB key from one page to the next, so a forged one would
# reach DynamoDB as an ExclusiveStartKey. Two locks: the cursor is signed (HMAC-SHA256
# with a key the stack generates into Secrets Manager), so only what this API issued
# decodes; and the key inside is checked attribute by attribute against the index's
# key schema and the caller's listing before any query uses it.

CURSOR_TAG_BYTES = 16
DEFAULT_CURSOR_KIND = "posts"
_CURSOR_ERROR = "Invalid cursor: pass back the next_cursor of a previous page unchanged"


def _cursor_key() -> bytes:
    secret = get_settings().cursor_key_secret
    if not secret:
        raise SecretUnavailable("CURSOR_KEY_SECRET is not configured")
    return secret_string(secret).encode()


def _tag(kind: str, payload: bytes) -> bytes:
    # The kind is signed too: a cursor of one listing never opens another.
    message = kind.encode() + b"\x00" + payload
    return hmac.new(_cursor_key(), message, hashlib.sha256).digest()[:CURSOR_TAG_BYTES]


def encode_cursor(position: Mapping[str, Any], *, kind: str = DEFAULT_CURSOR_KIND) -> str:
    """An opaque, URL-safe, signed cursor for `position` (plain JSON values)."""
    payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(_tag(kind, payload) + payload).decode().rstrip("=")


def decode_cursor(cursor: str, *, kind: str = DEFAULT_CURSOR_KIND) -> dict[str, Any]:
    """The position `encode_cursor` signed for `kind`; InvalidInput for anything else."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput(_CURSOR_ERROR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput(_CURSOR_ERROR) from None
    tag, payload = raw[:CURSOR_TAG_BYTES], raw[CURSOR_TAG_BYTES:]
    if len(tag) < CURSOR_TAG_BYTES or not hmac.compare_digest(tag, _tag(kind, payload)):
        raise InvalidInput(_CURSOR_ERROR)
    position = json.loads(payload)  # signed by us: it is what encode_cursor wrote
    if not isinstance(position, dict):
        raise InvalidInput(_CURSOR_ERROR)
    return position


KeySchema = Mapping[str, str]  # attribute name -> DynamoDB scalar type ("S" | "N" | "B")


def start_key(
    key: Any, schema: KeySchema, *, equal: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An ExclusiveStartKey from a decoded cursor's key: exactly the attributes of
    `schema`, each of its type, and those in `equal` with exactly those values."""
    if not isinstance(key, dict) or set(key) != set(schema):
        raise InvalidInput("Invalid cursor: it does not fit this listing")
    for name, kind in schema.items():
        found = key[name]
        if kind == "S":
            ok = isinstance(found, str) and 0 < len(found) <= MAX_CURSOR_CHARS
        elif kind == "N":
            ok = isinstance(found, int | float) and not isinstance(found, bool)
        else:
            ok = False  # no index of this API pages on binary keys
        if not ok:
            raise InvalidInput("Invalid cursor: it does not fit this listing")
    for name, expected in (equal or {}).items():
        if key.get(name) != expected:
            raise InvalidInput("Invalid cursor: it belongs to another listing")
    return serialize(key)
