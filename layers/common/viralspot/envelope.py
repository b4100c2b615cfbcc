"""The seed's response envelope: `{"success": true, "data": ...}` or
`{"success": false, "detail": "..."}`."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Success(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T


class Failure(BaseModel):
    success: Literal[False] = False
    detail: str


def success_body(data: BaseModel) -> dict[str, Any]:
    # Absent fields stay absent, as in the seed's response tables.
    return {"success": True, "data": data.model_dump(mode="json", exclude_none=True)}


def failure_body(detail: str) -> dict[str, Any]:
    return Failure(detail=detail).model_dump(mode="json")


def validation_detail(errors: Any) -> str:
    """One sentence from pydantic's errors: which parameter, and what was expected."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
        where = f"{loc[0]} parameter '{loc[-1]}'" if len(loc) >= 2 else ".".join(loc) or "request"
        parts.append(f"Invalid {where}: {error.get('msg', 'invalid value')}")
    return "; ".join(parts) or "Invalid request"
