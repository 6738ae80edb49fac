"""Provision a SAM ``template.yaml`` onto the local cloud with boto3, in dependency order.

This is not CloudFormation: it understands the resource types and intrinsics Conveyor's
template uses and fails loudly (naming the logical id) on anything else, so the local
cloud can never silently diverge from what ``sam deploy`` would create. IAM policies are
not modelled (moto does not enforce them); each function and state machine gets a role
that exists, which is all moto checks.

Provisioning is idempotent, like a CloudFormation update: run again over a cloud that already
holds the stack (a restored snapshot), it updates what changed (a function's code or
configuration, then its alias moves to the newly published version; a state machine's
definition; a queue's attributes) and creates nothing twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

from conveyor_cli.packaging import zip_directory
from conveyor_local import runtime_site

LOG = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
DEFAULT_STACK_NAME = "conveyor"
DEFAULT_REGION = "us-east-1"
_ZIP_EXCLUDES = ("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", "requirements.txt", ".DS_Store")
_SUB_PATTERN = re.compile(r"\$\{([^!}][^}]*)\}")


class ProvisioningError(Exception):
    """The template asks for something the local cloud cannot create; the message names the resource."""


# ------------------------------------------------------------------------------ YAML


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation short-form tags into their long form."""


def _short_form(tag: str, name: str) -> None:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return {name: value}

    _CfnLoader.add_constructor(tag, construct)


_short_form("!Ref", "Ref")
_short_form("!Condition", "Condition")
for _function in ("GetAtt", "Sub", "Join", "Select", "Split", "If", "Equals", "Not", "And", "Or", "FindInMap"):
    _short_form(f"!{_function}", f"Fn::{_function}")
for _function in ("Base64", "GetAZs", "ImportValue", "Cidr"):
    _short_form(f"!{_function}", f"Fn::{_function}")


def load_template(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        # Bandit B506 suppressed below: _CfnLoader is a yaml.SafeLoader subclass that only adds the CFN short-form tags.
        template = yaml.load(stream, Loader=_CfnLoader)  # noqa: S506  # nosec B506
    if not isinstance(template, dict) or "Resources" not in template:
        raise ProvisioningError(f"{path}: not a CloudFormation template (no Resources)")
    return template


# ------------------------------------------------------------------------ intrinsics


@dataclass
class Provisioned:
    """A created resource: what ``Ref`` returns and what ``Fn::GetAtt`` can read."""

    logical_id: str
    type: str
    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class StackContext:
    stack_name: str
    region: str
    parameters: dict[str, Any]
    resources: dict[str, Provisioned] = field(default_factory=dict)

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::URLSuffix": "amazonaws.com",
        }

    def ref(self, name: str, where: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.resources:
            return self.resources[name].ref
        raise ProvisioningError(f"{where}: Ref to unknown or not yet created '{name}'")

    def get_att(self, name: str, attribute: str, where: str) -> str:
        resource = self.resources.get(name)
        if resource is None:
            raise ProvisioningError(f"{where}: Fn::GetAtt on unknown or not yet created '{name}'")
        if attribute not in resource.attributes:
            raise ProvisioningError(f"{where}: {resource.type} '{name}' has no attribute '{attribute}' locally")
        return resource.attributes[attribute]


def _substitute(template: str, variables: Mapping[str, Any], context: StackContext, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name in variables:
            return str(variables[name])
        if "." in name and name.split(".", 1)[0] in context.resources:
            resource, attribute = name.split(".", 1)
            return context.get_att(resource, attribute, where)
        return str(context.ref(name, where))

    return _SUB_PATTERN.sub(replace, template).replace("${!", "${")


def resolve(value: Any, context: StackContext, where: str) -> Any:
    """Evaluate the intrinsic functions inside ``value`` (recursively)."""
    if isinstance(value, list):
        return [resolve(item, context, where) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, argument), *_ = value.items()
        handler = _INTRINSICS.get(key)
        if handler is not None:
            return handler(argument, context, where)
        if key.startswith("Fn::") or key == "Condition":
            raise ProvisioningError(f"{where}: intrinsic {key} is not supported by the local cloud")
    return {key: resolve(item, context, where) for key, item in value.items()}


def _fn_ref(argument: Any, context: StackContext, where: str) -> Any:
    return context.ref(str(argument), where)


def _fn_get_att(argument: Any, context: StackContext, where: str) -> str:
    name, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
    return context.get_att(str(name), str(resolve(attribute, context, where)), where)


def _fn_sub(argument: Any, context: StackContext, where: str) -> str:
    if isinstance(argument, list):
        text, variables = argument
        return _substitute(str(text), resolve(variables, context, where), context, where)
    return _substitute(str(argument), {}, context, where)


def _fn_join(argument: Any, context: StackContext, where: str) -> str:
    delimiter, items = argument
    return str(delimiter).join(str(item) for item in resolve(items, context, where))


def _fn_select(argument: Any, context: StackContext, where: str) -> Any:
    index, items = argument
    return resolve(items, context, where)[int(resolve(index, context, where))]


def _fn_split(argument: Any, context: StackContext, where: str) -> list[str]:
    delimiter, text = argument
    return str(resolve(text, context, where)).split(str(delimiter))


_INTRINSICS: dict[str, Callable[[Any, StackContext, str], Any]] = {
    "Ref": _fn_ref,
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": _fn_sub,
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
}


def _references(value: Any) -> Iterator[str]:
    """Every logical name ``value`` refers to (through Ref, GetAtt or Sub)."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                yield str(item)
            elif key == "Fn::GetAtt":
                yield str(item[0] if isinstance(item, list) else str(item).split(".", 1)[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                for name in _SUB_PATTERN.findall(str(text)):
                    yield name.split(".", 1)[0].strip()
                if isinstance(item, list):
                    yield from _references(item[1])
            else:
                yield from _references(item)


# ---------------------------------------------------------------------------- helpers


def physical_name(stack: str, logical_id: str, *, lowercase: bool = False, limit: int = 64) -> str:
    name = f"{stack}-{logical_id}"
    return (name.lower() if lowercase else name)[:limit]


def _source_dir(base: Path, uri: Any, where: str, prop: str) -> Path:
    if not isinstance(uri, str):
        raise ProvisioningError(f"{where}: {prop} must be a local path for the local cloud, got {uri!r}")
    directory = (base / uri).resolve()
    if not directory.is_dir():
        raise ProvisioningError(f"{where}: {prop} '{uri}' is not a directory ({directory})")
    return directory


def _tags(tags: Mapping[str, Any] | list[Mapping[str, Any]] | None) -> dict[str, str]:
    if not tags:
        return {}
    if isinstance(tags, list):
        return {str(tag["Key"]): str(tag["Value"]) for tag in tags}
    return {str(key): str(value) for key, value in tags.items()}


def _merge_globals(global_props: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals semantics: maps merge (resource wins), lists concatenate (globals first), scalars override."""
    merged = dict(global_props)
    for key, value in props.items():
        existing = merged.get(key)
        if isinstance(existing, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_globals(existing, value)
        elif isinstance(existing, list) and isinstance(value, list):
            merged[key] = existing + value
        else:
            merged[key] = value
    return merged


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _code_sha256(zip_bytes: bytes) -> str:
    """A Lambda ``CodeSha256``: base64 of the zip's sha256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def _function_configuration(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a function's configuration the template sets, as GetFunction and CreateFunction both say them."""
    layers = config.get("Layers") or []
    return {
        "Runtime": config.get("Runtime"),
        "Role": config.get("Role"),
        "Handler": config.get("Handler"),
        "Description": config.get("Description", ""),
        "Timeout": config.get("Timeout"),
        "MemorySize": config.get("MemorySize"),
        "Environment": {"Variables": dict((config.get("Environment") or {}).get("Variables") or {})},
        "Layers": [layer["Arn"] if isinstance(layer, Mapping) else str(layer) for layer in layers],
        "TracingConfig": {"Mode": (config.get("TracingConfig") or {}).get("Mode", "PassThrough")},
    }


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = next(iter(value))
    return key in {"Ref", "Condition"} or key.startswith("Fn::")


# ------------------------------------------------------------------------ the stack


class Provisioner:
    """Creates one template's resources; one method per supported resource type."""

    def __init__(self, template_path: Path, endpoint_url: str, context: StackContext) -> None:
        self.template_path = template_path
        self.base_dir = template_path.parent
        self.context = context
        self._session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the local cloud's fake credentials
            region_name=context.region,
        )
        self._endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self.creators: dict[str, Callable[[str, dict[str, Any]], Provisioned]] = {
            "AWS::S3::Bucket": self.s3_bucket,
            "AWS::S3::BucketPolicy": self.s3_bucket_policy,
            "AWS::DynamoDB::Table": self.dynamodb_table,
            "AWS::KMS::Key": self.kms_key,
            "AWS::SNS::Topic": self.sns_topic,
            "AWS::SQS::Queue": self.sqs_queue,
            "AWS::SQS::QueuePolicy": self.sqs_queue_policy,
            "AWS::Logs::LogGroup": self.log_group,
            "AWS::CloudWatch::Dashboard": self.dashboard,
            "AWS::Serverless::LayerVersion": self.layer_version,
            "AWS::Serverless::Function": self.function,
            "AWS::Serverless::StateMachine": self.state_machine,
            "AWS::Events::EventBus": self.event_bus,
            "AWS::Lambda::EventSourceMapping": self.event_source_mapping,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self._endpoint_url)  # type: ignore[call-overload]
        return self._clients[service]

    def name(self, logical_id: str, props: Mapping[str, Any], key: str, **kwargs: Any) -> str:
        return str(props.get(key) or physical_name(self.context.stack_name, logical_id, **kwargs))

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.context.region}:{ACCOUNT_ID}:{resource}"

    # -- storage

    def s3_bucket(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        s3 = self.client("s3")
        bucket = self.name(logical_id, props, "BucketName", lowercase=True, limit=63)
        try:
            if self.context.region == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.context.region})
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]}
            )
        if "BucketEncryption" in props:
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=bucket, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=props["OwnershipControls"])
        if "LifecycleConfiguration" in props:
            rules = [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        notification = props.get("NotificationConfiguration") or {}
        if notification.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true", "True"):
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        elif set(notification) - {"EventBridgeConfiguration"}:
            raise ProvisioningError(f"{logical_id}: only EventBridge bucket notifications are supported locally")
        if tags := _tags(props.get("Tags")):
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
        return Provisioned(
            logical_id,
            "AWS::S3::Bucket",
            bucket,
            {
                "Arn": f"arn:aws:s3:::{bucket}",
                "DomainName": f"{bucket}.s3.amazonaws.com",
                "RegionalDomainName": f"{bucket}.s3.{self.context.region}.amazonaws.com",
            },
        )

    def s3_bucket_policy(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        bucket = str(props["Bucket"])
        self.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(props["PolicyDocument"]))
        return Provisioned(logical_id, "AWS::S3::BucketPolicy", bucket)

    def dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        dynamodb = self.client("dynamodb")
        table = self.name(logical_id, props, "TableName", limit=255)
        billing = props.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": table,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(index_kind):
                request[index_kind] = [
                    {key: value for key, value in index.items() if key != "ContributorInsightsSpecification"}
                    for index in props[index_kind]
                ]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            request["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))} | {
                key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
            }
        if tags := _tags(props.get("Tags")):
            request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        try:
            description = dynamodb.create_table(**request)["TableDescription"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceInUseException":
                raise
            description = dynamodb.describe_table(TableName=table)["Table"]
        pitr = props.get("PointInTimeRecoverySpecification", {})
        if pitr.get("PointInTimeRecoveryEnabled"):
            dynamodb.update_continuous_backups(
                TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        if "TimeToLiveSpecification" in props and _ttl_differs(dynamodb, table, props["TimeToLiveSpecification"]):
            dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=props["TimeToLiveSpecification"])
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return Provisioned(logical_id, "AWS::DynamoDB::Table", table, attributes)

    # -- messaging and keys

    def kms_key(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        kms = self.client("kms")
        request: dict[str, Any] = {"Description": props.get("Description", "")}
        for prop in ("KeyUsage", "KeySpec"):
            if prop in props:
                request[prop] = props[prop]
        if "KeyPolicy" in props:
            request["Policy"] = json.dumps(props["KeyPolicy"])
        # Tagged as CloudFormation tags a stack's key, so the key is found again instead of created twice.
        tags = {**_tags(props.get("Tags")), **self.stack_tags(logical_id)}
        request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
        metadata = self._existing_key(logical_id) or kms.create_key(**request)["KeyMetadata"]
        if props.get("EnableKeyRotation") in (True, "true"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return Provisioned(
            logical_id, "AWS::KMS::Key", metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}
        )

    def stack_tags(self, logical_id: str) -> dict[str, str]:
        return {"aws:cloudformation:stack-name": self.context.stack_name, "aws:cloudformation:logical-id": logical_id}

    def _existing_key(self, logical_id: str) -> dict[str, Any] | None:
        kms = self.client("kms")
        wanted = self.stack_tags(logical_id).items()
        for page in kms.get_paginator("list_keys").paginate():
            for key in page["Keys"]:
                tags = {tag["TagKey"]: tag["TagValue"] for tag in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}
                if wanted <= tags.items():
                    metadata: dict[str, Any] = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
                    return metadata
        return None

    def sns_topic(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        sns = self.client("sns")
        name = self.name(logical_id, props, "TopicName", limit=256)
        attributes = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication")
            if key in props
        }
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if tags := _tags(props.get("Tags")):
            request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        arn = sns.create_topic(**request)["TopicArn"]
        for subscription in props.get("Subscription", []):
            sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
        return Provisioned(logical_id, "AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name})

    def sqs_queue(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        sqs = self.client("sqs")
        name = self.name(logical_id, props, "QueueName", limit=80)
        attributes: dict[str, str] = {}
        for key, value in props.items():
            if key in {"QueueName", "Tags"}:
                continue
            if key == "RedrivePolicy":
                attributes[key] = json.dumps(value)
            else:
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if tags := _tags(props.get("Tags")):
            request["tags"] = tags
        try:
            url = sqs.create_queue(**request)["QueueUrl"]
        except ClientError as exc:
            if _error_code(exc) not in {"QueueAlreadyExists", "QueueNameExists"}:
                raise
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            changeable = {key: value for key, value in attributes.items() if key != "FifoQueue"}
            if changeable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=changeable)
        arn = self.arn("sqs", name)
        return Provisioned(logical_id, "AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def sqs_queue_policy(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        sqs = self.client("sqs")
        queues = [str(url) for url in props["Queues"]]
        for url in queues:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
        return Provisioned(logical_id, "AWS::SQS::QueuePolicy", ",".join(queues))

    def log_group(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        logs = self.client("logs")
        name = self.name(logical_id, props, "LogGroupName", limit=512)
        try:
            logs.create_log_group(logGroupName=name)
        except ClientError as exc:
            if _error_code(exc) != "ResourceAlreadyExistsException":
                raise
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return Provisioned(logical_id, "AWS::Logs::LogGroup", name, {"Arn": self.arn("logs", f"log-group:{name}:*")})

    def dashboard(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        """PutDashboard, as CloudFormation does: a dashboard with the same name is replaced, so this is idempotent.

        CloudWatch checks the body is JSON with a ``widgets`` list; moto stores any text, so that is checked here.
        """
        name = self.name(logical_id, props, "DashboardName", limit=255)
        body = str(props["DashboardBody"])
        try:
            widgets = json.loads(body).get("widgets")
        except (ValueError, AttributeError) as exc:
            raise ProvisioningError(f"{logical_id}.DashboardBody is not a JSON object: {exc}") from exc
        if not isinstance(widgets, list):
            raise ProvisioningError(f"{logical_id}.DashboardBody has no 'widgets' list")
        self.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=body)
        return Provisioned(
            logical_id,
            "AWS::CloudWatch::Dashboard",
            name,
            {"Arn": f"arn:aws:cloudwatch::{ACCOUNT_ID}:dashboard/{name}"},  # dashboards are global
        )

    # -- serverless

    def layer_version(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        directory = _source_dir(self.base_dir, props.get("ContentUri"), logical_id, "ContentUri")
        content = zip_directory(directory, prefix="python/", exclude=_ZIP_EXCLUDES)
        request: dict[str, Any] = {
            "LayerName": self.name(logical_id, props, "LayerName", limit=140),
            "Description": props.get("Description", ""),
            # Only our own code ships in the layer zip; what `sam build` would install from its
            # requirements.txt is linked from the server's venv into the workers' path instead.
            "Content": {"ZipFile": content},
        }
        try:
            runtime_site.declare_layer_requirements(hashlib.sha256(content).hexdigest(), directory / "requirements.txt")
        except runtime_site.LayerDependencyError as exc:
            raise ProvisioningError(f"{logical_id}: {exc}") from exc
        for prop in ("CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
            if prop in props:
                request[prop] = props[prop]
        arn = (
            self._same_layer_version(request)
            or self.client("lambda").publish_layer_version(**request)["LayerVersionArn"]
        )
        return Provisioned(logical_id, "AWS::Serverless::LayerVersion", arn, {"Arn": arn})

    def _same_layer_version(self, request: Mapping[str, Any]) -> str | None:
        """The latest version of the layer when it already has this content (so its functions keep their ARN)."""
        lambda_ = self.client("lambda")
        versions = lambda_.list_layer_versions(LayerName=request["LayerName"]).get("LayerVersions", [])
        if not versions:
            return None
        latest = max(versions, key=lambda version: int(version["Version"]))
        content = lambda_.get_layer_version(LayerName=request["LayerName"], VersionNumber=latest["Version"])["Content"]
        same = content.get("CodeSha256") == _code_sha256(request["Content"]["ZipFile"])
        return str(latest["LayerVersionArn"]) if same else None

    def _role(self, logical_id: str, principal: str) -> str:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}],
        }
        name = physical_name(self.context.stack_name, f"{logical_id}Role")
        iam = self.client("iam")
        try:
            role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))
        except ClientError as exc:
            if _error_code(exc) != "EntityAlreadyExists":
                raise
            role = iam.get_role(RoleName=name)
        return str(role["Role"]["Arn"])

    def function(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        directory = _source_dir(self.base_dir, props.get("CodeUri"), logical_id, "CodeUri")
        name = self.name(logical_id, props, "FunctionName")
        role = str(props.get("Role") or self._role(logical_id, "lambda.amazonaws.com"))
        request: dict[str, Any] = {
            "FunctionName": name,
            "Runtime": props.get("Runtime", "python3.11"),
            "Role": role,
            "Handler": props["Handler"],
            "Code": {"ZipFile": zip_directory(directory, exclude=_ZIP_EXCLUDES)},
            "Description": props.get("Description", ""),
            "Timeout": int(props.get("Timeout", 3)),
            "MemorySize": int(props.get("MemorySize", 128)),
            "Tags": {"lambda:createdBy": "SAM", **_tags(props.get("Tags"))},
        }
        variables = (props.get("Environment") or {}).get("Variables") or {}
        if variables:
            request["Environment"] = {"Variables": {str(k): str(v) for k, v in variables.items()}}
        if props.get("Layers"):
            request["Layers"] = [str(layer) for layer in props["Layers"]]
        if props.get("Architectures"):
            request["Architectures"] = props["Architectures"]
        if props.get("Tracing") == "Active":
            request["TracingConfig"] = {"Mode": "Active"}
        lambda_ = self.client("lambda")
        try:
            arn = lambda_.create_function(**request)["FunctionArn"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceConflictException":
                raise
            arn = self._update_function(request)
        if props.get("EventInvokeConfig"):
            self._event_invoke_config(name, props["EventInvokeConfig"])
        ref = name
        target_arn = arn
        if props.get("AutoPublishAlias"):
            # PublishVersion of an unchanged function returns its latest version, as on AWS.
            version = lambda_.publish_version(FunctionName=name)["Version"]
            self._point_alias(name, str(props["AutoPublishAlias"]), str(version))
            target_arn = f"{arn}:{props['AutoPublishAlias']}"  # SAM points a function's events at its alias
        for event_id, event in (props.get("Events") or {}).items():
            rule_arn = self._eventbridge_rule_event(logical_id, event_id, event, target_arn, kind="Lambda")
            try:
                lambda_.add_permission(
                    FunctionName=target_arn,
                    StatementId=f"{logical_id}{event_id}Permission"[:100],
                    Action="lambda:InvokeFunction",
                    Principal="events.amazonaws.com",
                    SourceArn=rule_arn,
                )
            except ClientError as exc:
                if _error_code(exc) != "ResourceConflictException":  # granted on an earlier start
                    raise
        return Provisioned(logical_id, "AWS::Serverless::Function", ref, {"Arn": arn})

    def _event_invoke_config(self, name: str, config: Mapping[str, Any]) -> None:
        """SAM's ``EventInvokeConfig``: how often Lambda retries an asynchronous invocation, and where the event
        goes once it gave up (``DestinationConfig.OnFailure``, its ``Type`` being SAM's alone)."""
        request: dict[str, Any] = {"FunctionName": name}
        for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
            if key in config:
                request[key] = int(config[key])
        destinations = {
            kind: {"Destination": str(where["Destination"])}
            for kind, where in (config.get("DestinationConfig") or {}).items()
            if isinstance(where, Mapping) and where.get("Destination")
        }
        if destinations:
            request["DestinationConfig"] = destinations
        self.client("lambda").put_function_event_invoke_config(**request)

    def _update_function(self, request: Mapping[str, Any]) -> str:
        """Bring an existing function to ``request``: code and configuration only where they differ."""
        lambda_ = self.client("lambda")
        name = request["FunctionName"]
        current = lambda_.get_function(FunctionName=name)["Configuration"]
        if current["CodeSha256"] != _code_sha256(request["Code"]["ZipFile"]):
            lambda_.update_function_code(FunctionName=name, ZipFile=request["Code"]["ZipFile"])
            LOG.info("updated the code of %s", name)
        wanted = _function_configuration(request)
        if _function_configuration(current) != wanted:
            lambda_.update_function_configuration(FunctionName=name, **wanted)
            LOG.info("updated the configuration of %s", name)
        lambda_.tag_resource(Resource=current["FunctionArn"], Tags=request["Tags"])
        return str(current["FunctionArn"])

    def _point_alias(self, function: str, alias: str, version: str) -> None:
        lambda_ = self.client("lambda")
        try:
            lambda_.create_alias(FunctionName=function, Name=alias, FunctionVersion=version)
        except ClientError as exc:
            if _error_code(exc) not in {"ResourceConflictException", "ConflictException"}:
                raise
            if lambda_.get_alias(FunctionName=function, Name=alias)["FunctionVersion"] != version:
                lambda_.update_alias(FunctionName=function, Name=alias, FunctionVersion=version, RoutingConfig={})

    def state_machine(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        name = self.name(logical_id, props, "Name", limit=80)
        definition = self._definition(logical_id, props)
        role = str(props.get("Role") or self._role(logical_id, "states.amazonaws.com"))
        request: dict[str, Any] = {
            "name": name,
            "definition": definition,
            "roleArn": role,
            "type": props.get("Type", "STANDARD"),
        }
        if props.get("Tracing"):
            request["tracingConfiguration"] = {"enabled": bool(props["Tracing"].get("Enabled"))}
        if props.get("Logging"):
            request["loggingConfiguration"] = _logging_configuration(props["Logging"])
        if tags := _tags(props.get("Tags")):
            request["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        arn = (
            self._existing_state_machine(request)
            or self.client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
        )
        for event_id, event in (props.get("Events") or {}).items():
            self._eventbridge_rule_event(logical_id, event_id, event, arn, kind="StepFunctions")
        return Provisioned(logical_id, "AWS::Serverless::StateMachine", arn, {"Arn": arn, "Name": name})

    def _existing_state_machine(self, request: Mapping[str, Any]) -> str | None:
        """The ARN of the state machine of this name, updated to ``request`` where it differs; None if none."""
        sfn = self.client("stepfunctions")
        arn = self.arn("states", f"stateMachine:{request['name']}")
        try:
            current = sfn.describe_state_machine(stateMachineArn=arn)
        except ClientError as exc:
            if _error_code(exc) != "StateMachineDoesNotExist":
                raise
            return None
        update: dict[str, Any] = {}
        if current["definition"] != request["definition"]:
            update["definition"] = request["definition"]
        if current["roleArn"] != request["roleArn"]:
            update["roleArn"] = request["roleArn"]
        if update:
            sfn.update_state_machine(stateMachineArn=arn, **update)
            LOG.info("updated state machine %s (%s)", request["name"], ", ".join(sorted(update)))
        return arn

    def _definition(self, logical_id: str, props: dict[str, Any]) -> str:
        substitutions = {str(k): str(v) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
        if "DefinitionUri" in props:
            uri = props["DefinitionUri"]
            path = (self.base_dir / str(uri)).resolve() if isinstance(uri, str) else None
            if path is None or not path.is_file():
                raise ProvisioningError(f"{logical_id}: DefinitionUri {uri!r} is not a local file")
            text = path.read_text(encoding="utf-8")
        elif "Definition" in props:
            text = json.dumps(props["Definition"])
        else:
            raise ProvisioningError(f"{logical_id}: a state machine needs DefinitionUri or Definition")
        variables = {**self.context.pseudo(), **substitutions}

        def replace(match: re.Match[str]) -> str:
            key = match.group(1).strip()
            return variables.get(key, match.group(0))

        definition = _SUB_PATTERN.sub(replace, text)
        if unresolved := sorted({key for key in _SUB_PATTERN.findall(definition) if key in substitutions}):
            raise ProvisioningError(f"{logical_id}: unresolved DefinitionSubstitutions {unresolved}")
        json.loads(definition)  # fail here, naming the resource, rather than deep inside moto
        return definition

    def _eventbridge_rule_event(
        self, logical_id: str, event_id: str, event: Mapping[str, Any], arn: str, *, kind: str
    ) -> str:
        """A SAM ``EventBridgeRule`` event: the rule and its one target (``kind``: StepFunctions or Lambda).

        As SAM does, a state machine target gets a role to start executions with, and a Lambda target
        none (the function gets a resource policy instead); returns the rule's ARN.
        """
        if event.get("Type") != "EventBridgeRule":
            raise ProvisioningError(
                f"{logical_id}.Events.{event_id}: event type {event.get('Type')} is not supported by the local cloud"
            )
        props = event.get("Properties") or {}
        events = self.client("events")
        rule_name = str(props.get("RuleName") or physical_name(self.context.stack_name, f"{logical_id}{event_id}"))
        bus = str(props.get("EventBusName", "default"))
        rule_arn = events.put_rule(
            Name=rule_name,
            EventPattern=json.dumps(props["Pattern"]),
            State=str(props.get("State", "ENABLED")),
            EventBusName=bus,
        )["RuleArn"]
        target: dict[str, Any] = {
            "Id": str(props.get("Target", {}).get("Id", f"{logical_id}{event_id}{kind}Target")),
            "Arn": arn,
        }
        if kind == "StepFunctions":
            target["RoleArn"] = self._role(f"{logical_id}{event_id}", "events.amazonaws.com")
        for prop in ("RetryPolicy", "DeadLetterConfig", "Input", "InputPath", "InputTransformer"):
            if prop in props:
                target[prop] = props[prop]
        events.put_targets(Rule=rule_name, EventBusName=bus, Targets=[target])
        return str(rule_arn)

    # -- lifecycle events

    def event_bus(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        events = self.client("events")
        name = self.name(logical_id, props, "Name")
        try:
            arn = events.create_event_bus(Name=name)["EventBusArn"]
        except ClientError as exc:
            if _error_code(exc) != "ResourceAlreadyExistsException":
                raise
            arn = events.describe_event_bus(Name=name)["Arn"]
        return Provisioned(logical_id, "AWS::Events::EventBus", name, {"Arn": str(arn), "Name": name})

    def event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> Provisioned:
        """A stream's mapping to a function, with every delivery setting the local cloud's poller honours
        (``conveyor_local.moto_patches.dynamodbstreams``); found, not duplicated, on a later start."""
        lambda_ = self.client("lambda")
        function, source = str(props["FunctionName"]), str(props["EventSourceArn"])
        for page in lambda_.get_paginator("list_event_source_mappings").paginate(
            FunctionName=function, EventSourceArn=source
        ):
            for mapping in page["EventSourceMappings"]:
                return Provisioned(logical_id, "AWS::Lambda::EventSourceMapping", str(mapping["UUID"]))
        request = {key: props[key] for key in _EVENT_SOURCE_MAPPING_KEYS if key in props}
        for number in (
            "BatchSize",
            "MaximumBatchingWindowInSeconds",
            "ParallelizationFactor",
            "MaximumRetryAttempts",
            "MaximumRecordAgeInSeconds",
        ):
            if number in request:
                request[number] = int(request[number])
        if "BisectBatchOnFunctionError" in request:
            request["BisectBatchOnFunctionError"] = request["BisectBatchOnFunctionError"] in (True, "true", "True")
        mapping = lambda_.create_event_source_mapping(FunctionName=function, EventSourceArn=source, **request)
        return Provisioned(logical_id, "AWS::Lambda::EventSourceMapping", str(mapping["UUID"]))

    # -- orchestration

    def create(self, logical_id: str, resource: Mapping[str, Any], global_function: Mapping[str, Any]) -> Provisioned:
        resource_type = str(resource.get("Type"))
        creator = self.creators.get(resource_type)
        if creator is None:
            raise ProvisioningError(f"{logical_id}: resource type {resource_type} is not supported by the local cloud")
        props = resource.get("Properties") or {}
        if resource_type == "AWS::Serverless::Function":
            props = _merge_globals(global_function, props)
        resolved = resolve(props, self.context, logical_id)
        try:
            return creator(logical_id, resolved)
        except ProvisioningError:
            raise
        except Exception as exc:
            raise ProvisioningError(f"{logical_id} ({resource_type}): {exc}") from exc


_EVENT_SOURCE_MAPPING_KEYS = (
    "StartingPosition",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "ParallelizationFactor",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "DestinationConfig",
    "FilterCriteria",
    "Enabled",
)


def _ttl_differs(dynamodb: Any, table: str, specification: Mapping[str, Any]) -> bool:
    """DynamoDB refuses to set a table's TTL to what it already is."""
    current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    enabled = current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"}
    wanted = specification.get("Enabled") in (True, "true", "True")
    return enabled != wanted or (wanted and current.get("AttributeName") != specification.get("AttributeName"))


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """CloudFormation's lifecycle rule shape -> the S3 API's."""
    api: dict[str, Any] = {"ID": rule.get("Id", ""), "Status": rule["Status"]}
    api["Filter"] = {"Prefix": rule["Prefix"]} if "Prefix" in rule else {"Prefix": ""}
    if "ExpirationInDays" in rule:
        api["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        api["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "NoncurrentVersionExpirationInDays" in rule:
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return api


def _logging_configuration(logging_props: Mapping[str, Any]) -> dict[str, Any]:
    destinations = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
        for d in logging_props.get("Destinations", [])
    ]
    return {
        "level": logging_props.get("Level", "OFF"),
        "includeExecutionData": bool(logging_props.get("IncludeExecutionData", False)),
        "destinations": destinations,
    }


def _parameters(template: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for name, spec in (template.get("Parameters") or {}).items():
        if name in overrides:
            parameters[name] = overrides[name]
        elif "Default" in spec:
            parameters[name] = spec["Default"]
        else:
            raise ProvisioningError(f"Parameters.{name}: no Default and no override given")
        allowed = spec.get("AllowedValues")
        if allowed and parameters[name] not in allowed and str(parameters[name]) not in map(str, allowed):
            raise ProvisioningError(f"Parameters.{name}: {parameters[name]!r} is not one of {allowed}")
    return parameters


def creation_order(template: Mapping[str, Any]) -> list[str]:
    """Logical ids so that every resource comes after the ones it references (Globals count for functions)."""
    resources: Mapping[str, Any] = template["Resources"]
    global_function = ((template.get("Globals") or {}).get("Function")) or {}
    graph: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        body = dict(resource)
        if resource.get("Type") == "AWS::Serverless::Function":
            body["__globals__"] = global_function
        depends_on = resource.get("DependsOn") or []
        references = set(_references(body)) | set([depends_on] if isinstance(depends_on, str) else depends_on)
        graph[logical_id] = {name for name in references if name in resources and name != logical_id}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ProvisioningError(f"circular references between resources: {exc.args[1]}") from exc


@dataclass(frozen=True)
class ProvisionResult:
    outputs: dict[str, str]
    resources: dict[str, Provisioned]


def provision(
    template_path: Path,
    endpoint_url: str,
    *,
    stack_name: str = DEFAULT_STACK_NAME,
    region: str = DEFAULT_REGION,
    parameter_overrides: Mapping[str, Any] | None = None,
) -> ProvisionResult:
    """Create every resource of ``template_path`` on the local cloud at ``endpoint_url``; return the outputs."""
    template_path = Path(template_path).resolve()
    template = load_template(template_path)
    context = StackContext(stack_name, region, _parameters(template, parameter_overrides or {}))
    provisioner = Provisioner(template_path, endpoint_url, context)
    global_function = ((template.get("Globals") or {}).get("Function")) or {}
    unsupported = [
        f"{logical_id}: resource type {resource.get('Type')}"
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") not in provisioner.creators
    ]
    if unsupported:
        raise ProvisioningError("not supported by the local cloud: " + "; ".join(unsupported))
    for logical_id in creation_order(template):
        resource = template["Resources"][logical_id]
        context.resources[logical_id] = provisioner.create(logical_id, resource, global_function)
        LOG.info("created %s %s", resource["Type"], logical_id)
    outputs = {
        name: str(resolve(output["Value"], context, f"Outputs.{name}"))
        for name, output in (template.get("Outputs") or {}).items()
    }
    return ProvisionResult(outputs=outputs, resources=context.resources)
