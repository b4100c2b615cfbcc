"""Bulk results carry a code per failed name, which clients switch on."""

from __future__ import annotations

from pydantic import BaseModel

from viralspot.errors import (
    DispatchFailed,
    StorageBusy,
    StorageUnavailable,
    ViralSpotError,
)
from viralspot.operations import BulkError, bulk_request


class Queued(BaseModel):
    queued: bool = True


FAULTS: dict[str, ViralSpotError] = {
    "busy": StorageBusy("contended"),
    "down": StorageUnavailable("throttled"),
    "odd": DispatchFailed("unexpected here"),
}


def request_one(name: str) -> BaseModel:
    if name in FAULTS:
        raise FAULTS[name]
    return Queued()


def test_each_failed_name_carries_the_code_of_its_reason() -> None:
    result = bulk_request(["fine", "bad name", "busy", "down", "odd"], request_one)
    codes = {item.username: item.code for item in result.results}
    assert codes == {
        "fine": None,
        "bad name": BulkError.INVALID_USERNAME,
        "busy": BulkError.STORAGE_BUSY,
        "down": BulkError.STORAGE_UNAVAILABLE,
        "odd": BulkError.FAILED,
    }
    assert (result.succeeded, result.failed) == (1, 4)


def test_the_code_is_left_out_of_a_success_and_kept_on_a_failure() -> None:
    fine, busy = bulk_request(["fine", "busy"], request_one).results
    assert "code" not in fine.model_dump(mode="json", exclude_none=True)
    assert busy.model_dump(mode="json", exclude_none=True)["code"] == "storage_busy"
