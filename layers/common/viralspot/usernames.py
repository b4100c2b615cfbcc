"""The username rule: what counts as one Instagram account name.

Normalised (leading `@` stripped, lower-cased) before anything else, so `@NatGeo`
and `natgeo` are one profile, one job, one message.
"""

from __future__ import annotations

import re

from viralspot.errors import InvalidInput

MAX_LENGTH = 30
_ALLOWED = re.compile(r"[a-z0-9._]{1,30}")
# The same rule as one regular expression, for the OpenAPI document (clients and
# fuzzers read it); `normalise_username` stays the enforcement, with clearer errors.
DOCUMENTED_PATTERN = r"^@?(?!\.)(?!.*\.\.)(?!.*\.$)[A-Za-z0-9._]{1,30}$"


def normalise_username(raw: str | None) -> str:
    """Return the canonical form of `raw`, or raise InvalidInput saying what is wrong."""
    if raw is None or not raw.strip():
        raise InvalidInput("Username is required")
    name = raw
    if name.startswith("@"):
        name = name[1:]
    name = name.lower()
    if not name:
        raise InvalidInput("Username is required")
    if len(name) > MAX_LENGTH:
        raise InvalidInput(f"Username too long (max {MAX_LENGTH} characters)")
    if not _ALLOWED.fullmatch(name):
        raise InvalidInput(
            "Username contains invalid characters: use letters, digits, '.' and '_' only"
        )
    # Instagram itself refuses these; rejecting them also keeps '..' out of every key.
    if ".." in name or name.startswith(".") or name.endswith("."):
        raise InvalidInput("Username cannot start or end with '.' or contain '..'")
    return name


def username_or_none(raw: str | None) -> str | None:
    """The same rule for names a client did not send (a provider's answers): the
    canonical form, or None where no account can have the name, to skip it."""
    try:
        return normalise_username(raw)
    except InvalidInput:
        return None
