"""Make moto's DynamoDB as atomic as the real one.

Real DynamoDB evaluates a condition and writes the item as one atomic step per
item, and a transaction as one step across its items. moto (5.x) reads, evaluates
and writes without a lock, so under threads two conditional writes on one key can
both succeed, and a cancelled transaction restores a deep copy of whole tables
that can erase a concurrent write. A race test against that would test moto.

One process-wide re-entrant lock around every DynamoDB write operation of the
backend restores the guarantee. Reads stay unlocked, as they are lock-free in
DynamoDB too. Used by the tests and the local stack, nowhere else.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_WRITE_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "execute_statement",
    "execute_transaction",
)
_lock = threading.RLock()
_MARK = "_viralspot_serialised"


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    setattr(wrapper, _MARK, True)
    return wrapper


def serialise_dynamodb_writes() -> None:
    """Idempotent: wraps each write operation of moto's DynamoDB backend once."""
    for name in _WRITE_OPERATIONS:
        method = getattr(DynamoDBBackend, name, None)
        if method is not None and not getattr(method, _MARK, False):
            setattr(DynamoDBBackend, name, _serialised(method))
