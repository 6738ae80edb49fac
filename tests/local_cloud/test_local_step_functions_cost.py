"""The local Step Functions interpreter parses a definition once and reuses its clients across executions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from local_cloud_support import FIXTURES, wait_for

from conveyor_local import requests_log
from conveyor_local.moto_patches import registry, stepfunctions

Aws = Callable[[str], Any]


@pytest.fixture
def definition() -> str:
    text = (FIXTURES / "statemachine" / "probe.asl.json").read_text(encoding="utf-8")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:probe"
    # A definition no other test parsed: the cache is process-wide.
    return text.replace("${ProbeFunctionArn}", arn).replace('"Bake"', f'"Bake{uuid.uuid4().hex[:8]}"')


def test_a_definition_is_parsed_once_and_each_execution_gets_its_own_program(
    definition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto's parser, counted
    parser = registry.resolve_dotted(stepfunctions.ASL_PARSER)
    parses: list[str] = []
    moto_parse = parser.parse

    def counted(text: str) -> Any:
        parses.append(text)
        return moto_parse(text)

    monkeypatch.setattr(parser, "parse", counted)

    # When three executions of one definition ask for their program
    programs = [stepfunctions.parsed_program(definition) for _ in range(3)]

    # Then it was parsed once, and no two executions share evaluation state
    assert len(parses) == 1
    assert len({id(program) for program in programs}) == 3
    assert len({id(program.states) for program in programs}) == 3
    assert type(programs[0]) is type(programs[1])


def test_a_program_that_cannot_be_pickled_is_deep_copied(definition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a parsed program pickle refuses (a component holding a lambda or a lock, say)
    def refuse(program: Any, protocol: int | None = None) -> bytes:
        raise TypeError(f"cannot pickle {type(program).__name__}")

    monkeypatch.setattr(stepfunctions.pickle, "dumps", refuse)

    # When two executions ask for their program
    first, second = stepfunctions.parsed_program(definition), stepfunctions.parsed_program(definition)

    # Then each still gets a copy of its own
    assert first is not second
    assert first.states is not second.states


def test_a_changed_definition_is_parsed_again(definition: str, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = registry.resolve_dotted(stepfunctions.ASL_PARSER)
    parses: list[str] = []
    moto_parse = parser.parse
    monkeypatch.setattr(parser, "parse", lambda text: parses.append(text) or moto_parse(text))

    stepfunctions.parsed_program(definition)
    stepfunctions.parsed_program(definition.replace('"Done"', '"Finished"'))

    assert len(parses) == 2


def test_task_states_share_one_client_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's interpreter addressing this server (as execute_state_machine does)
    monkeypatch.setattr(stepfunctions, "_endpoint_url", lambda: "http://127.0.0.1:9")

    # When Task states ask for clients
    first = stepfunctions.shared_client(region="us-east-1", service="lambda", state_credentials=None)
    second = stepfunctions.shared_client(region="us-east-1", service="lambda", state_credentials=object())
    other = stepfunctions.shared_client(region="us-east-1", service="dynamodb")

    # Then one client per service serves them all, tagged for the request log
    assert first is second
    assert other is not first
    assert requests_log.STATES_USER_AGENT in first.meta.config.user_agent_extra


def test_executions_invoke_through_the_interpreters_shared_client(local_cloud: dict[str, Any], aws: Aws) -> None:
    # Given the request log before two executions of the probe pipeline
    machine = local_cloud["outputs"]["StateMachineArn"]
    before = requests_log.read(local_cloud["endpoint"])

    # When both run to their end
    arns = [
        aws("stepfunctions").start_execution(
            stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps({"detail": {"object": {"key": "echo"}}})
        )["executionArn"]
        for _ in range(2)
    ]
    for arn in arns:
        wait_for(lambda arn=arn: aws("stepfunctions").describe_execution(executionArn=arn)["status"] == "SUCCEEDED")

    # Then each Task's Lambda call is the interpreter's own (its shared, tagged client), once per execution
    between = requests_log.read(local_cloud["endpoint"]).since(before)
    assert between.calls.get(("states", "lambda", "Invoke")) == 2


def test_a_json_path_is_parsed_once_and_still_finds_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's JSONPath parser, counted
    parses: list[str] = []
    jsonpath_parse = registry.resolve_dotted("jsonpath_ng.ext.parse")
    monkeypatch.setitem(
        registry.ORIGINALS,
        stepfunctions.JSON_PATH_PARSE,
        lambda path, *rest: parses.append(path) or jsonpath_parse(path),
    )
    path = f"$.detail.object.key{uuid.uuid4().hex[:6]}"
    document = {"detail": {"object": {path.rsplit(".", 1)[-1]: "found"}}}

    # When a state evaluates the same path three times
    found = [[match.value for match in stepfunctions.parse_json_path(path).find(document)] for _ in range(3)]

    # Then it was parsed once and finds the same value each time
    assert parses == [path]
    assert found == [["found"]] * 3
