from types import ModuleType
from typing import Any

import pytest
from conveyor.errors import (
    ArtifactLayoutError,
    BundleInvalidError,
    DigestMismatchError,
    ForeignTargetError,
    ManifestInvalidError,
    PipelineInvalidError,
    PipelineNotFoundError,
    TargetClaimedError,
    TargetNotFoundError,
    TargetNotManagedError,
)
from conveyor.ledger import DynamoTargetOwners
from conveyor.stages.validate import PushedObject

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
    load_event,
)


def _request(event: dict[str, Any], execution_arn: str = EXECUTION_ARN) -> dict[str, Any]:
    return {"event": event, "execution_arn": execution_arn, "started_at": STARTED_AT}


def test_valid_push_becomes_a_recorded_deployment(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
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
    package = make_package()
    assert deployment["package"] == {
        "bucket": BUCKET,
        "key": "releases/hello/1.0.0/package.zip",
        "sha256": make_manifest(package)["package"]["sha256"],
        "size": len(package),
    }
    release = cloud.s3.get_object(Bucket=BUCKET, Key="releases/hello/1.0.0/package.zip")
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
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    # Given the same object delivered twice with different event ids
    cloud.put_pipeline()
    put = cloud.put_bundle()
    first = cloud.event_for(put)
    duplicate = load_event("s3_object_created_duplicate.json")
    duplicate["detail"]["object"] = first["detail"]["object"]
    assert duplicate["id"] != first["id"]
    # When both are validated, by two executions, and the first execution's stage is retried
    one = handlers["validate_artifact"].handler(_request(first), context)
    two = handlers["validate_artifact"].handler(_request(duplicate, f"{EXECUTION_ARN}-rerun"), context)
    handlers["validate_artifact"].handler(_request(first), context)
    # Then they are one deployment, attempted twice (a retried stage is not a new attempt)
    assert one["deployment_id"] == two["deployment_id"]
    assert cloud.meta(one["deployment_id"])["attempt_executions"] == {EXECUTION_ARN, f"{EXECUTION_ARN}-rerun"}
    from conveyor import runtime

    record = runtime.ledger().get(one["deployment_id"])
    assert record is not None
    assert record.attempts == 2


def test_the_ledger_indexes_deployments_by_app(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline()
    deployment = handlers["validate_artifact"].handler(_request(cloud.event_for(cloud.put_bundle())), context)
    from conveyor import runtime

    (record,) = runtime.ledger().history(app="hello")
    assert record.deployment_id == deployment["deployment_id"]


def _rejected(
    cloud: Cloud,
    handlers: dict[str, ModuleType],
    context: FakeLambdaContext,
    error: type[Exception],
    *,
    bundle: bytes | None = None,
    match: str | None = None,
) -> dict[str, Any]:
    event = cloud.event_for(cloud.put_bundle(bundle))
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


def test_corrupt_bundle_is_rejected(cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext) -> None:
    cloud.put_pipeline()
    bundle = make_bundle()
    item = _rejected(cloud, handlers, context, BundleInvalidError, bundle=bundle[: len(bundle) // 2])
    assert "s3://conveyor-artifacts/artifacts/hello/1.0.0.zip" in item["detail"]["reason"]


def test_digest_mismatch_is_rejected(cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext) -> None:
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
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
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
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    item = _rejected(cloud, handlers, context, PipelineNotFoundError, match="no pipeline is registered for app 'hello'")
    assert "conveyor pipeline apply pipelines/hello.yaml" in item["detail"]["reason"]


def test_invalid_pipeline_is_rejected(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline("app: hello\nenvironments: []\n")
    _rejected(cloud, handlers, context, PipelineInvalidError, match=r"pipelines/hello\.yaml: environments")


def test_pipeline_for_another_app_is_rejected(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    cloud.put_pipeline(pipeline_yaml(app="billing"))
    _rejected(cloud, handlers, context, PipelineInvalidError, match="app is 'billing', expected 'hello'")


def test_missing_target_is_rejected(cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext) -> None:
    spec = pipeline_yaml()
    cloud.put_pipeline(spec.replace("hello-staging", "hello-nowhere"))
    _rejected(cloud, handlers, context, TargetNotFoundError, match="'hello-nowhere' does not exist")


def test_untagged_target_is_rejected(cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext) -> None:
    # Given the target function without Conveyor's managed tag
    cloud.lambda_.untag_resource(
        Resource=cloud.lambda_.get_function(FunctionName="hello-staging")["Configuration"]["FunctionArn"],
        TagKeys=["conveyor:managed"],
    )
    cloud.put_pipeline()
    _rejected(cloud, handlers, context, TargetNotManagedError, match="not tagged conveyor:managed=true")
    # and a function Conveyor may not change is not claimed for the app either
    assert DynamoTargetOwners(TABLE).owner(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging") is None


def test_key_outside_the_layout_is_rejected_before_anything_is_recorded(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    event = load_event("s3_object_created_outside_layout.json")
    with pytest.raises(ArtifactLayoutError, match=r"artifacts/hello/builds/1\.0\.0\.zip"):
        handlers["validate_artifact"].handler(_request(event), context)
    assert cloud.table.scan()["Items"] == []


def test_an_input_that_is_not_an_s3_event_is_rejected(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    with pytest.raises(ArtifactLayoutError, match=r"execution input \(S3 Object Created event\): detail"):
        handlers["validate_artifact"].handler(_request({"source": "aws.s3", "detail-type": "Object Created"}), context)


def test_a_target_in_another_account_is_refused_naming_the_field(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    # Given a spec (copied to the bucket by hand) naming another account's function of our function's name
    cloud.put_pipeline(
        pipeline_yaml().replace("hello-staging", "arn:aws:lambda:us-east-1:210987654321:function:hello-staging")
    )

    # Then ValidateArtifact refuses it before anything is released
    item = _rejected(cloud, handlers, context, ForeignTargetError, match="account 210987654321")
    assert "pipelines/hello.yaml: environments[0] (staging).target.function_name" in item["detail"]["reason"]


def test_a_function_owned_by_another_app_is_refused_naming_both(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    # Given app billing owns hello-staging (its pipeline claimed it first)
    target = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging"
    assert DynamoTargetOwners(TABLE).claim(target, app="billing", environment="prod") is None
    # and hello's spec names the same function by its full ARN
    cloud.put_pipeline(pipeline_yaml().replace("hello-staging", target))

    # Then hello's deployment is refused, with both claimants named, and nothing released
    item = _rejected(cloud, handlers, context, TargetClaimedError, match="belongs to app 'billing'")
    assert "app 'hello' (environment 'staging') may not deploy to it" in item["detail"]["reason"]


def test_a_deployment_claims_its_targets_for_its_app(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    # Given a spec copied to the bucket by hand (no conveyor pipeline apply, so no claim yet)
    cloud.put_pipeline()
    event = cloud.event_for(cloud.put_bundle())

    # When it is validated
    handlers["validate_artifact"].handler(_request(event), context)

    # Then its app owns its target from now on
    owner = DynamoTargetOwners(TABLE).owner(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:hello-staging")
    assert owner is not None
    assert (owner.app, owner.environment) == ("hello", "staging")


def test_a_target_written_as_an_arn_is_carried_on_as_its_functions_name(
    cloud: Cloud, handlers: dict[str, ModuleType], context: FakeLambdaContext
) -> None:
    # Given hello's spec naming its function by a partial ARN
    cloud.put_pipeline(pipeline_yaml().replace("hello-staging", f"{ACCOUNT}:function:hello-staging"))
    event = cloud.event_for(cloud.put_bundle())

    # When it is validated
    deployment = handlers["validate_artifact"].handler(_request(event), context)

    # Then every later stage gets the one spelling Lambda (and the local cloud) accept everywhere
    assert deployment["environments"][0]["target"]["function_name"] == "hello-staging"
    assert deployment["home"] == {"partition": "aws", "account": ACCOUNT, "region": REGION}
