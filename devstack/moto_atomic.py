"""Make moto's DynamoDB as atomic as the real one, and as cheap to keep running.

Real DynamoDB evaluates a condition and writes the item as one atomic step per
item, and a transaction as one step across its items. moto (5.x) reads, evaluates
and writes without a lock, so under threads two conditional writes on one key can
both succeed, and a cancelled transaction restores a deep copy of whole tables
that can erase a concurrent write. A race test against that would test moto.

One process-wide re-entrant lock around every DynamoDB write operation of the
backend restores the guarantee. Reads stay unlocked, as they are lock-free in
DynamoDB too. Used by the tests and the local stack, nowhere else.

The same whole-table copy is also what made the local stack grow without bound:
every `TransactWriteItems` deep-copied the Jobs and Profiles tables (thousands of
items once a stack has run for a while) to be able to roll back, so the cost of
one request grew with the tables, and the copies outlived the calls (a few
hundred tables alive after forty jobs; docs/benchmarks.md). Under the write lock
nothing else can touch the items a transaction names, so a copy of just those
items is as good a rollback: that is what `_transact_write_items` keeps instead.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

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


# (table, hash key, range key, the item before the transaction or None)
_Snapshot = list[tuple[Table, DynamoType, DynamoType | None, Item | None]]


def _snapshot(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> _Snapshot:
    saved: _Snapshot = []
    for entry in transact_items:
        for op in entry.values():
            name = op.get("TableName") if isinstance(op, dict) else None
            table = backend.tables.get(name) if isinstance(name, str) else None
            if table is None:
                continue
            attrs = op.get("Item") or op.get("Key") or {}
            try:
                hash_key = DynamoType(attrs[table.hash_key_attr])
                range_key = (
                    DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
                )
                current = table.get_item(hash_key, range_key)
            except Exception:  # noqa: S112 - a malformed key: moto itself refuses the call
                continue
            saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved: _Snapshot) -> None:
    for table, hash_key, range_key, before in reversed(saved):
        if before is None:
            table.delete_item(hash_key, range_key)
        else:
            table.put_item(before.to_json()["Attributes"], overwrite=True)


def _transact_write_items(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> Any:
        with _lock:
            saved = _snapshot(self, transact_items)
            try:
                return original(self, transact_items)
            except BaseException:
                # moto "restored" each table to itself (see _no_table_copies); undo
                # whatever the transaction wrote before it failed, item by item.
                _restore(saved)
                raise

    setattr(wrapper, _MARK, True)
    return wrapper


def _no_table_copies() -> None:
    """moto's transaction deep-copies each table it touches; hand it the table
    itself instead (every other deep copy in that module is of items, and stays)."""

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    dynamodb_models.copy = SimpleNamespace(deepcopy=deepcopy)  # type: ignore[attr-defined,assignment]


def serialise_dynamodb_writes() -> None:
    """Idempotent: wraps each write operation of moto's DynamoDB backend once."""
    for name in _WRITE_OPERATIONS:
        method = getattr(DynamoDBBackend, name, None)
        if method is None or getattr(method, _MARK, False):
            continue
        if name == "transact_write_items":
            _no_table_copies()
            setattr(DynamoDBBackend, name, _transact_write_items(method))
        else:
            setattr(DynamoDBBackend, name, _serialised(method))
