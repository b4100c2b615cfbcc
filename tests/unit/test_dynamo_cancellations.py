"""How the Jobs adapter reads a cancelled intake transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.errors import StorageBusy, StorageError, StorageUnavailable
from viralspot.jobs import Source, new_job
from viralspot.ports import IntakeBlocked, ProfileGuard


class CancellingClient:
    """Stands in for the DynamoDB client: the first `times` transactions are cancelled
    with `codes` (all of them when `times` is None), the rest succeed."""

    def __init__(self, *codes: str, times: int | None = None) -> None:
        self.codes = codes
        self.times = times
        self.calls = 0

    def transact_write_items(self, **_: Any) -> None:
        self.calls += 1
        if self.times is not None and self.calls > self.times:
            return
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": c} for c in self.codes],
            },
            "TransactWriteItems",
        )


def create(*codes: str, client: CancellingClient | None = None, budget: float = 0.2) -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    store = DynamoJobStore(
        "Jobs",
        "Profiles",
        client=client or CancellingClient(*codes),  # type: ignore[arg-type]
        conflict_budget_seconds=budget,
    )
    store.create(
        new_job("natgeo", Source.FRONTEND, now),
        ProfileGuard.ABSENT,
        recent_before=now - timedelta(minutes=10),
        stale_before=now - timedelta(days=7),
    )


@pytest.mark.parametrize(
    "codes",
    [
        ("ThrottlingError", "None", "None"),
        ("None", "ProvisionedThroughputExceeded", "None"),
        ("ConditionalCheckFailed", "ThrottlingError", "None"),
        ("None", "None", "ThrottlingError"),
    ],
)
def test_throttled_transaction_is_unavailable_not_a_server_error(codes: tuple[str, ...]) -> None:
    with pytest.raises(StorageUnavailable):
        create(*codes)


@pytest.mark.parametrize(
    "codes",
    [
        ("None", "TransactionConflict", "None"),
        ("TransactionConflict", "None", "None"),
        ("None", "None", "TransactionConflict"),
    ],
)
def test_a_conflict_is_retried_in_place_until_the_write_lands(codes: tuple[str, ...]) -> None:
    client = CancellingClient(*codes, times=3)
    create(client=client)
    assert client.calls == 4


def test_conflicts_past_the_budget_are_busy_storage_a_503_not_a_500() -> None:
    client = CancellingClient("None", "TransactionConflict", "None")
    with pytest.raises(StorageBusy):
        create(client=client, budget=0.05)
    assert client.calls > 1


def test_condition_failure_without_items_is_a_block_with_nothing_seen() -> None:
    with pytest.raises(IntakeBlocked) as blocked:
        create("ConditionalCheckFailed", "None", "None")
    assert blocked.value.job is None
    assert blocked.value.profile is None


def test_unknown_cancellation_is_a_server_error() -> None:
    with pytest.raises(StorageError) as error:
        create("ValidationError", "None", "None")
    assert not isinstance(error.value, StorageUnavailable)
