"""Read infra/template.yaml and create what it declares on an AWS emulator.

The tests and the local stack build their tables and queues from here, so the code
and the infrastructure cannot drift: a GSI missing from the template is missing in
the tests too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"


class _NoValue:
    """What `!Ref AWS::NoValue` resolves to: the enclosing key or item is dropped."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()

# CloudFormation properties that the emulator's create calls do not take.
_TABLE_KEYS = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
)


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation's short-form tags (!Ref, !GetAtt...)."""


def _intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        raw: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            raw = str(raw).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        raw = loader.construct_sequence(node, deep=True)
    else:
        raw = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: raw}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506  # nosec B506 - SafeLoader subclass
    return data


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == kind
    }


@dataclass
class Stack:
    """Physical names of what was created, by logical id, as CloudFormation's Ref/GetAtt give them."""

    template: dict[str, Any]
    refs: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    # Secret values by logical id, as the stack generated them (local stack and tests).
    secrets: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and arg == "AWS::NoValue":
                return NO_VALUE
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Ref":
                if arg in self.refs:
                    return self.refs[arg]
                if arg in self.parameters:
                    return self.parameters[arg]
                raise KeyError(f"cannot resolve Ref {arg}")
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg
                if attribute == "Arn":
                    return self.arns[logical]
                raise KeyError(f"cannot resolve GetAtt {logical}.{attribute}")
        if isinstance(value, dict):
            resolved = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        """The value of one of the template's Conditions, from the stack's parameters."""
        return self._truth(self.template.get("Conditions", {})[name])

    def _truth(self, expression: Any) -> bool:
        ((key, arg),) = expression.items()
        if key == "Fn::Equals":
            left, right = (str(self.resolve(side)) for side in arg)
            return left == right
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(item) for item in arg)
        if key == "Fn::Or":
            return any(self._truth(item) for item in arg)
        if key in ("Condition", "Fn::Condition"):
            return self.condition(arg)
        raise KeyError(f"cannot evaluate condition {key}")

    def _sub(self, name: str) -> str:
        logical, _, attribute = name.partition(".")
        if attribute:
            return str(self.resolve({"Fn::GetAtt": [logical, attribute]}))
        return str(self.resolve({"Ref": name}))

    def api_key_values(self) -> dict[str, str | None]:
        """Each API Gateway key of the template, by logical id: its value, and the
        logical id of the secret it resolves (`{{resolve:secretsmanager:...}}`) or None."""
        found: dict[str, str | None] = {}
        for name, resource in resources_of_type(self.template, "AWS::ApiGateway::ApiKey").items():
            raw = resource.get("Properties", {}).get("Value")
            if raw is None:
                continue
            text = str(self.resolve(raw))
            reference = _SECRET_REFERENCE.fullmatch(text)
            secret = reference.group(1) if reference else None
            found[name] = next(
                (logical for logical, ref in self.refs.items() if secret in (logical, ref)), None
            )
        return found

    def api_keys(self) -> list[str]:
        """The values of the template's API keys (a secret's value, or a literal)."""
        values = []
        for name, secret in self.api_key_values().items():
            if secret is not None:
                values.append(self.secrets[secret])
            else:
                values.append(
                    str(self.resolve(self.template["Resources"][name]["Properties"]["Value"]))
                )
        return values

    def function_environment(self, function_id: str) -> dict[str, str]:
        """The environment Lambda would give `function_id`: Globals, then its own."""
        global_env = (
            self.template.get("Globals", {})
            .get("Function", {})
            .get("Environment", {})
            .get("Variables", {})
        )
        function = self.template["Resources"][function_id]["Properties"]
        own = function.get("Environment", {}).get("Variables", {})
        resolved = self.resolve({**global_env, **own})
        return {key: str(val) for key, val in resolved.items()}


_SECRET_REFERENCE = re.compile(r"\{\{resolve:secretsmanager:(.+?):SecretString\}\}")
# GenerateSecretString properties that GetRandomPassword takes under the same name.
_PASSWORD_KEYS = (
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)


def default_parameters(template: dict[str, Any]) -> dict[str, str]:
    return {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }


def create_stack(
    dynamodb: Any,
    sqs: Any,
    *,
    template: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
    account: str = "123456789012",
    region: str = "us-east-1",
    secretsmanager: Any | None = None,
    secret_values: dict[str, str] | None = None,
) -> Stack:
    """Create every DynamoDB table, SQS queue and Secrets Manager secret the template
    declares. Secrets are generated as CloudFormation would (GenerateSecretString)
    unless `secret_values` gives one; they go to `secretsmanager`, by default a
    client of the emulator that serves `sqs`."""
    template = template or load_template()
    stack = Stack(template=template)
    stack.parameters = {**default_parameters(template), **(parameters or {})}
    for name, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        dynamodb.create_table(TableName=name, **{k: props[k] for k in _TABLE_KEYS if k in props})
        stack.refs[name] = name
        stack.arns[name] = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
    queues = resources_of_type(template, "AWS::SQS::Queue")
    # Dead-letter queues first: the others' redrive policies point at them.
    ordered = sorted(queues.items(), key=lambda kv: "RedrivePolicy" in kv[1].get("Properties", {}))
    for name, resource in ordered:
        props = resource.get("Properties", {})
        attributes = {
            key: str(stack.resolve(props[key]))
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds")
            if key in props
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(stack.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        stack.refs[name] = url
        stack.arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    secrets = resources_of_type(template, "AWS::SecretsManager::Secret")
    if secrets:
        # SQS, not DynamoDB: DynamoDB may be on another engine (DynamoDB Local).
        client = secretsmanager or sibling_client(sqs, "secretsmanager")
        for name, resource in secrets.items():
            props = resource.get("Properties", {})
            value = (secret_values or {}).get(name)
            if value is None:
                options = {
                    k: props["GenerateSecretString"][k]
                    for k in _PASSWORD_KEYS
                    if k in props.get("GenerateSecretString", {})
                }
                value = str(client.get_random_password(**options)["RandomPassword"])
            arn = client.create_secret(Name=name, SecretString=value)["ARN"]
            # Ref of a secret is its ARN, as in CloudFormation.
            stack.refs[name] = stack.arns[name] = arn
            stack.secrets[name] = value
    return stack


class StackNotFound(LookupError):
    """The emulator does not hold the template's resources (no `make run` there)."""


def attach_stack(
    dynamodb: Any,
    sqs: Any,
    *,
    template: dict[str, Any] | None = None,
    parameters: dict[str, str] | None = None,
) -> Stack:
    """The stack `create_stack` made earlier on the same emulator, found by name, so
    another process (`make invoke`, `make event`) can work against a running `make run`."""
    template = template or load_template()
    stack = Stack(template=template)
    stack.parameters = {**default_parameters(template), **(parameters or {})}
    try:
        for name in resources_of_type(template, "AWS::DynamoDB::Table"):
            stack.refs[name] = name
            stack.arns[name] = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        for name in resources_of_type(template, "AWS::SQS::Queue"):
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            stack.refs[name] = url
            stack.arns[name] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        secrets = resources_of_type(template, "AWS::SecretsManager::Secret")
        client = sibling_client(sqs, "secretsmanager") if secrets else None
        for name in secrets:
            found = client.get_secret_value(SecretId=name) if client else {}
            stack.refs[name] = stack.arns[name] = str(found["ARN"])
            stack.secrets[name] = str(found["SecretString"])
    except (BotoCoreError, ClientError) as exc:
        raise StackNotFound(f"{type(exc).__name__}: {exc}") from exc
    return stack


def sibling_client(client: Any, service: str) -> Any:
    """A client of another service on the same emulator (which takes any credentials)."""
    return boto3.session.Session().client(  # type: ignore[call-overload]
        service,
        endpoint_url=client.meta.endpoint_url,
        region_name=client.meta.region_name,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator's fixed dummy
    )
