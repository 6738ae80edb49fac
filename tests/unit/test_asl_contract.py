"""The state machine and the layer agree on error names, and the ASL and template.yaml on substitutions."""

import importlib.util
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conveyor.domain import errors

from conveyor_local.provision import load_template

ROOT = Path(__file__).parents[2]
ASL_TEXT = (ROOT / "statemachine" / "deployment.asl.json").read_text()
ASL = json.loads(ASL_TEXT)

ERROR_CLASSES = {
    name
    for name, value in vars(errors).items()
    if inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == errors.__name__
}
STATES_ERRORS = {
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
}


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for nested in (state.get("ItemProcessor"), state.get("Iterator")):
            if nested:
                yield from _states(nested["States"])
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])


ALL_STATES = dict(_states(ASL["States"]))


def _error_names() -> list[tuple[str, str]]:
    found = []
    for name, state in ALL_STATES.items():
        for clause in state.get("Retry", []) + state.get("Catch", []):
            found.extend((name, error) for error in clause["ErrorEquals"])
    return found


def _lambda_exceptions() -> set[str]:
    client = boto3.client("lambda", region_name="us-east-1")
    return {name for name in dir(client.exceptions) if not name.startswith("_") and name != "from_code"}


# What the Lambda runtime reports when a function dies rather than raises (the error names
# Step Functions sees): the function timed out, or its process exited. Documented in the Step
# Functions developer guide, "Handling errors in Step Functions workflows" (Lambda errors).
LAMBDA_RUNTIME_ERRORS = frozenset({"Sandbox.Timedout", "Runtime.ExitError"})


def test_the_asl_has_retry_and_catch_clauses_to_check() -> None:
    assert len(_error_names()) > 10


@pytest.mark.parametrize(("state", "error"), _error_names())
def test_every_error_equals_is_a_known_name(state: str, error: str) -> None:
    if error.startswith("States."):
        assert error in STATES_ERRORS, f"{state}: {error} is not a Step Functions error name"
    elif error.startswith("Lambda."):
        assert error.removeprefix("Lambda.") in _lambda_exceptions(), f"{state}: {error} is not a Lambda exception"
    elif error in LAMBDA_RUNTIME_ERRORS:
        pass
    else:
        assert error in ERROR_CLASSES, f"{state}: {error} is not a class in conveyor.errors"


def test_every_fail_state_raises_a_conveyor_error() -> None:
    fails = {name: state["Error"] for name, state in ALL_STATES.items() if state["Type"] == "Fail"}
    assert fails, "the ASL has Fail states"
    for name, error in fails.items():
        assert error in ERROR_CLASSES, f"Fail state {name} raises {error}, not a class in conveyor.errors"


def test_the_error_list_sees_only_conveyor_exceptions() -> None:
    # Guard against a test that cannot fail: an import or a builtin is not a Conveyor error
    assert "ConveyorError" in ERROR_CLASSES
    assert "RollbackFailedError" in ERROR_CLASSES
    assert "Exception" not in ERROR_CLASSES
    assert "annotations" not in ERROR_CLASSES


def test_lambda_exception_names_come_from_botocore() -> None:
    names = _lambda_exceptions()
    assert {"ServiceException", "TooManyRequestsException"} <= names
    assert "NoSuchThingException" not in names


def test_substitutions_match_definition_substitutions() -> None:
    # Given the ${...} names used in the ASL and the state machine's DefinitionSubstitutions
    used = set(re.findall(r"\$\{([^}]+)\}", ASL_TEXT))
    machines = [
        r["Properties"]
        for r in load_template(ROOT / "template.yaml")["Resources"].values()
        if r["Type"] in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
    ]
    (machine,) = machines
    assert machine["DefinitionUri"] == "statemachine/deployment.asl.json"
    declared = set(machine["DefinitionSubstitutions"])
    # Then every name used is declared and every declared name is used
    assert used == declared
    assert used


def _function_stages(name: str) -> set[str]:
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"asl_contract_{name}_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.STAGES)


def _stage_calls() -> Iterator[tuple[str, str, str]]:
    """(state, function substitution, stage) for every Task that invokes a stage function."""
    for name, state in ALL_STATES.items():
        if state["Type"] != "Task":
            continue
        parameters = state.get("Parameters", {})
        if "FunctionName.$" in parameters:  # a team's task-token hook, named by the spec: not a stage function
            continue
        if state["Resource"] == "${LambdaInvokeWaitForTaskToken}":
            function, envelope = parameters["FunctionName"], parameters["Payload"]
        else:
            function, envelope = state["Resource"], parameters
        yield name, function, envelope.get("stage")


def test_every_task_names_a_stage_its_function_serves() -> None:
    # Given every Task of the ASL and the stage table of the function it invokes
    calls = list(_stage_calls())
    served = {f"${{{name.title()}FunctionArn}}": _function_stages(name) for name in ("intake", "rollout", "report")}
    # Then each names a stage, and its function serves it
    assert {(state, stage) for state, function, stage in calls if stage not in served.get(function, set())} == set()
    # And every stage a function serves is reached by some state (no dead doorway)
    reached = {(function, stage) for _, function, stage in calls}
    assert {(f, s) for f, stages in served.items() for s in stages} == reached
    assert len(calls) >= 10


def test_every_task_resource_is_a_substitution() -> None:
    # ARNs only through ${...}: no account, region or function name is hard-coded in the ASL
    tasks = {name: state for name, state in ALL_STATES.items() if state["Type"] == "Task"}
    assert tasks
    for name, state in tasks.items():
        assert re.fullmatch(r"\$\{\w+\}", state["Resource"]), f"{name} hard-codes {state['Resource']}"


def test_every_next_and_default_names_an_existing_state() -> None:
    for name, state in ALL_STATES.items():
        targets = [state.get("Next"), state.get("Default")]
        targets += [choice.get("Next") for choice in state.get("Choices", [])]
        targets += [catch["Next"] for catch in state.get("Catch", [])]
        for target in filter(None, targets):
            assert target in ALL_STATES, f"{name} -> {target} does not exist"
