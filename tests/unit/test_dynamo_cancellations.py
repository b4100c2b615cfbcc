"""How the Jobs adapter reads a cancelled intake transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from viralspot.adapters.dynamo_jobs import DynamoJobStore
from viralspot.errors import StorageError, StorageUnavailable
from viralspot.jobs import Source, new_job
from viralspot.ports import IntakeBlocked, ProfileGuard, WriteConflict


class CancellingClient:
    """Stands in for the DynamoDB client: every transaction is cancelled with `codes`."""

    def __init__(self, *codes: str) -> None:
        self.codes = codes

    def transact_write_items(self, **_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": c} for c in self.codes],
            },
            "TransactWriteItems",
        )


def create(*codes: str) -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    store = DynamoJobStore("Jobs", "Profiles", client=CancellingClient(*codes))  # type: ignore[arg-type]
    store.create(
        new_job("natgeo", Source.FRONTEND, now),
        ProfileGuard.ABSENT,
        recent_before=now - timedelta(minutes=10),
        stale_before=now - timedelta(days=7),
    )


@pytest.mark.parametrize(
    "codes",
    [
        ("ThrottlingError", "None"),
        ("None", "ProvisionedThroughputExceeded"),
        ("ConditionalCheckFailed", "ThrottlingError"),
    ],
)
def test_throttled_transaction_is_unavailable_not_a_server_error(codes: tuple[str, str]) -> None:
    with pytest.raises(StorageUnavailable):
        create(*codes)


def test_conflict_is_retried_by_the_service() -> None:
    with pytest.raises(WriteConflict):
        create("None", "TransactionConflict")


def test_condition_failure_without_items_is_a_block_with_nothing_seen() -> None:
    with pytest.raises(IntakeBlocked) as blocked:
        create("ConditionalCheckFailed", "None")
    assert blocked.value.job is None
    assert blocked.value.profile is None


def test_unknown_cancellation_is_a_server_error() -> None:
    with pytest.raises(StorageError) as error:
        create("ValidationError", "None")
    assert not isinstance(error.value, StorageUnavailable)
