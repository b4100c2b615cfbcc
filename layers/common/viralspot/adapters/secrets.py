"""Secrets from SSM Parameter Store (SecureString) and Secrets Manager, through
Powertools parameters (cached per container)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from viralspot.adapters import aws
from viralspot.errors import ProviderTransient, ProviderUnauthorized, SecretUnavailable

logger = Logger(child=True)

# A missing or forbidden parameter is an operator problem: retrying cannot help.
_PERMANENT = frozenset({"ParameterNotFound", "AccessDeniedException", "ParameterVersionNotFound"})


def provider_key(parameter_name: str, *, max_age: int = 300) -> str:
    """The provider's API key. Powertools caches it for `max_age` seconds, so warm
    invocations skip SSM while a rotated key still reaches running containers."""
    try:
        value = parameters.get_parameter(parameter_name, decrypt=True, max_age=max_age)
    except GetParameterError as exc:
        # Powertools flattens every failure into GetParameterError; the botocore
        # error it was raised from tells permanent from transient.
        cause = exc.__cause__ or exc.__context__
        code = aws.error_code(cause) if isinstance(cause, ClientError) else ""
        if code in _PERMANENT:
            logger.error(
                "provider key parameter is missing or unreadable",
                extra={"parameter": parameter_name, "code": code},
            )
            raise ProviderUnauthorized(
                f"key parameter {parameter_name!r} unavailable ({code})"
            ) from exc
        raise ProviderTransient(f"could not read key parameter {parameter_name!r}") from exc
    if not value:
        raise ProviderUnauthorized(f"key parameter {parameter_name!r} is empty")
    return str(value)


def secret_string(secret_id: str, *, max_age: int = 300) -> str:
    """A Secrets Manager secret (the admin key, the cursor key), through Powertools'
    cache: one read per container every `max_age` seconds, not one per request."""
    try:
        value = parameters.get_secret(secret_id, max_age=max_age)
    except GetParameterError as exc:
        cause = exc.__cause__ or exc.__context__
        code = aws.error_code(cause) if isinstance(cause, ClientError) else type(cause).__name__
        logger.error("secret unreadable", extra={"secret": secret_id, "code": code})
        raise SecretUnavailable(f"secret unavailable ({code})") from exc
    text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if not text:
        raise SecretUnavailable("secret is empty")
    return text
