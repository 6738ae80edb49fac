"""Elastic Beanstalk: the actions Conveyor's Beanstalk target uses, served by ``conveyor_local.beanstalk``.

``moto.elasticbeanstalk.responses.EBResponse.call_action(self)``
    moto 5.2.5 implements neither application versions nor ``UpdateEnvironment``, ``TerminateEnvironment``,
    ``SwapEnvironmentCNAMEs`` or ``DescribeEnvironmentHealth``, and its environments have no CNAME, no version
    and a constant Grey health. The actions in ``ACTIONS`` are answered by the emulation (environments that
    really serve their bundle); every other action is moto's own.
``moto.elasticbeanstalk.exceptions.ElasticBeanstalkException``
    a refusal is raised as it, with EB's error code: moto finds the service's error shapes by its module.
``moto.elasticbeanstalk.models.eb_backends``
    each account and region's emulation lives on its backend (``conveyor_local.beanstalk.STATE_ATTRIBUTE``), so
    snapshots (``conveyor_local.persistence.BACKENDS``) and resets carry it.
``moto.s3.models.s3_backends``
    a ``SourceBundle`` is read from the local cloud's S3 as stored (the object's current version).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor_local.beanstalk import CLOUD, BeanstalkRequestError, Environment, RegionBeanstalk
from conveyor_local.moto_patches.registry import original, patches, relies_on

EB_RESPONSE = "moto.elasticbeanstalk.responses.EBResponse"
S3_BACKENDS = "moto.s3.models.s3_backends"


def _region(response: Any) -> RegionBeanstalk:
    return CLOUD.region(response.current_account, response.region)


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).lower() == "true"


def _bundle(account_id: str, bucket: str, key: str) -> bytes | None:
    from moto.s3.models import s3_backends

    try:
        stored = s3_backends[account_id]["global"].get_object(bucket, key)
    except Exception:
        return None
    return None if stored is None else bytes(stored.value)


def _environment(response: Any, prefix: str = "") -> Environment:
    return _region(response).environment(
        response._get_param(f"{prefix}EnvironmentName"), response._get_param(f"{prefix}EnvironmentId")
    )


def create_application(response: Any) -> dict[str, Any]:
    app = _region(response).create_application(response._get_param("ApplicationName"))
    return {"Application": app.describe()}


def describe_applications(response: Any) -> dict[str, Any]:
    names = response._get_param("ApplicationNames") or []
    apps = _region(response).applications.values()
    return {"Applications": [a.describe() for a in apps if not names or a.name in names]}


def create_application_version(response: Any) -> dict[str, Any]:
    source = response._get_param("SourceBundle") or {}
    bucket, key = str(source.get("S3Bucket", "")), str(source.get("S3Key", ""))
    version = _region(response).create_application_version(
        response._get_param("ApplicationName"),
        response._get_param("VersionLabel"),
        bucket,
        key,
        _bundle(response.current_account, bucket, key),
        description=response._get_param("Description") or "",
        auto_create=_flag(response._get_param("AutoCreateApplication"), False),
    )
    return {"ApplicationVersion": version.describe()}


def describe_application_versions(response: Any) -> dict[str, Any]:
    versions = _region(response).versions(
        response._get_param("ApplicationName"), response._get_param("VersionLabels") or None
    )
    return {"ApplicationVersions": [v.describe() for v in versions]}


def create_environment(response: Any) -> dict[str, Any]:
    tags = {tag["Key"]: tag["Value"] for tag in response._get_param("Tags") or []}
    env = _region(response).create_environment(
        response._get_param("ApplicationName"),
        response._get_param("EnvironmentName"),
        version_label=response._get_param("VersionLabel"),
        cname_prefix=response._get_param("CNAMEPrefix"),
        options=response._get_param("OptionSettings"),
        tags=tags,
    )
    return env.describe()


def describe_environments(response: Any) -> dict[str, Any]:
    region = _region(response)
    application = response._get_param("ApplicationName")
    names = response._get_param("EnvironmentNames") or []
    ids = response._get_param("EnvironmentIds") or []
    include_deleted = _flag(response._get_param("IncludeDeleted"), True)
    found = [
        env
        for env in list(region.environments.values())
        if (include_deleted or env.status != "Terminated")
        and (not application or env.application_name == application)
        and (not names or env.name in names)
        and (not ids or env.environment_id in ids)
    ]
    return {"Environments": [env.describe() for env in found]}


def update_environment(response: Any) -> dict[str, Any]:
    env = _region(response).update_environment(
        _environment(response),
        version_label=response._get_param("VersionLabel"),
        options=response._get_param("OptionSettings"),
    )
    return env.describe()


def terminate_environment(response: Any) -> dict[str, Any]:
    env = _region(response).terminate_environment(_environment(response))
    return env.describe()


def swap_environment_cnames(response: Any) -> None:
    _region(response).swap_cnames(_environment(response, "Source"), _environment(response, "Destination"))


def describe_environment_health(response: Any) -> dict[str, Any]:
    env = _environment(response)
    health = env.health()
    return {
        "EnvironmentName": env.name,
        "HealthStatus": health.status,
        "Status": env.status,
        "Color": health.color,
        "Causes": health.causes,
    }


def list_tags_for_resource(response: Any) -> dict[str, Any]:
    arn = response._get_param("ResourceArn")
    for env in _region(response).live():
        if env.arn == arn:
            tags = [{"Key": k, "Value": v} for k, v in env.tags.items()]
            return {"ResourceArn": arn, "ResourceTags": tags}
    raise BeanstalkRequestError("ResourceNotFoundException", f"Resource not found for ARN '{arn}'.")


ACTIONS: dict[str, Callable[[Any], dict[str, Any] | None]] = {
    "CreateApplication": create_application,
    "DescribeApplications": describe_applications,
    "CreateApplicationVersion": create_application_version,
    "DescribeApplicationVersions": describe_application_versions,
    "CreateEnvironment": create_environment,
    "DescribeEnvironments": describe_environments,
    "UpdateEnvironment": update_environment,
    "TerminateEnvironment": terminate_environment,
    "SwapEnvironmentCNAMEs": swap_environment_cnames,
    "DescribeEnvironmentHealth": describe_environment_health,
    "ListTagsForResource": list_tags_for_resource,
}


def call_action(self: Any) -> Any:
    """Answer an emulated action (its refusals as EB's errors); anything else is moto's.

    moto is imported here, not at module level: the CLI imports this package without running a cloud."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.elasticbeanstalk.exceptions import ElasticBeanstalkException  # its module names the service

    handler = ACTIONS.get(self._get_action())
    if handler is None:
        return original(f"{EB_RESPONSE}.call_action")(self)
    try:
        answer = handler(self)
    except BeanstalkRequestError as exc:
        return self.serialized(ActionResult(ElasticBeanstalkException(exc.code, exc.message)))
    return self.serialized(EmptyResult() if answer is None else ActionResult(answer))


patches(f"{EB_RESPONSE}.call_action", ("self",), call_action)
relies_on(f"{EB_RESPONSE}.serialized", ("self", "action_result"))
relies_on(f"{EB_RESPONSE}._get_action", ("self",))
relies_on(S3_BACKENDS)
relies_on("moto.elasticbeanstalk.exceptions.ElasticBeanstalkException")
relies_on("moto.elasticbeanstalk.models.eb_backends")
