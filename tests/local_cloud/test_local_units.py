"""Pure helpers of the local cloud (no server)."""

from __future__ import annotations

import json
import threading

import botocore.loaders
import botocore.session
import pytest

from conveyor_local import lambda_rules, server
from conveyor_local.lambda_telemetry import InvocationTarget, _dimension_sets
from conveyor_local.moto_patches import dynamodb, registry, stepfunctions
from conveyor_local.moto_patches.awslambda import choose_version
from conveyor_local.moto_patches.events import eventbridge_payload
from conveyor_local.moto_patches.s3 import effective_bucket_policy
from conveyor_local.provision import _merge_globals


def test_choose_version_splits_the_unit_interval_by_weight() -> None:
    weights = {"2": 0.1}
    assert choose_version("1", weights, draw=0.05) == "2"
    assert choose_version("1", weights, draw=0.1) == "1"
    assert choose_version("1", weights, draw=0.99) == "1"


def test_metric_dimension_sets_follow_aws() -> None:
    unqualified = _dimension_sets(InvocationTarget("fn", None), "$LATEST")
    aliased = _dimension_sets(InvocationTarget("fn", "live"), "7")
    assert unqualified == [
        [{"Name": "FunctionName", "Value": "fn"}],
        [{"Name": "FunctionName", "Value": "fn"}, {"Name": "Resource", "Value": "fn"}],
    ]
    assert aliased[-1] == [
        {"Name": "FunctionName", "Value": "fn"},
        {"Name": "Resource", "Value": "fn:live"},
        {"Name": "ExecutedVersion", "Value": "7"},
    ]


def test_eventbridge_payload_is_the_event_with_an_iso_time() -> None:
    event = {"id": "x", "time": 0, "ingestion-time": 5, "detail": {"a": 1}}
    assert json.loads(eventbridge_payload(event, {"Arn": "arn"})) == {
        "id": "x",
        "time": "1970-01-01T00:00:00Z",
        "detail": {"a": 1},
    }
    assert eventbridge_payload(event, {"Arn": "arn", "Input": '{"c": 1}'}) == '{"c": 1}'


def test_a_secure_transport_deny_does_not_apply_to_local_requests() -> None:
    deny_insecure = {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*"}
    deny_insecure["Condition"] = {"Bool": {"aws:SecureTransport": "false"}}
    deny_secure = {**deny_insecure, "Condition": {"Bool": {"aws:SecureTransport": ["true"]}}}
    unknown = {**deny_insecure, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}
    policy = {"Version": "2012-10-17", "Statement": [deny_insecure, deny_secure, unknown]}
    statements = effective_bucket_policy(policy)["Statement"]
    assert statements == [{key: value for key, value in deny_secure.items() if key != "Condition"}]


def test_globals_merge_like_sam() -> None:
    merged = _merge_globals(
        {"Timeout": 60, "Layers": ["g"], "Environment": {"Variables": {"A": "1", "B": "1"}}},
        {"Timeout": 300, "Layers": ["f"], "Environment": {"Variables": {"B": "2"}}},
    )
    assert merged == {"Timeout": 300, "Layers": ["g", "f"], "Environment": {"Variables": {"A": "1", "B": "2"}}}


def test_retry_sleeps_are_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a time scale of 1%
    slept: list[float] = []
    monkeypatch.setitem(registry.STATE, "time_scale", 0.01)
    monkeypatch.setattr(stepfunctions.time, "sleep", slept.append)

    # When moto's retrier sleeps through our stand-in for its time module
    stepfunctions.ScaledTime().sleep(30)

    # Then it sleeps 1% of the interval
    assert slept == [pytest.approx(0.3)]


def test_a_timeout_read_from_the_state_is_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a time scale of 1% and moto's own evaluation of a TimeoutSecondsPath (a day, a minute)
    monkeypatch.setitem(registry.STATE, "time_scale", 0.01)
    name = f"{stepfunctions.TIMEOUT_PATH}._eval_seconds"
    answers = {"day": 86400, "minute": 60}
    monkeypatch.setitem(registry.ORIGINALS, name, lambda self, env: answers[env])

    # When the patched evaluation runs
    day, minute = (stepfunctions.timeout_seconds_path(object(), key) for key in ("day", "minute"))

    # Then the approval window is 864 s of local time, in whole seconds and never below one
    assert (day, minute) == (864, 1)


def test_a_map_iteration_failing_with_a_states_error_keeps_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's own CustomErrorName (as the iteration worker had it before the patch)
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName

    monkeypatch.setitem(registry.ORIGINALS, f"{stepfunctions.ITERATION_WORKER}.CustomErrorName", CustomErrorName)

    # When the iteration's error is named
    timeout = stepfunctions.iteration_error_name("States.Timeout")
    custom = stepfunctions.iteration_error_name(error_name="ApprovalRejectedError")

    # Then States.Timeout is moto's States error (the Map's Catch sees it as AWS reports it), others as before
    assert isinstance(timeout, StatesErrorName)
    assert timeout.error_name == "States.Timeout"
    assert isinstance(custom, CustomErrorName)
    assert custom.error_name == "ApprovalRejectedError"


def test_the_environment_limit_is_4_kb_of_compact_json() -> None:
    # Given variables whose compact JSON ({"A":"xxx..."}) is exactly 4096 bytes, and one byte more
    at_limit = {"A": "x" * (4096 - len('{"A":""}'))}
    over_limit = {"A": "x" * (4097 - len('{"A":""}'))}

    # Then the first is accepted and the second refused with AWS's message
    assert lambda_rules.environment_violation(at_limit) is None
    message = lambda_rules.environment_violation(over_limit)
    assert message is not None
    assert message.startswith("Lambda was unable to configure your environment variables because")
    assert message.endswith(f"exceeded the 4KB limit. String measured: {json.dumps(over_limit, separators=(',', ':'))}")


def test_reserved_variable_names_are_exact_and_reported_sorted() -> None:
    assert lambda_rules.environment_violation({"aws_region": "lowercase is the caller's own"}) is None
    assert lambda_rules.environment_violation(None) is None
    message = lambda_rules.environment_violation({"LAMBDA_RUNTIME_DIR": "1", "_X_AMZN_TRACE_ID": "2", "OK": "3"})
    assert message is not None
    assert message.endswith("Reserved keys used in this request: LAMBDA_RUNTIME_DIR, _X_AMZN_TRACE_ID")


def test_code_sha256_is_a_precondition_only_when_given() -> None:
    assert lambda_rules.code_sha256_violation(None, "abc=") is None
    assert lambda_rules.code_sha256_violation("abc=", "abc=") is None
    assert lambda_rules.code_sha256_violation("old=", "new=") == (
        "CodeSHA256 (old=) is different from current CodeSHA256 in $LATEST (new=). "
        "Please try again with the CodeSHA256 in $LATEST."
    )


@pytest.mark.parametrize("read", ["get_item", "query", "scan"])
def test_a_dynamodb_read_never_runs_while_a_write_is_being_applied(monkeypatch: pytest.MonkeyPatch, read: str) -> None:
    # Given a write being applied (each patched write holds the DynamoDB lock for its whole call)
    name = f"{dynamodb.DYNAMODB_BACKEND}.{read}"
    ran = threading.Event()
    monkeypatch.setitem(registry.ORIGINALS, name, lambda backend, *args, **kwargs: ran.set())
    reader = threading.Thread(target=registry.PATCHES[name], args=(object(),))
    with dynamodb.DYNAMODB_LOCK:
        # When a read arrives meanwhile
        reader.start()
        # Then it cannot run until the write is done: it never sees an item half-written
        assert not ran.wait(0.2)
    reader.join()
    assert ran.is_set()


def test_the_server_reads_every_api_model_through_one_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given botocore as it comes (each session its own loader), then the server's process setup (the test process
    # has its own shared loader, restored afterwards)
    monkeypatch.setattr(botocore.session, "create_loader", botocore.loaders.create_loader)
    assert botocore.session.Session().get_component("data_loader") is not botocore.session.Session().get_component(
        "data_loader"
    )
    server.share_botocore_loader()

    # When two sessions read a model, as moto's imports and the interpreter's clients do
    first, second = botocore.session.Session(), botocore.session.Session()

    # Then they share one loader, so each model is parsed once
    assert first.get_component("data_loader") is second.get_component("data_loader")


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_a_snapshot_interval_must_be_positive(interval: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        server.main(["--snapshot-interval", interval])
    assert refused.value.code == 2
    assert "--snapshot-interval must be more than 0 seconds" in capsys.readouterr().err
