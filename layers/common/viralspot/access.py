"""Who may ask for what: HIGH priority is earned.

A person asking for one profile (`source=frontend`) is HIGH: that is the promise
of the high queue. Everything else that would land on the high queue in bulk, or
claims the operator's `admin` source, must show the admin key; otherwise one
client could fill the high queue with 50 names a call and every person's request
would wait behind it.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from viralspot.errors import Forbidden
from viralspot.jobs import PRIORITY_BY_SOURCE, Priority, Source

ADMIN_KEY_HEADER = "x-api-key"


def needs_admin_key(source: Source, *, bulk: bool) -> bool:
    return source is Source.ADMIN or (bulk and PRIORITY_BY_SOURCE[source] is Priority.HIGH)


def authorise(
    source: Source,
    *,
    bulk: bool,
    presented_key: str | None,
    admin_key: Callable[[], str],
) -> None:
    """Raise Forbidden unless the request may use `source`. `admin_key` is only
    called (an AWS read) when the request both needs a key and presents one."""
    if not needs_admin_key(source, bulk=bulk):
        return
    what = f"source={source.value}" + (" in a bulk request" if bulk else "")
    if not presented_key:
        raise Forbidden(f"{what} needs the admin key (header {ADMIN_KEY_HEADER})")
    # Constant time, so the answer's timing says nothing about how much of a guess matched.
    if not hmac.compare_digest(_bytes(presented_key), _bytes(admin_key())):
        raise Forbidden(f"{what} needs the admin key; the {ADMIN_KEY_HEADER} given is not it")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
