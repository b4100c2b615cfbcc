"""devstack.moto_atomic: a cancelled transaction leaves every item as it was, and
no transaction copies whole tables (what made the local stack grow per job)."""

from __future__ import annotations

import contextlib
import gc
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from devstack.emulator import Emulator
from devstack.template import Stack

pytestmark = pytest.mark.server


def item(client: Any, table: str, username: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(
        TableName=table, Key={"username": {"S": username}}, ConsistentRead=True
    ).get("Item")
    return found


def test_a_cancelled_transaction_leaves_every_item_as_it_was(
    stack: Stack, aws_env: Emulator
) -> None:
    client = aws_env.client("dynamodb")
    jobs, profiles = stack.refs["JobsTable"], stack.refs["ProfilesTable"]
    client.put_item(TableName=jobs, Item={"username": {"S": "old"}, "status": {"S": "PENDING"}})
    client.put_item(
        TableName=profiles, Item={"username": {"S": "blocker"}, "tier": {"S": "primary"}}
    )
    before = item(client, jobs, "old")
    with pytest.raises(ClientError) as raised:
        client.transact_write_items(
            TransactItems=[
                # Written by moto before the failing check below is evaluated...
                {"Put": {"TableName": jobs, "Item": {"username": {"S": "new"}}}},
                {
                    "Update": {
                        "TableName": jobs,
                        "Key": {"username": {"S": "old"}},
                        "UpdateExpression": "SET #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "COMPLETED"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": profiles,
                        "Key": {"username": {"S": "blocker"}},
                        "ConditionExpression": "attribute_not_exists(username)",
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    # ...and undone: the new item is gone, the updated one is back as it was.
    assert item(client, jobs, "new") is None
    assert item(client, jobs, "old") == before


def test_a_transaction_naming_one_item_twice_writes_nothing(
    stack: Stack, aws_env: Emulator
) -> None:
    client = aws_env.client("dynamodb")
    jobs = stack.refs["JobsTable"]
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": jobs, "Item": {"username": {"S": "twice"}}}},
                {"Put": {"TableName": jobs, "Item": {"username": {"S": "twice"}, "x": {"S": "2"}}}},
            ]
        )
    assert item(client, jobs, "twice") is None


def test_transactions_copy_no_tables(stack: Stack, aws_env: Emulator) -> None:
    client = aws_env.client("dynamodb")
    jobs = stack.refs["JobsTable"]
    for index in range(200):
        client.put_item(TableName=jobs, Item={"username": {"S": f"filler_{index}"}})
    gc.collect()
    tables_before = sum(isinstance(o, Table) for o in gc.get_objects())
    for index in range(50):
        condition = "attribute_not_exists(username)" if index % 2 else "attribute_exists(username)"
        with contextlib.suppress(ClientError):
            client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": jobs,
                            "Item": {"username": {"S": f"t_{index}"}},
                            "ConditionExpression": condition,
                        }
                    }
                ]
            )
    # No garbage collection here on purpose: the copies used to survive it anyway.
    tables_after = sum(isinstance(o, Table) for o in gc.get_objects())
    assert tables_after == tables_before
    assert item(client, jobs, "t_1") is not None
    assert item(client, jobs, "t_0") is None
