from typing import Any

import pytest
import yaml
from conveyor import runtime
from conveyor.adapters.dynamodb_locks import DynamoTargetOwners
from conveyor.domain.errors import (
    ArtifactLayoutError,
    BundleInvalidError,
    DeploymentNotOwnedError,
    DigestMismatchError,
    ForeignBucketError,
    ForeignTargetError,
    ManifestInvalidError,
    PipelineInvalidError,
    PipelineNotFoundError,
    TargetClaimedError,
    TargetNotFoundError,
    TargetNotManagedError,
    VersionConflictError,
    VersionInvalidError,
)
from conveyor.domain.limits import MAX_PIPELINE_SPEC_BYTES
from conveyor.domain.outcome import Outcome
from conveyor.domain.pushed_object import PushedObject

from tests.fakes import make_bundle, make_manifest, make_package, pipeline_yaml
from tests.functional.conftest import (
    ACCOUNT,
    BUCKET,
    EXECUTION_ARN,
    REGION,
    STARTED_AT,
    TABLE,
    Cloud,
    FakeLambdaContext,
    StageHandler,
    load_event,
)


def _request(event: dict[str, Any], execution_arn: str = EXECUTION_ARN) -> dict[str, Any]:
    return {"event": event, "execution_arn": execution_arn, "started_at": STARTED_AT}


def test_valid_push_becomes_a_recorded_deployment(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a bundle pushed as events/s3_object_created.json describes, and a registered pipeline
    cloud.put_pipeline()
    put = cloud.put_bundle()
    event = cloud.event_for(put)
    # When ValidateArtifact runs on the event
    deployment = handlers["validate_artifact"].handler(_request(event), context)
    # Then the deployment is returned with its derived id, package and environments
    expected_id = PushedObject.from_event(event).deployment_id
    assert deployment["deployment_id"] == expected_id
    assert (deployment["app"], deployment["version"]) == ("hello", "1.0.0")
    assert deployment["artifact"]["version_id"] == put["VersionId"]
    assert [env["name"] for env in deployment["environments"]] == ["staging"]
    assert deployment["pushed_by"] == "123456789012"
    # And the package Lambda will be updated from is written under releases/, byte-identical
    # (stored by content, and named by the S3 object version Deploy must read)
    package = make_package()
    sha = make_manifest(package)["package"]["sha256"]
    key = f"releases/hello/{sha}/package.zip"
    (stored,) = cloud.s3.list_object_versions(Bucket=BUCKET, Prefix="releases/")["Versions"]
    assert deployment["package"] == {
        "bucket": BUCKET,
        "key": key,
        "sha256": sha,
        "size": len(package),
        "version_id": stored["VersionId"],
    }
    release = cloud.s3.get_object(Bucket=BUCKET, Key=key, VersionId=stored["VersionId"])
    assert release["Body"].read() == package
    # And the ledger holds the deployment IN_PROGRESS with a succeeded ValidateArtifact event
    meta = cloud.meta(expected_id)
    assert (meta["status"], meta["app"], meta["version"]) == ("IN_PROGRESS", "hello", "1.0.0")
    assert meta["attempt_executions"] == {EXECUTION_ARN}
    assert meta["execution_arn"] == EXECUTION_ARN
    (event_item,) = cloud.events(expected_id)
    assert (event_item["stage"], event_item["status"]) == ("ValidateArtifact", "succeeded")
    assert event_item["detail"]["environments"] == ["staging"]


def test_duplicate_delivery_is_the_same_deployment(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given the same object delivered twice with different event ids
    cloud.put_pipeline()
    put = cloud.put_bundle()
    first = cloud.event_for(put)
    duplicate = load_event("s3_object_created_duplicate.json")
    duplicate["detail"]["object"] = first["detail"]["object"]
    assert duplicate["id"] != first["id"]
    # When the first is claimed and validated, and its stage retried
    assert handlers["claim_deployment"].handler(_request(first), context)["decision"] == "proceed"
    one = handlers["validate_artifact"].handler(_request(first), context)
    again = handlers["validate_artifact"].handler(_request(first), context)
    # Then the duplicate names the same deployment, which a second execution may not validate into: it is the
    # first execution's running attempt (its claim skips it: tests/unit/test_exactly_once.py)
    assert PushedObject.from_event(duplicate).deployment_id == one["deployment_id"] == again["deployment_id"]
    with pytest.raises(DeploymentNotOwnedError):
        handlers["validate_artifact"].handler(_request(duplicate, f"{EXECUTION_ARN}-rerun"), context)
    # And it was attempted once (a retried stage is not a new attempt)
    assert cloud.meta(one["deployment_id"])["attempt_executions"] == {EXECUTION_ARN}
    record = runtime.ledger().get(one["deployment_id"])
    assert record is not None
    assert (record.attempts, record.execution_arn) == (1, EXECUTION_ARN)


def test_the_ledger_indexes_deployments_by_app(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline()
    deployment = handlers["validate_artifact"].handler(_request(cloud.event_for(cloud.put_bundle())), context)
    from conveyor import runtime

    (record,) = runtime.ledger().history(app="hello")
    assert record.deployment_id == deployment["deployment_id"]


def _rejected(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    error: type[Exception],
    *,
    bundle: bytes | None = None,
    match: str | None = None,
) -> dict[str, Any]:
    event = cloud.event_for(cloud.put_bundle(bundle))
    # As the state machine runs them: the claim resets the record, ValidateArtifact judges the artifact
    assert handlers["claim_deployment"].handler(_request(event), context)["decision"] == "proceed"
    with pytest.raises(error, match=match) as raised:
        handlers["validate_artifact"].handler(_request(event), context)
    # The exact class is what the state machine sees as the error name
    assert type(raised.value) is error
    deployment_id = PushedObject.from_event(event).deployment_id
    (item,) = cloud.events(deployment_id)
    assert (item["stage"], item["status"], item["detail"]["error"]) == ("ValidateArtifact", "failed", error.__name__)
    assert cloud.meta(deployment_id)["status"] == "IN_PROGRESS"
    # Nothing was released
    assert "Contents" not in cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/")
    return item


def test_corrupt_bundle_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline()
    bundle = make_bundle()
    item = _rejected(cloud, handlers, context, BundleInvalidError, bundle=bundle[: len(bundle) // 2])
    assert "s3://conveyor-artifacts/artifacts/hello/1.0.0.zip" in item["detail"]["reason"]


def test_digest_mismatch_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline()
    package = make_package()
    manifest = make_manifest(make_package("tampered"))
    manifest["package"]["size"] = len(package)
    _rejected(
        cloud,
        handlers,
        context,
        DigestMismatchError,
        bundle=make_bundle(package=package, manifest=manifest),
        match="manifest package.sha256 says",
    )


def test_manifest_app_mismatch_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a bundle built for another app pushed under hello's key
    cloud.put_pipeline()
    item = _rejected(
        cloud,
        handlers,
        context,
        ManifestInvalidError,
        bundle=make_bundle(app="billing"),
        match="manifest.json says app='billing'",
    )
    assert "the key says app='hello'" in item["detail"]["reason"]


def test_missing_pipeline_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    item = _rejected(cloud, handlers, context, PipelineNotFoundError, match="no pipeline is registered for app 'hello'")
    assert "conveyor pipeline apply pipelines/hello.yaml" in item["detail"]["reason"]


def test_invalid_pipeline_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline("app: hello\nenvironments: []\n")
    _rejected(cloud, handlers, context, PipelineInvalidError, match=r"pipelines/hello\.yaml: environments")


def test_pipeline_for_another_app_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline(pipeline_yaml(app="billing"))
    _rejected(cloud, handlers, context, PipelineInvalidError, match="app is 'billing', expected 'hello'")


def test_missing_target_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    spec = pipeline_yaml()
    cloud.put_pipeline(spec.replace("hello-staging", "hello-nowhere"))
    _rejected(cloud, handlers, context, TargetNotFoundError, match="'hello-nowhere' does not exist")


def test_untagged_target_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given the target function without Conveyor's managed tag
    cloud.lambda_.untag_resource(
        Resource=cloud.lambda_.get_function(FunctionName="hello-staging")["Configuration"]["FunctionArn"],
        TagKeys=["conveyor:managed"],
    )
    cloud.put_pipeline()
    _rejected(cloud, handlers, context, TargetNotManagedError, match="not tagged conveyor:managed=true")
    # and a function Conveyor may not change is not claimed for the app either
    assert (
        DynamoTargetOwners(runtime.session(), TABLE).owner(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging")
        is None
    )


def test_key_outside_the_layout_is_rejected_before_anything_is_recorded(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    event = load_event("s3_object_created_outside_layout.json")
    with pytest.raises(ArtifactLayoutError, match=r"artifacts/hello/builds/1\.0\.0\.zip"):
        handlers["validate_artifact"].handler(_request(event), context)
    assert cloud.table.scan()["Items"] == []


def test_an_input_that_is_not_an_s3_event_is_rejected(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    with pytest.raises(ArtifactLayoutError, match=r"execution input \(S3 Object Created event\): detail"):
        handlers["validate_artifact"].handler(_request({"source": "aws.s3", "detail-type": "Object Created"}), context)


def test_a_registered_spec_with_yaml_aliases_is_refused_naming_it(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a billion-laughs spec written straight to pipelines/ (not through `conveyor pipeline apply`)
    laughs = "".join(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    cloud.put_pipeline('app: hello\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + laughs)
    # Then ValidateArtifact refuses it before expanding anything, naming the registered file
    _rejected(
        cloud,
        handlers,
        context,
        PipelineInvalidError,
        match=rf"^s3://{BUCKET}/pipelines/hello\.yaml: not valid YAML \(YAML anchors and aliases are not allowed",
    )


def test_an_oversize_registered_spec_is_refused_before_it_is_read(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline(pipeline_yaml() + "#" * MAX_PIPELINE_SPEC_BYTES)
    _rejected(
        cloud,
        handlers,
        context,
        PipelineInvalidError,
        match=rf"^s3://{BUCKET}/pipelines/hello\.yaml: \d+ bytes, more than the pipeline spec limit",
    )


@pytest.mark.parametrize(
    ("environment", "reason"),
    [
        ({"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, "sets reserved Lambda variables: AWS_LAMBDA_RUNTIME_API"),
        ({"_HANDLER": "evil.handler"}, "sets reserved Lambda variables: _HANDLER"),
        ({f"V{i}": "x" * 400 for i in range(11)}, "more than Lambda's limit of 4096"),
    ],
)
def test_a_manifest_lambda_would_refuse_is_refused_before_anything_is_touched(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    environment: dict[str, str],
    reason: str,
) -> None:
    # Given a bundle whose function configuration Lambda would refuse only after $LATEST's code changed
    cloud.put_pipeline()
    package = make_package()
    manifest = make_manifest(package, function_config={"environment": environment})
    # Then ValidateArtifact refuses it, naming the variable or the size, with nothing released or deployed
    bundle = make_bundle(package=package, manifest=manifest)
    item = _rejected(cloud, handlers, context, ManifestInvalidError, bundle=bundle)
    assert reason in item["detail"]["reason"]
    assert cloud.alias()["FunctionVersion"] == "1"


class UnreadableStore:
    """An artifact store any read of which fails the test."""

    def __getattr__(self, name: str) -> Any:
        pytest.fail(f"ArtifactStore.{name} was used")


def test_an_event_naming_another_bucket_is_refused_and_nothing_is_read_from_it(
    cloud: Cloud,
    handlers: dict[str, StageHandler],
    context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given another bucket holding a bundle and a pipeline, and an execution input naming it
    cloud.s3.create_bucket(Bucket="attacker-artifacts")
    cloud.s3.put_bucket_versioning(Bucket="attacker-artifacts", VersioningConfiguration={"Status": "Enabled"})
    put = cloud.s3.put_object(Bucket="attacker-artifacts", Key="artifacts/hello/1.0.0.zip", Body=make_bundle())
    cloud.s3.put_object(Bucket="attacker-artifacts", Key="pipelines/hello.yaml", Body=pipeline_yaml().encode())
    event = cloud.event_for(put)
    event["detail"]["bucket"]["name"] = "attacker-artifacts"
    monkeypatch.setattr(runtime, "artifacts", UnreadableStore)

    # When ValidateArtifact runs on it, it is refused naming both buckets
    refused = rf"bucket 'attacker-artifacts', not Conveyor's artifact bucket '{BUCKET}'"
    with pytest.raises(ForeignBucketError, match=refused):
        handlers["validate_artifact"].handler(_request(event), context)

    # Then nothing was read, recorded as started, released or deployed
    assert cloud.table.scan()["Items"] == []
    assert "Contents" not in cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/")
    assert cloud.alias()["FunctionVersion"] == "1"

    # And NotifyFailure (the Catch) records the refusal in the ledger and tells the on-call
    failure = {"Error": "ForeignBucketError", "Cause": "names bucket 'attacker-artifacts'"}
    request = {"execution_input": event, "execution_arn": EXECUTION_ARN, "failure": failure}
    report = handlers["notify_failure"].handler(request, context)
    assert cloud.meta(report["deployment_id"])["status"] == "FAILED"
    (message,) = cloud.notifications()
    assert "attacker-artifacts" in message["Message"]


def test_an_untagged_hook_is_refused_before_any_traffic_moves(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a pipeline whose pre-traffic hook is a function without the managed tag
    cloud.lambda_.create_function(
        FunctionName="hello-migrations",
        Runtime="python3.11",
        Role=cloud.role_arn,
        Handler="app.handler",
        Code={"ZipFile": make_package()},
    )
    spec = yaml.safe_load(pipeline_yaml())
    spec["environments"][0]["health"]["pre_traffic"] = {"function_name": "hello-migrations"}
    cloud.put_pipeline(yaml.safe_dump(spec))

    # Then ValidateArtifact refuses the deployment naming the hook, its phase and the pipeline
    item = _rejected(
        cloud,
        handlers,
        context,
        TargetNotManagedError,
        match=rf"s3://{BUCKET}/pipelines/hello\.yaml: environments 'staging' health\.pre_traffic: hook function "
        "'hello-migrations' is not tagged conveyor:managed=true",
    )
    assert item["detail"]["error"] == "TargetNotManagedError"
    assert cloud.alias()["FunctionVersion"] == "1"


@pytest.mark.parametrize("version", ["9f1c2e7", "1.0"])
def test_a_version_that_is_not_semver_is_refused_under_the_default_order(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext, version: str
) -> None:
    # Given a pipeline with the default version_order (semver) and a push whose version is not SemVer
    cloud.put_pipeline()
    event = cloud.event_for(cloud.put_bundle(version=version), key=f"artifacts/hello/{version}.zip")
    # When it is validated, Then it is refused, saying how to order such versions
    with pytest.raises(VersionInvalidError, match=r"not a SemVer 2\.0 version.*version_order: build_time"):
        handlers["validate_artifact"].handler(_request(event), context)
    # And nothing was released
    assert "Contents" not in cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="releases/")


def test_a_commit_hash_version_is_accepted_under_build_time(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline(pipeline_yaml(version_order="build_time"))
    event = cloud.event_for(cloud.put_bundle(version="9f1c2e7"), key="artifacts/hello/9f1c2e7.zip")
    deployment = handlers["validate_artifact"].handler(_request(event), context)
    assert (deployment["version"], deployment["policy"]["version_order"]) == ("9f1c2e7", "build_time")


def _push(cloud: Cloud, code: str, created_at: str = "2024-05-14T09:20:00Z") -> dict[str, Any]:
    """Push hello 1.0.0 whose package holds ``code``; the execution input for it."""
    package = make_package(code)
    bundle = make_bundle(package=package, manifest=make_manifest(package, created_at=created_at))
    return cloud.event_for(cloud.put_bundle(bundle))


def _live_release(cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext) -> dict[str, Any]:
    """hello 1.0.0 (package "one") validated and recorded live: the deployment ValidateArtifact returned."""
    cloud.put_pipeline()
    first: dict[str, Any] = handlers["validate_artifact"].handler(_request(_push(cloud, "one")), context)
    runtime.ledger().finish(first["deployment_id"], Outcome.SUCCEEDED)
    return first


def test_the_same_version_with_other_content_is_refused_and_nothing_is_released(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given hello 1.0.0 validated and live
    first = _live_release(cloud, handlers, context)

    # When 1.0.0 is pushed again with other code, built later
    event = _push(cloud, "two", created_at="2024-05-15T09:20:00Z")
    with pytest.raises(VersionConflictError) as raised:
        handlers["validate_artifact"].handler(_request(event, f"{EXECUTION_ARN}-2"), context)

    # Then the refusal names both sha256 and the first deployment, and only the first release is stored
    other = make_manifest(make_package("two"))["package"]["sha256"]
    assert first["package"]["sha256"] in str(raised.value)
    assert other in str(raised.value)
    assert first["deployment_id"] in str(raised.value)
    stored = cloud.s3.list_object_versions(Bucket=BUCKET, Prefix="releases/")["Versions"]
    assert [v["Key"] for v in stored] == [first["package"]["key"]]
    # And the release binding is not a deployment in the history
    assert {r.deployment_id for r in runtime.ledger().history(app="hello")} == {
        first["deployment_id"],
        PushedObject.from_event(event).deployment_id,
    }
    assert len(runtime.ledger().history()) == 2


def test_the_same_content_again_while_live_is_a_duplicate(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given hello 1.0.0 live
    first = _live_release(cloud, handlers, context)

    # When the same package is pushed again as 1.0.0 in another bundle (rebuilt later)
    event = _push(cloud, "one", created_at="2024-05-15T09:20:00Z")
    second = handlers["validate_artifact"].handler(_request(event, f"{EXECUTION_ARN}-2"), context)

    # Then it is a duplicate of the first: recorded SKIPPED_DUPLICATE on it and on the first, nothing written
    assert second["duplicate_of"] == first["deployment_id"]
    record = runtime.ledger().get(second["deployment_id"])
    assert record is not None
    assert record.status is Outcome.SKIPPED_DUPLICATE
    assert record.failure is not None
    assert record.failure["duplicate_of"] == first["deployment_id"]
    carrier = runtime.ledger().get(first["deployment_id"])
    assert carrier is not None
    assert [entry["deployment_id"] for entry in carrier.skipped] == [second["deployment_id"]]
    assert len(cloud.s3.list_object_versions(Bucket=BUCKET, Prefix="releases/")["Versions"]) == 1


def test_a_duplicate_s_validation_retried_after_its_verdict_was_written_answers_the_same(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given hello 1.0.0 live, and the same package pushed again, found a duplicate and recorded so
    first = _live_release(cloud, handlers, context)
    event = _push(cloud, "one", created_at="2024-05-15T09:20:00Z")
    again = _request(event, f"{EXECUTION_ARN}-2")
    second = handlers["validate_artifact"].handler(again, context)

    # When Step Functions retries that validation (its Lambda timed out after the verdict was written)
    retried = handlers["validate_artifact"].handler(again, context)

    # Then the same answer, recorded once on the carrier, no stray failure, one attempt
    assert retried["duplicate_of"] == second["duplicate_of"] == first["deployment_id"]
    record = runtime.ledger().get(second["deployment_id"])
    assert record is not None
    assert (record.status, record.attempts) == (Outcome.SKIPPED_DUPLICATE, 1)
    assert [event.status for event in record.events] == ["duplicate", "duplicate"]
    carrier = runtime.ledger().get(first["deployment_id"])
    assert carrier is not None
    assert [entry["deployment_id"] for entry in carrier.skipped] == [second["deployment_id"]]


def test_byte_identical_code_under_another_version_reuses_the_stored_release(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given 1.0.0 validated, When the same package is pushed as 1.0.5
    cloud.put_pipeline()
    first = handlers["validate_artifact"].handler(_request(_push(cloud, "same")), context)
    package = make_package("same")
    bundle = make_bundle(version="1.0.5", package=package, manifest=make_manifest(package, version="1.0.5"))
    event = cloud.event_for(cloud.put_bundle(bundle, version="1.0.5"), key="artifacts/hello/1.0.5.zip")
    second = handlers["validate_artifact"].handler(_request(event, f"{EXECUTION_ARN}-2"), context)
    # Then both deploy the one stored object version: a release is stored once per content
    assert second["duplicate_of"] is None
    assert second["package"] == first["package"]


def test_a_target_in_another_account_is_refused_naming_the_field(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a spec (copied to the bucket by hand) naming another account's function of our function's name
    cloud.put_pipeline(
        pipeline_yaml().replace("hello-staging", "arn:aws:lambda:us-east-1:210987654321:function:hello-staging")
    )

    # Then ValidateArtifact refuses it before anything is released
    item = _rejected(cloud, handlers, context, ForeignTargetError, match="account 210987654321")
    assert "pipelines/hello.yaml: environments[0] (staging).target.function_name" in item["detail"]["reason"]


def test_a_function_owned_by_another_app_is_refused_naming_both(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given app billing owns hello-staging (its pipeline claimed it first)
    target = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging"
    assert DynamoTargetOwners(runtime.session(), TABLE).claim(target, app="billing", environment="prod") is None
    # and hello's spec names the same function by its full ARN
    cloud.put_pipeline(pipeline_yaml().replace("hello-staging", target))

    # Then hello's deployment is refused, with both claimants named, and nothing released
    item = _rejected(cloud, handlers, context, TargetClaimedError, match="belongs to app 'billing'")
    assert "app 'hello' (environment 'staging') may not deploy to it" in item["detail"]["reason"]


def test_a_deployment_claims_its_targets_for_its_app(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a spec copied to the bucket by hand (no conveyor pipeline apply, so no claim yet)
    cloud.put_pipeline()
    event = cloud.event_for(cloud.put_bundle())

    # When it is validated
    handlers["validate_artifact"].handler(_request(event), context)

    # Then its app owns its target from now on
    owner = DynamoTargetOwners(runtime.session(), TABLE).owner(
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging"
    )
    assert owner is not None
    assert (owner.app, owner.environment) == ("hello", "staging")


def test_a_target_written_as_an_arn_is_carried_on_as_its_functions_name(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given hello's spec naming its function by a partial ARN
    cloud.put_pipeline(pipeline_yaml().replace("hello-staging", f"{ACCOUNT}:function:hello-staging"))
    event = cloud.event_for(cloud.put_bundle())

    # When it is validated
    deployment = handlers["validate_artifact"].handler(_request(event), context)

    # Then every later stage gets the one spelling Lambda (and the local cloud) accept everywhere
    assert deployment["environments"][0]["target"]["function_name"] == "hello-staging"
    assert deployment["home"] == {"partition": "aws", "account": ACCOUNT, "region": REGION}


def test_the_claim_of_a_new_attempt_resets_the_record_and_counts_it_before_validation_runs(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext
) -> None:
    # Given a push whose first attempt was refused at validation and recorded FAILED
    event = cloud.event_for(cloud.put_bundle())
    assert handlers["claim_deployment"].handler(_request(event), context)["decision"] == "proceed"
    with pytest.raises(PipelineNotFoundError):  # no pipeline registered yet
        handlers["validate_artifact"].handler(_request(event), context)
    deployment_id = PushedObject.from_event(event).deployment_id
    from conveyor import runtime

    runtime.ledger().finish(deployment_id, Outcome.FAILED, {"error": "PipelineNotFoundError", "reason": "no spec"})

    # When an operator re-runs it (a new execution) and only its claim has run
    rerun = f"{EXECUTION_ARN}-rerun"
    assert handlers["claim_deployment"].handler(_request(event, rerun), context)["decision"] == "proceed"

    # Then the record is this attempt's already: in progress, no failure, counted as the second attempt
    record = runtime.ledger().get(deployment_id)
    assert record is not None
    assert (record.status, record.failure, record.execution_arn, record.attempts) == (
        Outcome.IN_PROGRESS,
        None,
        rerun,
        2,
    )


@pytest.mark.parametrize("meanwhile", ["closed after a stop", "claimed by a re-run"])
def test_a_late_validation_starts_nothing_in_a_deployment_no_longer_its_own(
    cloud: Cloud, handlers: dict[str, StageHandler], context: FakeLambdaContext, meanwhile: str
) -> None:
    # Given a push claimed by its execution
    cloud.put_pipeline()
    event = cloud.event_for(cloud.put_bundle())
    deployment_id = PushedObject.from_event(event).deployment_id
    assert handlers["claim_deployment"].handler(_request(event), context)["decision"] == "proceed"
    # And, while its ValidateArtifact was still running, the record stopped being that execution's running attempt
    runtime.ledger().finish(deployment_id, Outcome.FAILED, {"error": "ExecutionStopped", "reason": "stopped"})
    if meanwhile == "claimed by a re-run":
        rerun = f"{EXECUTION_ARN}-rerun"
        assert handlers["claim_deployment"].handler(_request(event, rerun), context)["decision"] == "proceed"
    before = cloud.meta(deployment_id)

    # When that validation reaches the attempt's start
    # Then it is refused by name, and the record is as it was: not reopened, not taken back
    with pytest.raises(DeploymentNotOwnedError, match="no longer this execution's running attempt"):
        handlers["validate_artifact"].handler(_request(event), context)
    after = cloud.meta(deployment_id)
    assert {k: after[k] for k in ("status", "execution_arn", "environments", "attempt_executions")} == {
        k: before[k] for k in ("status", "execution_arn", "environments", "attempt_executions")
    }
    assert after.get("failure") == before.get("failure")
    assert "package_sha256" not in after
    # And no stage event of it was written into the deployment
    record = runtime.ledger().get(deployment_id)
    assert record is not None
    assert [event.stage for event in record.events if event.stage == "ValidateArtifact"] == []
