"""Make moto say "not implemented" the way an AWS endpoint refuses an operation.

moto's server answers an action it lacks (SQS StartMessageMoveTask, for one) with a
bare HTML 500, which botocore takes for a server fault and retries four times before
raising an error with no code. Code that falls back when an endpoint lacks an
operation (viralspot.adapters.sqs_queues) needs to tell the two apart, at once. This
answers such calls with HTTP 501 and the error code `NotImplemented`, in the
protocol's own error format; botocore does not retry a 501. Used by the tests and
the local stack, nowhere else.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from moto.core.responses import BaseResponse

_MARK = "_viralspot_not_implemented"
CODE = "NotImplemented"


def _answer(response: BaseResponse, message: str) -> tuple[int, dict[str, str], str]:
    headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
    if "x-amz-target" in headers:  # the JSON protocols (SQS, DynamoDB, SSM, ...)
        body = json.dumps({"__type": CODE, "message": message})
        return 501, {"Content-Type": "application/x-amz-json-1.0"}, body
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{CODE}</Code><Message>{escape(message)}</Message>"
        "</Error></ErrorResponse>"
    )
    return 501, {"Content-Type": "text/xml"}, body


def _answering(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: BaseResponse, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except NotImplementedError as exc:
            return _answer(self, str(exc) or "not implemented by the local emulator")

    setattr(wrapper, _MARK, True)
    return wrapper


def answer_not_implemented() -> None:
    """Idempotent: wraps moto's action dispatch once."""
    if not getattr(BaseResponse.call_action, _MARK, False):
        BaseResponse.call_action = _answering(BaseResponse.call_action)  # type: ignore[method-assign]
