"""`sam local` overrides only the variables a function declares (devstack/samlocal.py
has SAM CLI's rule): every key of every env-vars file in events/ must reach its
function, and the template's conditions keep deployed stacks free of local settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.samlocal import declared_variables, functions, problems, sam_local_environment
from devstack.template import NO_VALUE, Stack, default_parameters, load_template
from tests.events import EVENTS
from viralspot.config import (
    ENV_VARIABLES,
    RETRY_ENV_VARIABLES,
    Settings,
    settings_from_env,
)

ENV_FILES = sorted(EVENTS.glob("env*.json"))

FAKE_TEMPLATE = """
Parameters:
  Level: {Type: String, Default: INFO}
  Endpoint: {Type: String, Default: ""}
Conditions:
  IsLocal: !Not [!Equals [!Ref Endpoint, ""]]
Globals:
  Function:
    Environment:
      Variables:
        LEVEL: !Ref Level
        ENDPOINT: !If [IsLocal, !Ref Endpoint, !Ref AWS::NoValue]
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          QUEUE_ARN: !GetAtt Queue.Arn
  Sweeper:
    Type: AWS::Serverless::Function
    Properties: {}
"""


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path: Path = tmp_path_factory.mktemp("template") / "template.yaml"
    path.write_text(FAKE_TEMPLATE, encoding="utf-8")
    return load_template(path)


def test_there_is_an_env_file_to_check() -> None:
    assert [p.name for p in ENV_FILES] == ["env.local.json"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_every_key_of_the_env_file_reaches_its_functions(path: Path) -> None:
    template = load_template()
    env_vars = json.loads(path.read_text(encoding="utf-8"))
    assert problems(template, env_vars) == []
    for function_id in functions(template):
        environment, dropped = sam_local_environment(template, env_vars, function_id)
        assert dropped == []
        # Under SAM the function talks to the emulator, never to AWS.
        assert environment["AWS_ENDPOINT_URL"] == env_vars["Parameters"]["AWS_ENDPOINT_URL"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_the_env_file_sets_every_resource_name(path: Path) -> None:
    """Without the file, SAM gives a queue's variable the queue's logical id, not a URL."""
    template = load_template()
    env_vars = json.loads(path.read_text(encoding="utf-8"))
    resources = set(template["Resources"])
    for function_id in functions(template):
        declared = declared_variables(template, function_id)
        own = {**env_vars.get("Parameters", {}), **env_vars.get(function_id, {})}
        for name, value in declared.items():
            if isinstance(value, dict) and value.get("Ref") in resources:
                assert name in own, f"{function_id}: {name} is not set by {path.name}"


def test_a_key_the_function_does_not_declare_is_dropped(fake: dict[str, Any]) -> None:
    env_vars = {"Parameters": {"LEVEL": "DEBUG", "AWS_ENDPOINT_URL": "http://x"}}
    environment, dropped = sam_local_environment(fake, env_vars, "Sweeper")
    assert dropped == ["AWS_ENDPOINT_URL"]
    assert environment["LEVEL"] == "DEBUG"
    assert problems(fake, env_vars) == [
        "Parameters.AWS_ENDPOINT_URL is dropped for Api: the template does not declare it for that function",
        "Parameters.AWS_ENDPOINT_URL is dropped for Sweeper: the template does not declare it for that function",
    ]


def test_a_key_only_one_function_declares_belongs_in_its_block(fake: dict[str, Any]) -> None:
    in_parameters = {"Parameters": {"QUEUE_URL": "http://q"}}
    assert problems(fake, in_parameters) == [
        "Parameters.QUEUE_URL is dropped for Sweeper: the template does not declare it for that function"
    ]
    in_block = {"Api": {"QUEUE_URL": "http://q"}, "Parameters": {"LEVEL": "WARNING"}}
    assert problems(fake, in_block) == []
    assert sam_local_environment(fake, in_block, "Api")[0]["QUEUE_URL"] == "http://q"


def test_the_function_block_wins_over_parameters(fake: dict[str, Any]) -> None:
    env_vars = {"Parameters": {"LEVEL": "DEBUG"}, "Api": {"LEVEL": "ERROR"}}
    assert sam_local_environment(fake, env_vars, "Api")[0]["LEVEL"] == "ERROR"
    assert sam_local_environment(fake, env_vars, "Sweeper")[0]["LEVEL"] == "DEBUG"


def test_a_conditional_variable_is_declared_and_blank_until_set(fake: dict[str, Any]) -> None:
    environment, _ = sam_local_environment(fake, {}, "Api")
    # What SAM gives unresolved intrinsics; the file (or the shell) supplies the value.
    assert environment == {"LEVEL": "INFO", "ENDPOINT": "", "QUEUE_URL": "Queue", "QUEUE_ARN": ""}
    environment, _ = sam_local_environment(fake, {"Parameters": {"ENDPOINT": "http://e"}}, "Api")
    assert environment["ENDPOINT"] == "http://e"
    from_shell, _ = sam_local_environment(fake, {}, "Sweeper", shell_env={"LEVEL": "WARNING"})
    assert from_shell["LEVEL"] == "WARNING"


def test_reserved_variables_and_unknown_blocks_are_reported(fake: dict[str, Any]) -> None:
    found = problems(
        fake,
        {"Parameters": {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x"}, "Apii": {}},
    )
    assert len(found) == 3
    assert found[0].startswith("Parameters.AWS_REGION is a Lambda reserved variable")
    assert found[1].startswith("Parameters.AWS_ACCESS_KEY_ID is a Lambda reserved variable")
    assert found[2] == "block 'Apii' names no function of the template: SAM ignores it"
    assert problems(fake, ["not", "an", "object"]) == [
        "an env-vars file is a JSON object of blocks"
    ]


# ------------------------------------------------- the template's local-only settings


def stack_with(template: dict[str, Any], **parameters: str) -> Stack:
    stack = Stack(template=template, parameters={**default_parameters(template), **parameters})
    stack.refs = {name: f"physical-{name}" for name in template["Resources"]}
    return stack


def test_a_deployed_stack_has_no_endpoint_variable() -> None:
    template = load_template()
    deployed = stack_with(template)
    local = stack_with(template, LocalEndpointUrl="http://127.0.0.1:5055")
    for function_id in functions(template):
        assert "AWS_ENDPOINT_URL" not in deployed.function_environment(function_id)
        assert local.function_environment(function_id)["AWS_ENDPOINT_URL"] == (
            "http://127.0.0.1:5055"
        )


def test_reserved_concurrency_is_optional() -> None:
    template = load_template()
    props = {
        name: template["Resources"][name]["Properties"]["ReservedConcurrentExecutions"]
        for name in ("ProcessProfileFunction", "RetryFailedFunction")
    }
    by_default = stack_with(template)
    assert by_default.resolve(props) == {"ProcessProfileFunction": "7", "RetryFailedFunction": 1}
    none = stack_with(template, WorkerReservedConcurrency="0")
    assert none.resolve(props) == {}
    assert none.resolve(props["ProcessProfileFunction"]) is NO_VALUE
    assert template["Parameters"]["WorkerReservedConcurrency"]["MinValue"] == 0


# ------------------------------------------------- one default per setting


# Settings without a default name the stack's own resources: any value serves here.
REQUIRED_ENV = {
    ENV_VARIABLES[name]: f"physical-{name}"
    for name, field in Settings.model_fields.items()
    if field.is_required()
}
# What a template parameter tunes: every setting with a default of its own (None
# defaults are resources or secrets the template names), and its variables.
TUNABLES = {
    name: tuple(RETRY_ENV_VARIABLES.values()) if name == "retry" else (ENV_VARIABLES[name],)
    for name, field in Settings.model_fields.items()
    if not field.is_required() and field.default is not None
}


def test_the_template_deploys_the_code_defaults() -> None:
    """A tunable has its default twice, necessarily (a CloudFormation parameter and
    the Settings model): a deployed function must run with what the code would
    assume, so each function's settings from its template environment, with every
    parameter at its default, equal the model's defaults wherever the template sets
    the variable."""
    template = load_template()
    stack = stack_with(template)
    code = settings_from_env(REQUIRED_ENV)
    checked: set[str] = set()
    for function_id in functions(template):
        environment = stack.function_environment(function_id)
        deployed = settings_from_env({**REQUIRED_ENV, **environment})
        for field in TUNABLES:
            if any(variable in environment for variable in TUNABLES[field]):
                assert getattr(deployed, field) == getattr(code, field), (function_id, field)
                checked.add(field)
    assert checked == set(TUNABLES), set(TUNABLES) - checked
