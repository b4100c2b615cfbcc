"""Plain Python values <-> DynamoDB attribute values, and a decoded paging cursor's
key -> an ExclusiveStartKey.

DynamoDB has one number type; the low-level client wants Decimal, pydantic wants
int or float. Conversion happens here and nowhere else. `start_key` is the one way
a listing turns a cursor's key back into a LastEvaluatedKey (the cursor itself is
signed and checked by `viralspot.cursors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from viralspot.edge import MAX_CURSOR_CHARS
from viralspot.errors import InvalidInput

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
# A posts cursor (viralspot.cursors signs it) carries a DynamoDB key from one page to
# the next; before any query uses it, `start_key` checks it attribute by attribute
# against the index's key schema and the caller's listing.

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
