"""The AWS adapters' exact edges: moto where it is faithful, botocore Stubber for exact error paths."""

import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from boto3.session import Session
from botocore.client import BaseClient
from botocore.exceptions import ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from conveyor import runtime, settings
from conveyor.adapters import aws
from conveyor.adapters.cloudwatch import CloudWatchAlarms, CloudWatchLambdaMetrics
from conveyor.adapters.dynamodb_ledger import HISTORY_PAGE_ITEMS, DynamoLedger
from conveyor.adapters.dynamodb_locks import DynamoLocks, DynamoTargetOwners
from conveyor.adapters.http import UrllibProber
from conveyor.adapters.lambda_functions import LambdaTargets
from conveyor.adapters.s3 import S3Artifacts
from conveyor.adapters.sns import SnsNotifier
from conveyor.adapters.stepfunctions import StepFunctionsExecutions
from conveyor.domain.contracts import PackageRef, ServedRelease
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.errors import (
    BundleInvalidError,
    ConfigurationError,
    DeployFailedError,
    DeploymentNotOwnedError,
    DigestMismatchError,
    EntryChangedError,
    LedgerError,
    NotificationError,
    PipelineNotFoundError,
    StatusMoveRefusedError,
    TargetInvokeError,
    TargetNotFoundError,
    TargetNotManagedError,
    TargetReadError,
    TrafficShiftError,
)
from conveyor.domain.layout import release_key
from conveyor.domain.manifest import FunctionConfig, base64_digest
from conveyor.domain.outcome import Outcome
from conveyor.domain.ports import IN_FLIGHT_GRACE, NOTICE_IN_FLIGHT, FunctionState, StageWrites
from conveyor.domain.records import LockState, ReleaseRecord, StageEvent, Waiter

from tests.functional.conftest import ACCOUNT, BUCKET, FUNCTION, REGION, TABLE, Cloud

TARGET_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"


def _stream(payload: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(payload), len(payload))


def test_the_runtime_builds_every_adapter_from_one_session(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every client a boto3 session builds is counted, with the session that built it
    built: list[tuple[int, str]] = []
    real_client = Session.client

    def counting_client(self: Session, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append((id(self), service))
        return real_client(self, service, *args, **kwargs)

    monkeypatch.setattr(Session, "client", counting_client)
    # When a stage function asks for the ledger, the locks, the target owners, the targets and the notifier
    runtime.ledger(), runtime.locks(), runtime.target_owners(), runtime.targets(), runtime.notifier()
    # Then one session built them, with one DynamoDB client for the three adapters on the ledger table
    assert len({session for session, _ in built}) == 1
    assert sorted(service for _, service in built) == ["dynamodb", "lambda", "sns"]


def test_an_adapter_works_in_the_session_it_is_given(cloud: Cloud) -> None:
    # Given the ledger table exists in the runtime's region only, and a session for another region
    elsewhere = Session(region_name="eu-west-1")
    # When a ledger is built from that session, Then it looks for the table there (and does not find it)
    with pytest.raises(LedgerError, match="ledger get failed"):
        DynamoLedger(elsewhere, TABLE).get("d-1")
    # while one built from the runtime's session finds the table (and no such deployment)
    assert DynamoLedger(runtime.session(), TABLE).get("d-1") is None


def test_settings_name_every_missing_variable(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_TABLE")
    monkeypatch.delenv("NOTIFICATION_TOPIC_ARN")
    settings.settings.cache_clear()
    with pytest.raises(ConfigurationError) as raised:
        settings.settings()
    assert "LEDGER_TABLE: Field required" in str(raised.value)
    assert "NOTIFICATION_TOPIC_ARN: Field required" in str(raised.value)


def test_runtime_factories_are_built_once(cloud: Cloud) -> None:
    assert runtime.ledger() is runtime.ledger()
    assert runtime.targets() is runtime.targets()


def test_read_bundle_of_a_vanished_object_is_a_bundle_error(cloud: Cloud) -> None:
    with pytest.raises(BundleInvalidError, match="the pushed object no longer exists"):
        runtime.artifacts().read_bundle(BUCKET, "artifacts/hello/9.9.9.zip", None)


def test_read_bundle_reads_the_exact_version_pushed(cloud: Cloud) -> None:
    # Given two pushes to one key
    first = cloud.put_bundle(b"first push")
    cloud.put_bundle(b"second push")
    # Then the version in the event is what is read, not the latest
    assert runtime.artifacts().read_bundle(BUCKET, "artifacts/hello/1.0.0.zip", first["VersionId"]) == b"first push"


def test_an_oversize_bundle_is_refused_in_one_call_without_reading_its_body(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a pushed object larger than the bundle limit
    pushed = cloud.put_bundle(b"x" * 64)
    artifacts = S3Artifacts(runtime.session(), max_bundle_bytes=63)
    calls = _counted_calls(monkeypatch)
    monkeypatch.setattr(StreamingBody, "read", lambda *_: pytest.fail("the oversize body was read"))
    # When it is read, then it is refused by its length alone, in one call
    with pytest.raises(BundleInvalidError, match="64 bytes exceeds the bundle limit of 63"):
        artifacts.read_bundle(BUCKET, "artifacts/hello/1.0.0.zip", pushed["VersionId"])
    assert calls == ["GetObject"]


def test_read_pipeline_that_is_not_registered(cloud: Cloud) -> None:
    with pytest.raises(PipelineNotFoundError, match=r"conveyor pipeline apply pipelines/hello\.yaml"):
        runtime.artifacts().read_pipeline(BUCKET, "hello")


def test_put_release_stores_the_package_with_its_checksum(cloud: Cloud) -> None:
    package = b"PK fake package"
    key = release_key("hello", hashlib.sha256(package).hexdigest())
    version_id = runtime.artifacts().put_release(BUCKET, key, package, hashlib.sha256(package).hexdigest())
    head = cloud.s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentLength"] == len(package)
    assert version_id is not None
    assert version_id == head["VersionId"]


def test_put_release_never_replaces_a_stored_release(cloud: Cloud) -> None:
    # Given a release stored at its content address
    package = b"PK the validated package"
    sha = hashlib.sha256(package).hexdigest()
    key = release_key("hello", sha)
    first = runtime.artifacts().put_release(BUCKET, key, package, sha)

    # When the same content is stored again (another version of it, a re-run, a concurrent validation)
    again = runtime.artifacts().put_release(BUCKET, key, package, sha)

    # Then nothing is written: the one stored object version is the answer both times
    versions = cloud.s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
    assert [v["VersionId"] for v in versions] == [first]
    assert again == first


def test_put_release_refuses_a_stored_object_with_other_content(cloud: Cloud) -> None:
    # Given the content address holding other bytes (written outside Conveyor)
    package = b"PK the validated package"
    sha = hashlib.sha256(package).hexdigest()
    key = release_key("hello", sha)
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=b"PK something else")

    # When the release is stored, Then it is refused and the object is left as it was
    with pytest.raises(DigestMismatchError, match=f"already holds content whose sha256 is not {sha}"):
        runtime.artifacts().put_release(BUCKET, key, package, sha)
    assert cloud.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"PK something else"


def test_update_code_reads_the_validated_object_version(cloud: Cloud) -> None:
    # Given a release stored as object version v1
    targets = LambdaTargets(runtime.session())
    package = PackageRef(bucket=BUCKET, key="releases/hello/x/package.zip", sha256="ab" * 32, size=1, version_id="v1")
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        # Then Lambda is asked for exactly that object version
        stub.add_response(
            "update_function_code",
            {"LastUpdateStatus": "InProgress"},
            {
                "FunctionName": "hello-staging",
                "S3Bucket": BUCKET,
                "S3Key": "releases/hello/x/package.zip",
                "S3ObjectVersion": "v1",
            },
        )
        # And, as AWS answers the update in progress, waited for until it is done
        stub.add_response("get_function_configuration", {"LastUpdateStatus": "Successful"})
        # When the code is updated
        targets.update_code("hello-staging", package, None)
        stub.assert_no_pending_responses()


def test_an_update_lambda_answers_as_done_is_not_polled(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    package = PackageRef(bucket=BUCKET, key="releases/hello/x/package.zip", sha256="ab" * 32, size=1, version_id="v1")
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_response("update_function_code", {"LastUpdateStatus": "Successful"})
        targets.update_code("hello-staging", package, None)
        stub.assert_no_pending_responses()


def test_update_code_writes_only_what_differs_from_what_deploy_read(cloud: Cloud) -> None:
    # Given $LATEST as Deploy read it: the release's code already, with one environment variable of its own
    targets = LambdaTargets(runtime.session())
    package = PackageRef(bucket=BUCKET, key="releases/hello/x/package.zip", sha256="ab" * 32, size=1, version_id="v1")
    current = FunctionState(
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging",
        code_sha256=base64_digest(package.sha256),
        memory_mb=128,
        timeout_seconds=3,
        environment={"KEPT": "yes"},
    )
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        # Then only the configuration is written (no upload, no second read), the release's variable merged in
        stub.add_response(
            "update_function_configuration",
            {"LastUpdateStatus": "Successful"},
            {
                "FunctionName": "hello-staging",
                "MemorySize": 256,
                "Environment": {"Variables": {"KEPT": "yes", "APP_VERSION": "1.0.1"}},
            },
        )
        # When the release asks for more memory and a variable
        config = FunctionConfig(memory_mb=256, environment={"APP_VERSION": "1.0.1"})
        targets.update_code("hello-staging", package, config, current)
        stub.assert_no_pending_responses()


def test_ensure_managed_on_a_missing_function(cloud: Cloud) -> None:
    with pytest.raises(TargetNotFoundError, match="'nope' does not exist"):
        LambdaTargets(runtime.session()).ensure_managed("nope", "conveyor:managed")


def test_ensure_managed_when_iam_denies_reading_an_untagged_function(cloud: Cloud) -> None:
    # On AWS, Conveyor's lambda:GetFunction is conditioned on the managed tag: an untagged function is denied
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("get_function", "AccessDeniedException", "not authorized", 403)
        with pytest.raises(TargetNotManagedError, match="'hello-hook' is not tagged conveyor:managed=true"):
            LambdaTargets(runtime.session()).ensure_managed("hello-hook", "conveyor:managed")


def test_ensure_managed_names_any_other_failure_as_a_read_error(cloud: Cloud) -> None:
    # A stage sees the port's errors only: Lambda throttling GetFunction past the SDK's retries is named, not leaked
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("get_function", "TooManyRequestsException", "Rate exceeded", 429)
        with pytest.raises(TargetReadError, match=r"reading target function 'hello-hook' failed: .*Rate exceeded"):
            LambdaTargets(runtime.session()).ensure_managed("hello-hook", "conveyor:managed")


def test_alias_version_of_a_missing_alias_is_none(cloud: Cloud) -> None:
    assert LambdaTargets(runtime.session()).alias_version("hello-staging", "canary") is None
    assert LambdaTargets(runtime.session()).alias_version("hello-staging", "live") == "1"


def test_invoke_uses_a_qualified_name_and_reports_function_errors(cloud: Cloud) -> None:
    # Given Lambda answers with an unhandled error from version 2 (exact wire shape via Stubber)
    targets = LambdaTargets(runtime.session())
    error = json.dumps({"errorType": "ValueError", "errorMessage": "bad"}).encode()
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "2", "Payload": _stream(error)},
            {"FunctionName": "hello-staging:2", "Payload": b'{"ping": true}'},
        )
        invocation = targets.invoke("hello-staging", "2", {"ping": True})
    # Then the error, the version that ran and the decoded payload are reported
    assert invocation.function_error == "Unhandled"
    assert invocation.executed_version == "2"
    assert invocation.payload == {"errorType": "ValueError", "errorMessage": "bad"}


def test_invoke_keeps_a_non_json_answer_as_text(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "ExecutedVersion": "2", "Payload": _stream(b"<html>")})
        assert targets.invoke("hello-staging", "2", {}).payload == "<html>"


def test_an_invoke_lambda_refuses_is_an_invoke_error_naming_the_function(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("invoke", "ResourceNotFoundException", "Function not found: hello-staging:9", 404)
        with pytest.raises(TargetInvokeError, match=r"invoking hello-staging:9 failed: .*Function not found"):
            targets.invoke("hello-staging", "9", {})


class _CutStream(io.RawIOBase):
    """An answer whose connection is lost while it is read."""

    def read(self, size: int = -1) -> bytes:
        raise ReadTimeoutError(endpoint_url="https://lambda.us-east-1.amazonaws.com")


def test_an_answer_lost_while_it_is_read_is_an_invoke_error(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "ExecutedVersion": "2", "Payload": StreamingBody(_CutStream(), 9)}
        )
        with pytest.raises(TargetInvokeError, match=r"invoking hello-staging:2 failed: Read timeout"):
            targets.invoke("hello-staging", "2", {})


def test_publish_version_failure_is_a_deploy_error(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("publish_version", "PreconditionFailedException", "CodeSha256 does not match")
        with pytest.raises(DeployFailedError, match="publishing a version of 'hello-staging' failed"):
            targets.publish_version("hello-staging", "abc=", "conveyor")


def test_reading_the_served_release_fails_with_a_named_error_the_state_retries(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("get_alias", "ServiceException", "unavailable", 500)
        stub.add_client_error("get_function_configuration", "AccessDeniedException", "not allowed", 403)
        with pytest.raises(TargetReadError, match="reading alias hello-staging:live failed"):
            targets.alias_version("hello-staging", "live")
        with pytest.raises(TargetReadError, match="reading version 3 of 'hello-staging' failed"):
            targets.version_description("hello-staging", "3")


def test_failed_update_is_a_deploy_error(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_response("update_function_code", {"LastUpdateStatus": "InProgress"})
        stub.add_response("get_function_configuration", {"LastUpdateStatus": "Failed"})
        with pytest.raises(DeployFailedError, match="reported the update of 'hello-staging' as Failed"):
            targets.update_code(
                "hello-staging",
                PackageRef(bucket=BUCKET, key="releases/hello/x/package.zip", sha256="ab" * 32, size=1),
                None,
            )


def test_route_alias_failure_is_a_traffic_shift_error(cloud: Cloud) -> None:
    targets = LambdaTargets(runtime.session())
    with Stubber(aws.client(runtime.session(), "lambda")) as stub:
        stub.add_client_error("update_alias", "AccessDeniedException", "not authorized")
        with pytest.raises(TrafficShiftError, match="moving alias hello-staging:live to 2 failed"):
            targets.route_alias("hello-staging", "live", "2", None)


def test_routing_an_alias_to_a_version_that_does_not_exist_names_the_version(cloud: Cloud) -> None:
    # On moto, as on AWS: UpdateAlias and then CreateAlias both answer ResourceNotFoundException for it
    targets = LambdaTargets(runtime.session())
    with pytest.raises(TargetNotFoundError, match="version 99 of hello-staging does not exist"):
        targets.route_alias("hello-staging", "live", "99", None)
    assert targets.alias_version("hello-staging", "live") == "1"


def test_alarm_states_cover_metric_and_composite_alarms(cloud: Cloud) -> None:
    cloud.cloudwatch.put_metric_alarm(
        AlarmName="errors",
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    cloud.cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="t")
    assert CloudWatchAlarms(runtime.session()).states(["errors", "missing"]) == {"errors": "ALARM"}


def test_notification_subject_is_made_sns_safe(cloud: Cloud) -> None:
    # Given a subject with non-ASCII characters, a line break and more than 100 characters
    SnsNotifier(runtime.session(), cloud.topic_arn).publish(
        "déploiement\n" + "x" * 200, "body", {"app": "hello", "empty": ""}
    )
    (message,) = cloud.notifications()
    assert message["Subject"].startswith("d?ploiement?x")
    assert len(message["Subject"]) == 100
    assert set(message["MessageAttributes"]) == {"app"}


def test_notification_failure_is_a_notification_error(cloud: Cloud) -> None:
    notifier = SnsNotifier(runtime.session(), cloud.topic_arn)
    with Stubber(aws.client(runtime.session(), "sns")) as stub:
        stub.add_client_error("publish", "AuthorizationError", "kms:GenerateDataKey denied")
        with pytest.raises(NotificationError, match="kms:GenerateDataKey denied"):
            notifier.publish("s", "m", {})


def test_ledger_errors_are_ledger_errors(cloud: Cloud) -> None:
    ledger = DynamoLedger(runtime.session(), "no-such-table")
    with pytest.raises(LedgerError, match="ledger finish failed"):
        ledger.finish("d-x", Outcome.FAILED)


def test_ledger_finish_of_an_unknown_deployment_fails(cloud: Cloud) -> None:
    with pytest.raises(LedgerError, match="ConditionalCheckFailed"):
        DynamoLedger(runtime.session(), TABLE).finish("d-unknown", Outcome.FAILED)


def _start_deployment(ledger: DynamoLedger, n: int, environments: dict[str, dict[str, Any]] | None = None) -> str:
    """Record deployment ``d-<n>`` of hello ``<n>`` (with ``environments``' entries); returns its id."""
    from conveyor.domain.pushed_object import PushedObject

    pushed = PushedObject(
        deployment_id=f"d-{n}",
        bucket=BUCKET,
        key=f"artifacts/hello/{n}.zip",
        version_id=None,
        etag=None,
        size=None,
        requester=None,
    )
    ledger.start(pushed.ledger_record("arn", "hello", str(n)), environments=environments)
    return pushed.deployment_id


def test_a_stale_owner_is_taken_over_only_while_the_deployment_is_unfinished(cloud: Cloud) -> None:
    # Given a deployment its execution ("arn") owns and has just ended SUCCEEDED: a duplicate read it IN_PROGRESS
    # before that, then saw the execution no longer RUNNING (it had ended, having finished the deployment)
    from conveyor.domain.pushed_object import PushedObject

    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 11)
    ledger.finish(deployment, Outcome.SUCCEEDED)
    seed = PushedObject(
        deployment_id=deployment,
        bucket=BUCKET,
        key="artifacts/hello/11.zip",
        version_id=None,
        etag=None,
        size=None,
        requester=None,
    ).ledger_record("arn:duplicate", "hello", "11")
    retryable = frozenset(Outcome) - {Outcome.SUCCEEDED, Outcome.IN_PROGRESS, Outcome.QUEUED}
    # When the duplicate takes over from the "stale" owner, Then it is refused: a success is never re-run
    assert ledger.claim(seed, replaceable=retryable, stale_owner="arn") is False
    record = ledger.get(deployment)
    assert record is not None
    assert (record.status, record.execution_arn, record.attempts) == (Outcome.SUCCEEDED, "arn", 1)
    # And while the deployment is unfinished, the same takeover is taken
    other = _start_deployment(ledger, 12)
    assert ledger.claim(seed.model_copy(update={"deployment_id": other}), replaceable=retryable, stale_owner="arn")


def test_ledger_history_is_newest_first(cloud: Cloud) -> None:
    ledger = DynamoLedger(runtime.session(), TABLE)
    ids = [_start_deployment(ledger, n) for n in range(3)]
    assert [r.deployment_id for r in ledger.history(app="hello")] == ids[::-1]
    assert [r.deployment_id for r in ledger.history()] == ids[::-1]
    assert ledger.history(app="other") == []


def test_an_environment_status_is_stored_as_the_string_it_always_was(cloud: Cloud) -> None:
    # Given a deployment whose staging entry a stage records with the typed status
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 8)
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.SHIFTING, "weight": 10})
    # Then the item holds the same plain values as before the type existed
    item = cloud.dynamodb.Table(TABLE).get_item(Key={"pk": f"DEPLOYMENT#{deployment}", "sk": "META"})["Item"]
    assert item["environments"] == {"staging": {"status": "SHIFTING", "weight": 10}}
    # and it reads back typed
    record = ledger.get(deployment)
    assert record is not None
    assert record.environments["staging"].status is EnvironmentStatus.SHIFTING


def test_an_environment_entry_is_created_whole_then_updated_in_one_write(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment, and every DynamoDB write counted
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 9)
    writes = _counted_calls(monkeypatch)

    # When its staging entry is written for the first time, then again
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.LOCKED, "lock": {"token": 1}})
    first = len(writes)
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.DEPLOYED, "version_after": "2"})

    # Then the later write is one call, and it kept what the first one wrote
    assert len(writes) - first == 1
    item = cloud.dynamodb.Table(TABLE).get_item(Key={"pk": f"DEPLOYMENT#{deployment}", "sk": "META"})["Item"]
    assert item["environments"] == {"staging": {"status": "DEPLOYED", "lock": {"token": 1}, "version_after": "2"}}

    # And a deployment that is not in the ledger is a named error, not a new item
    with pytest.raises(LedgerError, match="d-missing is not in the ledger"):
        ledger.update_environment("d-missing", "staging", {"status": EnvironmentStatus.LOCKED})
    assert "Item" not in cloud.dynamodb.Table(TABLE).get_item(Key={"pk": "DEPLOYMENT#d-missing", "sk": "META"})


def test_an_environment_write_expecting_what_was_read_is_a_compare_and_set(cloud: Cloud) -> None:
    # Given a gate waiting on a token, with one approval recorded
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 10)
    waiting = {"kind": "approval", "task_token": "t-1", "approvals": [{"by": "alice", "at": "2026-12-06T03:00:00"}]}
    ledger.update_environment(
        deployment, "staging", {"status": EnvironmentStatus.AWAITING_APPROVAL, "approval": waiting}
    )

    # When a decision is written expecting the gate as read, it is written
    decided = {**waiting, "decision": "approve"}
    ledger.update_environment(
        deployment,
        "staging",
        {"status": EnvironmentStatus.APPROVED, "approval": decided},
        expected={"approval": waiting},
    )
    # And a second one that read the same gate is refused by name, and writes nothing
    with pytest.raises(EntryChangedError, match=rf"{deployment} in staging changed since it was read \(approval\)"):
        ledger.update_environment(
            deployment,
            "staging",
            {"status": EnvironmentStatus.REJECTED, "approval": {**waiting, "decision": "reject"}},
            expected={"approval": waiting},
        )
    entry = ledger.get(deployment).environments["staging"]  # type: ignore[union-attr]
    assert (entry.status, entry.approval["decision"]) == (EnvironmentStatus.APPROVED, "approve")


def test_an_environment_write_for_an_owner_is_refused_once_another_attempt_owns_the_deployment(cloud: Cloud) -> None:
    # Given a deployment whose attempt is execution "arn" (``_start_deployment``), waiting in staging's queue
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 11, {"staging": {"status": EnvironmentStatus.QUEUED}})

    # When a closing write names another execution as the owner, Then it is refused by name and writes nothing
    with pytest.raises(DeploymentNotOwnedError, match=rf"{deployment} is no longer the attempt of arn:stopped"):
        ledger.update_environment(
            deployment, "staging", {"status": EnvironmentStatus.NOT_DEPLOYED}, owner="arn:stopped"
        )
    assert ledger.get(deployment).environments["staging"].status is EnvironmentStatus.QUEUED  # type: ignore[union-attr]
    # And the owner's own write goes through
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.NOT_DEPLOYED}, owner="arn")
    assert ledger.get(deployment).environments["staging"].status is EnvironmentStatus.NOT_DEPLOYED  # type: ignore[union-attr]


def _counted_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every botocore call made from now on, by operation name."""
    calls: list[str] = []
    original = BaseClient._make_api_call

    def count(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", count)
    return calls


def _stage_event(deployment: str, environment: str) -> StageEvent:
    now = datetime.now(UTC)
    return StageEvent(
        deployment_id=deployment,
        stage="ShiftTraffic",
        environment=environment,
        status="succeeded",
        started_at=now,
        finished_at=now,
        duration_ms=1.0,
        detail={"weight": 100},
    )


def _served(deployment: str) -> ServedRelease:
    now = datetime.now(UTC)
    return ServedRelease(
        function_name="hello-staging",
        alias="live",
        app="hello",
        version="1.0.0",
        deployment_id=deployment,
        sha256="a" * 64,
        lambda_version="2",
        built_at=now,
        recorded_at=now,
        recorded_by="ShiftTraffic",
    )


def test_a_stage_records_its_event_entry_and_served_release_in_one_write(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment whose environments validation created pending
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 10)
    pending = {"status": EnvironmentStatus.PENDING, "function_name": "hello-staging", "alias": "live"}
    _start_deployment(ledger, 10, environments={"staging": pending})
    calls = _counted_calls(monkeypatch)

    # When a stage records its event with the environment's new state and the release the alias now serves
    writes = StageWrites(
        environment={"status": EnvironmentStatus.SHIFTING, "weight": 100}, served=[_served(deployment)]
    )
    ledger.record_event(_stage_event(deployment, "staging"), writes)

    # Then it took one call, and all three are in the ledger
    assert calls == ["TransactWriteItems"]
    record = ledger.get(deployment)
    assert record is not None
    assert [event.stage for event in record.events] == ["ShiftTraffic"]
    assert record.environments["staging"].model_dump(mode="json") == {
        "status": "SHIFTING",
        "function_name": "hello-staging",
        "alias": "live",
        "weight": 100,
    }
    served = ledger.served("hello-staging", "live")
    assert served is not None
    assert served.deployment_id == deployment


def test_the_last_stage_records_its_event_and_the_outcome_in_one_write(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment in progress, and the ledger's calls counted
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 15)
    calls = _counted_calls(monkeypatch)

    # When its last stage records its event with the outcome
    finalize = _stage_event(deployment, "staging").model_copy(update={"stage": "Finalize", "environment": None})
    ledger.record_event(finalize, StageWrites(outcome=Outcome.SUCCEEDED))

    # Then it took one call, and both are in the ledger
    assert calls == ["TransactWriteItems"]
    record = ledger.get(deployment)
    assert record is not None
    assert [event.stage for event in record.events] == ["Finalize"]
    assert record.status is Outcome.SUCCEEDED
    assert record.finished_at is not None

    # And an environment's entry cannot be written with it (one transaction writes the deployment's item once)
    with pytest.raises(ValueError, match="not written in one stage write"):
        StageWrites(environment={"status": EnvironmentStatus.LIVE}, outcome=Outcome.SUCCEEDED)


def test_a_stage_write_for_an_entry_not_created_yet_creates_it(cloud: Cloud) -> None:
    # Given a deployment recorded before validation created its entries (no staging entry)
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 11)
    # When a stage records its event with the entry's fields
    ledger.record_event(_stage_event(deployment, "staging"), StageWrites(environment={"status": "SHIFTING"}))
    # Then the event is recorded once and the entry is created
    record = ledger.get(deployment)
    assert record is not None
    assert [event.stage for event in record.events] == ["ShiftTraffic"]
    assert record.environments["staging"].status is EnvironmentStatus.SHIFTING


def test_a_started_attempt_records_the_manifest_and_every_pending_entry_in_one_write(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment whose earlier attempt reached staging
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 12)
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.LOCKED})
    record = ledger.get(deployment)
    assert record is not None
    calls = _counted_calls(monkeypatch)
    # When validation starts the next attempt with what the manifest says and the pending entries
    pending = {"status": EnvironmentStatus.PENDING}
    ledger.start(
        record.model_copy(update={"package_sha256": "b" * 64, "built_at": record.created_at}),
        environments={"staging": pending, "production": pending},
    )
    # Then it took one call: both environments are pending (nothing of the earlier attempt is left), the fields set
    assert calls == ["UpdateItem"]
    record = ledger.get(deployment)
    assert record is not None
    assert {name: env.status for name, env in record.environments.items()} == {
        "staging": EnvironmentStatus.PENDING,
        "production": EnvironmentStatus.PENDING,
    }
    assert (record.package_sha256, record.built_at) == ("b" * 64, record.created_at)


def test_a_status_and_an_entry_move_in_one_write_or_each_as_alone(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment of execution "arn" whose staging entry is PENDING (as validation leaves every entry), and
    # the ledger's writes counted
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 14)
    for env in ("staging", "production"):
        ledger.update_environment(deployment, env, {"status": EnvironmentStatus.PENDING})
    writes: list[str] = []
    table_update = ledger._table.update_item
    monkeypatch.setattr(
        ledger._table, "update_item", lambda **kwargs: writes.append("UpdateItem") or table_update(**kwargs)
    )
    locked = {"status": EnvironmentStatus.LOCKED, "lock": {"token": 1, "lease_seconds": 60}}

    def move(status: Outcome, owner: str, environment: str, entry: dict[str, Any]) -> bool:
        return ledger.set_status_with_entry(
            deployment, status, owner=owner, expected=(Outcome.IN_PROGRESS,), environment=environment, entry=entry
        )

    # When its owner moves it to IN_PROGRESS with staging LOCKED
    moved = move(Outcome.IN_PROGRESS, "arn", "staging", locked)

    # Then both are written, in one write
    record = ledger.get(deployment)
    assert record is not None
    assert moved
    assert writes == ["UpdateItem"]
    assert (record.status, record.environments["staging"].status) == (Outcome.IN_PROGRESS, EnvironmentStatus.LOCKED)

    # And another execution's move leaves the status as it is and writes the entry, as the two writes alone do
    moved = move(Outcome.QUEUED, "arn:other", "production", {"status": EnvironmentStatus.QUEUED, "position": 2})
    record = ledger.get(deployment)
    assert record is not None
    assert not moved
    assert (record.status, record.environments["production"].status) == (Outcome.IN_PROGRESS, EnvironmentStatus.QUEUED)

    # And an entry that may not move is refused by name, as update_environment refuses it
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.SUPERSEDED})
    with pytest.raises(StatusMoveRefusedError, match="may not move to LOCKED"):
        move(Outcome.IN_PROGRESS, "arn", "staging", locked)


def test_a_lock_taken_is_recorded_with_the_gates_event_in_one_write_or_each_as_alone(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a deployment of execution "arn" whose environments are pending, and the ledger's calls counted
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 16, {"staging": {"status": EnvironmentStatus.PENDING}})
    calls = _counted_calls(monkeypatch)
    opened = _stage_event(deployment, "staging").model_copy(update={"stage": "CheckGates"})

    def lock(status: Outcome, owner: str, event: StageEvent) -> bool:
        locked = {"status": EnvironmentStatus.LOCKED, "lock": {"token": 1, "lease_seconds": 60}}
        return ledger.set_status_with_entry(
            deployment,
            status,
            owner=owner,
            expected=(Outcome.IN_PROGRESS,),
            environment="staging",
            entry=locked,
            event=event,
        )

    # When AcquireLock records staging LOCKED with the gates' CheckGates event
    moved = lock(Outcome.IN_PROGRESS, "arn", opened)

    # Then all of it took one call
    assert (moved, calls) == (True, ["TransactWriteItems"])
    record = ledger.get(deployment)
    assert record is not None
    assert record.environments["staging"].status is EnvironmentStatus.LOCKED
    assert [event.stage for event in record.events] == ["CheckGates"]

    # And when the status may not move (another execution's), the entry and the event are still written, each alone
    moved = lock(
        Outcome.QUEUED,
        "arn:other",
        opened.model_copy(update={"finished_at": opened.finished_at + timedelta(seconds=1)}),
    )
    record = ledger.get(deployment)
    assert record is not None
    assert not moved
    assert record.status is Outcome.IN_PROGRESS
    assert [event.stage for event in record.events] == ["CheckGates", "CheckGates"]


def test_the_ledger_refuses_a_status_move_the_table_forbids_in_either_write(cloud: Cloud) -> None:
    # Given an environment the reconciler recorded ROLLED_BACK
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 13)
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.SHIFTING, "weight": 10})
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.ROLLED_BACK, "weight": 0})

    # When a late stage writes SHIFTING over it, alone or beside its event and a served release
    with pytest.raises(StatusMoveRefusedError, match=f"{deployment} in staging is recorded ROLLED_BACK"):
        ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.SHIFTING, "weight": 100})
    late = StageWrites(environment={"status": EnvironmentStatus.SHIFTING, "weight": 100}, served=[_served(deployment)])
    with pytest.raises(StatusMoveRefusedError, match="may not move to SHIFTING"):
        ledger.record_event(_stage_event(deployment, "staging"), late)

    # Then the entry still says ROLLED_BACK, and the late stage's release is not recorded as served
    record = ledger.get(deployment)
    assert record is not None
    assert record.environments["staging"].model_dump(mode="json") == {"status": "ROLLED_BACK", "weight": 0}
    assert ledger.served("hello-staging", "live") is None
    # while a move the table allows is written (a retry may rewrite the same status)
    ledger.update_environment(deployment, "staging", {"status": EnvironmentStatus.ROLLED_BACK, "weight": 0})


def test_a_skipped_execution_is_listed_once_however_often_its_stage_runs(cloud: Cloud) -> None:
    # Given a deployment, and a duplicate execution whose ClaimDeployment ran twice (a retry after a timeout)
    ledger = DynamoLedger(runtime.session(), TABLE)
    deployment = _start_deployment(ledger, 7)
    entry = {"execution_arn": "arn:exec:dup", "outcome": "SKIPPED_DUPLICATE", "reason": "another owns it"}
    ledger.record_skip(deployment, entry)
    ledger.record_skip(deployment, entry)
    ledger.record_skip(deployment, entry | {"execution_arn": "arn:exec:other"})

    # Then each execution is counted once
    record = ledger.get(deployment)
    assert record is not None
    assert record.skipped_count == 2
    assert [e["execution_arn"] for e in record.skipped] == ["arn:exec:dup", "arn:exec:other"]


def test_ledger_history_by_status_reaches_past_many_newer_records(cloud: Cloud) -> None:
    # Given one success followed by more failures than a page of history holds
    ledger = DynamoLedger(runtime.session(), TABLE)
    for n in range(60):
        ledger.finish(_start_deployment(ledger, n), Outcome.SUCCEEDED if n == 0 else Outcome.FAILED)

    # When the newest success is asked for
    found = ledger.history(app="hello", limit=1, status=Outcome.SUCCEEDED)

    # Then it is found, not hidden behind the 59 newer failures
    assert [r.deployment_id for r in found] == ["d-0"]
    assert len(ledger.history(app="hello", limit=50)) == 50


def test_ledger_history_reads_the_newest_few_not_the_whole_app(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an app with 60 successful deployments, and every page the ledger reads counted
    ledger = DynamoLedger(runtime.session(), TABLE)
    for n in range(60):
        ledger.finish(_start_deployment(ledger, n), Outcome.SUCCEEDED)
    scanned: list[int] = []
    query = ledger._table.query

    def counted(**kwargs: Any) -> Any:
        response = query(**kwargs)
        scanned.append(response["ScannedCount"])
        return response

    monkeypatch.setattr(ledger._table, "query", counted)

    # When a stage asks for the newest two successes (what ValidateArtifact asks)
    found = ledger.history(app="hello", limit=2, status=Outcome.SUCCEEDED)

    # Then they are found in one page of the newest few items, not the app's 60 deployments
    assert [r.deployment_id for r in found] == ["d-59", "d-58"]
    assert scanned == [HISTORY_PAGE_ITEMS]


def test_dynamo_locks_take_a_lock_only_when_free_expired_or_still_exactly_the_stale_hold(cloud: Cloud) -> None:
    # Given a lock held by execution A for 60 s (token 1)
    locks = DynamoLocks(runtime.session(), TABLE)

    def take(holder: str, now: float, stale: LockState | None = None) -> int | None:
        return locks.try_acquire(
            TARGET_ARN,
            holder=holder,
            deployment_id=f"d-{holder}",
            app="hello",
            environment="staging",
            lease_seconds=60,
            now=now,
            stale=stale,
        )

    assert take("A", now=0) == 1

    # Then B cannot take it while the lease runs, nor by naming another holder or A's hold with another token
    assert take("B", now=10) is None
    assert take("B", now=10, stale=LockState(holder="C", token=1)) is None
    assert take("B", now=10, stale=LockState(holder="A", token=2)) is None
    # but can by naming A's hold exactly (A's execution ended), or once the lease ran out, each with a new token
    assert take("B", now=10, stale=LockState(holder="A", token=1)) == 2
    assert take("C", now=71) == 3
    state = locks.get(TARGET_ARN)
    assert state is not None
    assert (state.holder, state.deployment_id, state.token) == ("C", "d-C", 3)
    assert (state.app, state.environment) == ("hello", "staging")


def waiter(n: int, **fields: Any) -> Waiter:
    values: dict[str, Any] = {
        "key": f"2024-05-14T09:0{n}:00.000000Z#run-{n}",
        "holder": f"run-{n}",
        "deployment_id": f"d-{n}",
        "app": "hello",
        "environment": "staging",
        "version": f"1.0.{n}",
        "first_seen": 100.0 + n,
        "last_seen": 100.0 + n,
    }
    return Waiter(**(values | fields))


def test_a_partial_waiter_item_is_skipped_not_fatal(cloud: Cloud) -> None:
    # Given a queue with a whole waiter and a husk (what a reader saw of a waiter half-written)
    locks = DynamoLocks(runtime.session(), TABLE)
    locks.enqueue(TARGET_ARN, waiter(1))
    cloud.dynamodb.Table(TABLE).put_item(
        Item={"pk": f"LOCK#{TARGET_ARN}", "sk": "WAIT#2024-05-14T09:02:00.000000Z#run-2", "superseded_by": "d-3"}
    )

    # When the queue is read
    queue = locks.waiters(TARGET_ARN)

    # Then the husk is left out instead of failing every reader ("5 validation errors for Waiter")
    assert [w.deployment_id for w in queue] == ["d-1"]


def test_a_lock_and_its_queue_are_read_together_as_get_and_waiters_read_them(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lock held by one deployment, two waiters and a husk, and the calls to the table counted
    locks = DynamoLocks(runtime.session(), TABLE)
    assert locks.read(TARGET_ARN) == (None, [])
    held = {"holder": "arn:exec:a", "deployment_id": "d-0", "app": "hello", "environment": "staging"}
    token = locks.try_acquire(TARGET_ARN, **held, lease_seconds=60, now=1)
    locks.enqueue(TARGET_ARN, waiter(2))
    locks.enqueue(TARGET_ARN, waiter(1))
    cloud.dynamodb.Table(TABLE).put_item(Item={"pk": f"LOCK#{TARGET_ARN}", "sk": "WAIT#9", "superseded_by": "d-3"})
    calls: list[str] = []
    table_query = locks._table.query
    monkeypatch.setattr(locks._table, "query", lambda **kwargs: calls.append("Query") or table_query(**kwargs))

    # When the lock is read
    current, queue = locks.read(TARGET_ARN)

    # Then one query answered what get and waiters answer, the husk left out
    assert calls == ["Query"]
    assert current == locks.get(TARGET_ARN)
    assert current is not None
    assert (current.holder, current.token) == ("arn:exec:a", token)
    assert queue == locks.waiters(TARGET_ARN)
    assert [w.deployment_id for w in queue] == ["d-1", "d-2"]


def test_a_waiter_is_written_whole_and_a_re_ask_only_moves_last_seen(cloud: Cloud) -> None:
    locks = DynamoLocks(runtime.session(), TABLE)
    locks.enqueue(TARGET_ARN, waiter(1))
    locks.supersede(TARGET_ARN, waiter(1).key, by="d-9")

    locks.enqueue(TARGET_ARN, waiter(1, first_seen=500.0, last_seen=500.0))

    (again,) = locks.waiters(TARGET_ARN)
    assert (again.first_seen, again.last_seen, again.superseded_by) == (101.0, 500.0, "d-9")
    assert (again.app, again.environment, again.version) == ("hello", "staging", "1.0.1")


def test_superseding_a_removed_waiter_leaves_no_husk(cloud: Cloud) -> None:
    locks = DynamoLocks(runtime.session(), TABLE)
    locks.enqueue(TARGET_ARN, waiter(1))
    locks.remove_waiter(TARGET_ARN, waiter(1).key)

    locks.supersede(TARGET_ARN, waiter(1).key, by="d-9")

    items = cloud.dynamodb.Table(TABLE).query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"LOCK#{TARGET_ARN}"}
    )["Items"]
    assert items == []


def test_a_target_has_one_owner_app(cloud: Cloud) -> None:
    # Given app hello claimed a function from its staging environment
    owners = DynamoTargetOwners(runtime.session(), TABLE)
    assert owners.claim(TARGET_ARN, app="hello", environment="staging") is None

    # When hello claims it again (from another environment) and app other claims it
    again = owners.claim(TARGET_ARN, app="hello", environment="production")
    refused = owners.claim(TARGET_ARN, app="other", environment="prod")

    # Then hello keeps it (now for production), other is told who owns it, and only hello can let it go
    assert again is None
    assert refused is not None
    assert (refused.app, refused.environment) == ("hello", "production")
    assert owners.release(TARGET_ARN, app="other") is False
    assert owners.release(TARGET_ARN, app="hello") is True
    assert owners.owner(TARGET_ARN) is None
    assert owners.claim(TARGET_ARN, app="other", environment="prod") is None


def test_the_owners_of_many_targets_are_read_in_one_call_per_hundred(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 150 functions, all but the last claimed by hello
    owners = DynamoTargetOwners(runtime.session(), TABLE)
    targets = [f"{TARGET_ARN}-{n}" for n in range(150)]
    for target in targets[:-1]:
        assert owners.claim(target, app="hello", environment="staging") is None
    calls = _counted_calls(monkeypatch)

    # When their owners are read
    held = owners.owners(targets)

    # Then two calls answered for all of them, and the unclaimed one is absent
    assert calls == ["BatchGetItem", "BatchGetItem"]
    assert sorted(held) == sorted(targets[:-1])
    assert {(claim.app, claim.environment) for claim in held.values()} == {("hello", "staging")}


@pytest.mark.parametrize("throttled_asks", [1, 5])
def test_keys_left_unprocessed_are_asked_again_with_backoff_and_named_if_they_stay(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch, throttled_asks: int
) -> None:
    # Given DynamoDB leaves a key unprocessed (throttled) on the first `throttled_asks` asks
    owners = DynamoTargetOwners(runtime.session(), TABLE)
    waits: list[int] = []
    monkeypatch.setattr("conveyor.adapters.dynamodb_locks._backoff", waits.append)

    def key() -> dict[str, Any]:  # a new one per response: boto3 deserializes a response in place
        return {"pk": {"S": f"TARGET#{TARGET_ARN}"}, "sk": {"S": "OWNER"}}

    owned = key() | {
        "target": {"S": TARGET_ARN},
        "owner_app": {"S": "hello"},
        "owner_environment": {"S": "staging"},
        "claimed_at": {"S": "2024-05-14T09:30:00+00:00"},
    }
    with Stubber(owners._resource.meta.client) as stub:
        for _ in range(throttled_asks):
            stub.add_response("batch_get_item", {"Responses": {}, "UnprocessedKeys": {TABLE: {"Keys": [key()]}}})
        if throttled_asks < 5:
            stub.add_response("batch_get_item", {"Responses": {TABLE: [owned]}, "UnprocessedKeys": {}})
            # When its owner is read
            held = owners.owners([TARGET_ARN])
            # Then it is asked again after a wait, and answered
            assert list(held) == [TARGET_ARN]
            assert waits == [1]
        else:
            # Then five asks later it is an outage named as such, not an endless loop or a missing owner
            with pytest.raises(LedgerError, match="1 of 1 keys still unprocessed after 5 asks"):
                owners.owners([TARGET_ARN])
            assert waits == [1, 2, 3, 4]
        stub.assert_no_pending_responses()


def test_a_window_shorter_than_a_second_is_read_as_whole_seconds_not_refused(cloud: Cloud) -> None:
    # Given one invocation of version 2 through the alias, stamped inside the current second
    now = datetime.now(UTC).replace(microsecond=600_000)
    dimensions = [
        {"Name": "FunctionName", "Value": FUNCTION},
        {"Name": "Resource", "Value": f"{FUNCTION}:live"},
        {"Name": "ExecutedVersion", "Value": "2"},
    ]
    cloud.cloudwatch.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[{"MetricName": "Invocations", "Dimensions": dimensions, "Value": 1.0, "Timestamp": now}],
    )
    metrics = CloudWatchLambdaMetrics(runtime.session())

    # When a step judged right after it started reads a window of 10 ms (CloudWatch, like moto, reads whole seconds:
    # sent as is, StartTime would equal EndTime and be refused)
    stats = metrics.version_stats(FUNCTION, "live", ["2"], now - timedelta(milliseconds=10), now)
    points = metrics.series(
        [
            {
                "Id": "inv",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Invocations", "Dimensions": dimensions},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        now - timedelta(milliseconds=10),
        now,
    )

    # Then the second it falls in is read, with the invocation in it
    assert stats["2"].invocations == 1
    assert sum(points["inv"].values()) == 1.0


def test_a_stopped_execution_is_quiet_from_its_stop_unless_a_stage_was_still_running(cloud: Cloud) -> None:
    executions = StepFunctionsExecutions(runtime.session())
    arn = "arn:aws:states:us-east-1:123456789012:execution:conveyor-deployments:run-1"
    stop = datetime(2024, 5, 14, 9, 30, tzinfo=UTC)
    between_stages = [
        {"id": 7, "type": "LambdaFunctionSucceeded", "timestamp": stop},
        {"id": 8, "type": "WaitStateEntered", "timestamp": stop},
        {"id": 9, "type": "ExecutionAborted", "timestamp": stop},
    ]
    mid_stage = [*between_stages[:1], {"id": 10, "type": "LambdaFunctionScheduled", "timestamp": stop}]
    with Stubber(executions._sfn) as stub:
        for events in (between_stages, mid_stage):
            stub.add_response(
                "describe_execution",
                {"executionArn": arn, "stateMachineArn": arn, "status": "ABORTED", "startDate": stop, "stopDate": stop},
            )
            stub.add_response(
                "get_execution_history",
                {"events": list(reversed(events))},
                {"executionArn": arn, "reverseOrder": True, "maxResults": 100},
            )
        stub.add_response(
            "describe_execution", {"executionArn": arn, "stateMachineArn": arn, "status": "RUNNING", "startDate": stop}
        )
        stub.add_client_error("describe_execution", "ThrottlingException", "slow down")
        quiet, busy = executions.ended(arn), executions.ended(arn)
        running, unknown = executions.ended(arn), executions.ended(arn)
    assert quiet is not None
    assert (quiet.status, quiet.stopped_at, quiet.quiet_at) == ("ABORTED", stop, stop)
    assert busy is not None
    assert busy.quiet_at == stop + IN_FLIGHT_GRACE
    # while it runs, or when that cannot be told, it may still act
    assert (running, unknown) == (None, None)


class _Service(BaseHTTPRequestHandler):
    """A real HTTP endpoint on 127.0.0.1: /ok answers 200, /down 503, /slow after 2 s."""

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        status, body = {"/ok": (200, b'{"status": "ok"}'), "/down": (503, b"overloaded")}.get(self.path, (404, b""))
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # /slow: the prober's timeout closed the socket first, as it should

    def log_message(self, format: str, *args: object) -> None:  # quiet: no request log on stderr
        pass


@pytest.fixture
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_http_prober_reads_status_and_body_over_a_real_socket(service: str) -> None:
    prober = UrllibProber()
    ok = prober.fetch(f"{service}/ok", "GET", timeout_seconds=5)
    down = prober.fetch(f"{service}/down", "GET", timeout_seconds=5)
    assert (ok.status, ok.body, ok.error) == (200, '{"status": "ok"}', None)
    assert ok.latency_ms > 0
    # a non-2xx answer is a response with its status, for the health spec to judge
    assert (down.status, down.body, down.error) == (503, "overloaded", None)


def test_the_http_prober_names_what_kept_it_from_an_answer(service: str) -> None:
    prober = UrllibProber()
    slow = prober.fetch(f"{service}/slow", "GET", timeout_seconds=0.2)
    assert slow.status is None
    assert slow.error is not None
    assert "timed out" in slow.error
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    refused = prober.fetch(f"http://127.0.0.1:{port}/ok", "GET", timeout_seconds=2)
    assert refused.status is None
    assert refused.error is not None
    assert "refused" in refused.error.lower()
    assert (
        prober.fetch("file:///etc/passwd", "GET", timeout_seconds=1).error
        == "unsupported URL scheme in 'file:///etc/passwd'"
    )


def test_a_release_binding_is_taken_once_and_moved_only_from_its_current_carrier(cloud: Cloud) -> None:
    # Given 1.0.1 bound to sha "a" by d-1
    ledger = DynamoLedger(runtime.session(), TABLE)
    now = datetime(2024, 5, 14, tzinfo=UTC)
    first = ReleaseRecord(
        app="hello", version="1.0.1", sha256="a" * 64, first_deployment_id="d-1", deployment_id="d-1", claimed_at=now
    )
    assert ledger.claim_release(first) == first

    # When another deployment claims it with other content, Then it gets the first binding back
    other = first.model_copy(update={"sha256": "b" * 64, "first_deployment_id": "d-2", "deployment_id": "d-2"})
    assert ledger.claim_release(other) == first

    # And the carrier moves only from the carrier it names (one of two racing new attempts wins)
    assert ledger.move_release("hello", "1.0.1", carrier="d-1", to="d-3")
    assert not ledger.move_release("hello", "1.0.1", carrier="d-1", to="d-4")
    assert ledger.claim_release(first).deployment_id == "d-3"
    # And the binding is not a deployment: history and the by-app index list none
    assert ledger.history() == []
    assert ledger.history(app="hello") == []


def test_what_an_alias_serves_is_recorded_replaced_and_forgotten(cloud: Cloud) -> None:
    ledger = DynamoLedger(runtime.session(), TABLE)
    now = datetime(2024, 5, 14, tzinfo=UTC)
    served = ServedRelease(
        function_name="hello-staging",
        alias="live",
        app="hello",
        version="1.0.5",
        deployment_id="d-5",
        sha256="a" * 64,
        lambda_version="2",
        built_at=now,
        recorded_at=now,
        recorded_by="ShiftTraffic",
    )
    assert ledger.served("hello-staging", "live") is None
    ledger.record_served(served)
    assert ledger.served("hello-staging", "live") == served
    ledger.record_served(served.model_copy(update={"version": "1.0.6", "lambda_version": "3"}))
    again = ledger.served("hello-staging", "live")
    assert again is not None
    assert (again.version, again.lambda_version) == ("1.0.6", "3")
    ledger.forget_served("hello-staging", "live")
    assert ledger.served("hello-staging", "live") is None
    assert ledger.history(app="hello") == []


def test_a_notice_is_claimed_by_one_try_until_published_or_its_lease_runs_out(cloud: Cloud) -> None:
    # Given a notice claimed by one try, for 60 s from t=1000
    ledger = DynamoLedger(runtime.session(), TABLE)
    assert ledger.claim_notice("d-1", "exec#failure", now=1000.0, lease_seconds=60) is None

    # Then a second try inside the lease is told it is in flight, not to publish
    assert ledger.claim_notice("d-1", "exec#failure", now=1059.0, lease_seconds=60) == NOTICE_IN_FLIGHT
    # And a try after the lease ran out without a publication takes it over
    assert ledger.claim_notice("d-1", "exec#failure", now=1061.0, lease_seconds=60) is None

    # And once published, every later try gets the message id, however late
    ledger.record_notice("d-1", "exec#failure", "message-1")
    assert ledger.claim_notice("d-1", "exec#failure", now=9999.0, lease_seconds=60) == "message-1"
    # And another key is its own notice
    assert ledger.claim_notice("d-1", "exec#reconciled", now=1000.0, lease_seconds=60) is None
    # And a claim whose publication failed is given back by its claimant (and only by it): the next try claims it
    ledger.release_notice("d-1", "exec#reconciled", lease_until=1030.0)  # not this claim's lease: kept
    assert ledger.claim_notice("d-1", "exec#reconciled", now=1001.0, lease_seconds=60) == NOTICE_IN_FLIGHT
    ledger.release_notice("d-1", "exec#reconciled", lease_until=1060.0)
    assert ledger.claim_notice("d-1", "exec#reconciled", now=1001.0, lease_seconds=60) is None
    # And a published notice is never given back
    ledger.release_notice("d-1", "exec#failure", lease_until=1121.0)
    assert ledger.claim_notice("d-1", "exec#failure", now=9999.0, lease_seconds=60) == "message-1"
