"""The environment `sam local invoke` / `sam local start-api` give a function, by SAM
CLI's own rule, so `make test` can prove an env-vars file in events/ reaches the
functions instead of being dropped without a word.

The rule (SAM CLI 1.170: `LocalLambdaRunner._make_env_vars` in
samcli/commands/local/lib/local_lambda.py and `EnvironmentVariables.resolve` in
samcli/local/lambdafn/env_vars.py):

- An env-vars file holds a "Parameters" block, which applies to every function, and
  blocks named by a function's logical id, which win over "Parameters". A block that
  names no function is ignored.
- Only the variables the template declares for a function (its own and Globals')
  take a value from the file, or else from the shell's environment of the same name.
  Every other key is dropped.
- A declared variable whose template value is an intrinsic SAM does not resolve (an
  `!If`, a `!GetAtt`) is "" unless the file sets it; a `!Ref` gives the parameter's
  value, or a resource's logical id.
- The AWS_* variables of the runtime come from SAM itself: credentials and region
  from the developer's AWS configuration (`--profile`, `--region`, the AWS_* shell
  variables), the function's name, memory and timeout from the template. The file
  cannot set them, and Lambda forbids declaring them.
"""

from __future__ import annotations

from typing import Any

from devstack.template import NO_VALUE, Stack, default_parameters, resources_of_type

PARAMETERS_BLOCK = "Parameters"

# Lambda's reserved environment variables: set by the runtime, never by the template
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
RESERVED_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def functions(template: dict[str, Any]) -> list[str]:
    return list(resources_of_type(template, "AWS::Serverless::Function"))


def declared_variables(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    """The function's variables as the template writes them: Globals', then its own."""
    global_env = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    own = (
        template["Resources"][function_id]
        .get("Properties", {})
        .get("Environment", {})
        .get("Variables", {})
    )
    return {**global_env, **own}


def file_overrides(env_vars: dict[str, Any], function_id: str) -> dict[str, Any]:
    """What the file asks for this function: "Parameters", then the function's block."""
    return {**env_vars.get(PARAMETERS_BLOCK, {}), **env_vars.get(function_id, {})}


def _sam_value(stack: Stack, value: Any) -> str:
    try:
        resolved = stack.resolve(value)
    except KeyError:
        return ""
    if resolved is NO_VALUE or isinstance(resolved, dict | list):
        return ""
    if isinstance(resolved, bool):
        return "true" if resolved else "false"
    return str(resolved)


def sam_local_environment(
    template: dict[str, Any],
    env_vars: dict[str, Any],
    function_id: str,
    shell_env: dict[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """(the function's own variables under `sam local`, keys of the file SAM drops).

    The runtime's AWS_* variables are SAM's business and are not included."""
    # SAM resolves a Ref to a resource as its logical id, and cannot resolve Fn::If.
    stack = Stack(template=template, parameters=default_parameters(template))
    stack.refs = {name: name for name in template.get("Resources", {})}
    stack.template = {**template, "Conditions": {}}
    declared = declared_variables(template, function_id)
    overrides = file_overrides(env_vars, function_id)
    shell = shell_env or {}
    environment: dict[str, str] = {}
    for name, value in declared.items():
        if name in overrides:
            environment[name] = str(overrides[name])
        elif name in shell:
            environment[name] = shell[name]
        else:
            environment[name] = _sam_value(stack, value)
    dropped = sorted(key for key in overrides if key not in declared)
    return environment, dropped


def problems(template: dict[str, Any], env_vars: Any) -> list[str]:
    """Everything in an env-vars file that would not reach a function under SAM's rule."""
    if not isinstance(env_vars, dict):
        return ["an env-vars file is a JSON object of blocks"]
    found: list[str] = []
    names = functions(template)
    for block, values in env_vars.items():
        if block != PARAMETERS_BLOCK and block not in names:
            found.append(f"block {block!r} names no function of the template: SAM ignores it")
        if not isinstance(values, dict):
            found.append(f"block {block!r} is not an object of variables")
            continue
        for key in values:
            if key in RESERVED_VARIABLES:
                found.append(
                    f"{block}.{key} is a Lambda reserved variable: SAM sets it from the AWS "
                    "configuration (--region, --profile), never from the file"
                )
    if not all(isinstance(values, dict) for values in env_vars.values()):
        return found
    for function_id in names:
        _, dropped = sam_local_environment(template, env_vars, function_id)
        for key in (k for k in dropped if k not in RESERVED_VARIABLES):
            block = function_id if key in env_vars.get(function_id, {}) else PARAMETERS_BLOCK
            found.append(
                f"{block}.{key} is dropped for {function_id}: the template does not declare it "
                "for that function"
            )
    return found
