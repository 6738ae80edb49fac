"""Elastic Beanstalk deployment targets: application versions, environments, CNAME swaps, health.

Every call that changes an environment waits for it to be ``Ready`` again (boto3's ``environment_updated``
waiter: EB answers ``Launching``/``Updating`` first), so the stage that made the change hands on an
environment that serves what it asked for, or fails naming it.
"""

from __future__ import annotations

from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from conveyor.adapters import aws
from conveyor.domain.errors import DeployFailedError, TargetNotManagedError, TargetReadError, TrafficShiftError
from conveyor.domain.ports import BeanstalkEnvironment, BeanstalkHealth

HEALTHCHECK_OPTION = {"Namespace": "aws:elasticbeanstalk:application", "OptionName": "Application Healthcheck URL"}
#: How long a change may take to settle: 10 s between reads, at most 10 minutes (a Lambda stage has 15).
READY_WAIT = {"Delay": 10, "MaxAttempts": 60}


class BeanstalkTargets:
    """``BeanstalkEnvironments`` on the Elastic Beanstalk API."""

    def __init__(self, session: Session) -> None:
        self._eb = aws.client(session, "elasticbeanstalk")

    def environment(self, application: str, name: str) -> BeanstalkEnvironment | None:
        """The live (not terminated) environment ``name`` of ``application``; None when there is none."""
        try:
            found = self._eb.describe_environments(
                ApplicationName=application, EnvironmentNames=[name], IncludeDeleted=False
            )["Environments"]
        except (ClientError, BotoCoreError) as exc:
            raise TargetReadError(f"reading Elastic Beanstalk environment {application}/{name} failed: {exc}") from exc
        live = [env for env in found if env.get("Status") not in ("Terminated", "Terminating")]
        return _environment(live[0]) if live else None

    def ensure_managed(self, environment: BeanstalkEnvironment, tag_key: str) -> None:
        """``TargetNotManagedError`` unless the environment carries ``tag_key=true`` (as a managed function must)."""
        where = f"{environment.application}/{environment.name}"
        try:
            tags = self._eb.list_tags_for_resource(ResourceArn=environment.arn)["ResourceTags"]
        except ClientError as exc:
            if aws.error_code(exc) in ("AccessDenied", "AccessDeniedException"):
                raise TargetNotManagedError(
                    f"Elastic Beanstalk environment {where}: reading its tags was denied"
                ) from exc
            raise TargetReadError(f"reading the tags of Elastic Beanstalk environment {where} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TargetReadError(f"reading the tags of Elastic Beanstalk environment {where} failed: {exc}") from exc
        if not any(tag.get("Key") == tag_key and tag.get("Value") == "true" for tag in tags):
            raise TargetNotManagedError(
                f"Elastic Beanstalk environment {where} is not tagged {tag_key}=true; Conveyor may not change it"
            )

    def version_exists(self, application: str, label: str) -> bool:
        try:
            versions = self._eb.describe_application_versions(ApplicationName=application, VersionLabels=[label])
        except (ClientError, BotoCoreError) as exc:
            raise TargetReadError(
                f"reading version {label} of Elastic Beanstalk app {application} failed: {exc}"
            ) from exc
        return bool(versions["ApplicationVersions"])

    def create_version(self, application: str, label: str, bucket: str, key: str, description: str) -> None:
        try:
            self._eb.create_application_version(
                ApplicationName=application,
                VersionLabel=label,
                Description=description[:200],
                SourceBundle={"S3Bucket": bucket, "S3Key": key},
                Process=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeployFailedError(
                f"creating version {label} of Elastic Beanstalk app {application} from s3://{bucket}/{key} "
                f"failed: {exc}"
            ) from exc

    def create_environment(
        self, application: str, name: str, label: str, *, like: BeanstalkEnvironment, health_path: str, tag_key: str
    ) -> BeanstalkEnvironment:
        """A new environment of ``application`` running ``label`` on ``like``'s platform (blue/green's idle one),
        tagged managed: Conveyor created it, so it may change it."""
        try:
            self._eb.create_environment(
                ApplicationName=application,
                EnvironmentName=name,
                CNAMEPrefix=name.lower(),
                VersionLabel=label,
                SolutionStackName=like.solution_stack or "",
                OptionSettings=[{**HEALTHCHECK_OPTION, "Value": health_path}],
                Tags=[{"Key": tag_key, "Value": "true"}],
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeployFailedError(
                f"creating Elastic Beanstalk environment {application}/{name} failed: {exc}"
            ) from exc
        return self._ready(application, name, DeployFailedError)

    def deploy_version(self, application: str, name: str, label: str) -> BeanstalkEnvironment:
        try:
            self._eb.update_environment(ApplicationName=application, EnvironmentName=name, VersionLabel=label)
        except (ClientError, BotoCoreError) as exc:
            raise DeployFailedError(f"updating {application}/{name} to version {label} failed: {exc}") from exc
        return self._ready(application, name, DeployFailedError)

    def swap_cnames(self, application: str, source: str, destination: str) -> None:
        try:
            self._eb.swap_environment_cnames(SourceEnvironmentName=source, DestinationEnvironmentName=destination)
        except (ClientError, BotoCoreError) as exc:
            raise TrafficShiftError(
                f"swapping the CNAMEs of {application}/{source} and {destination} failed: {exc}"
            ) from exc
        self._ready(application, source, TrafficShiftError)
        self._ready(application, destination, TrafficShiftError)

    def health(self, application: str, name: str) -> BeanstalkHealth:
        """The environment's health: enhanced health's causes when EB has them, else its basic color."""
        try:
            answer = self._eb.describe_environment_health(EnvironmentName=name, AttributeNames=["All"])
            return BeanstalkHealth(
                color=str(answer.get("Color", "Grey")),
                status=answer.get("HealthStatus"),
                causes=[str(cause) for cause in answer.get("Causes", [])],
            )
        except ClientError as exc:
            if aws.error_code(exc) != "InvalidRequestException":  # enhanced health is off: basic health remains
                raise TargetReadError(f"reading the health of {application}/{name} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TargetReadError(f"reading the health of {application}/{name} failed: {exc}") from exc
        env = self.environment(application, name)
        if env is None:
            return BeanstalkHealth(color="Grey", status=None, causes=[f"{application}/{name} does not exist"])
        return BeanstalkHealth(color=env.health, status=env.health_status)

    def _ready(self, application: str, name: str, error: type[Exception]) -> BeanstalkEnvironment:
        try:
            self._eb.get_waiter("environment_updated").wait(
                ApplicationName=application, EnvironmentNames=[name], WaiterConfig=READY_WAIT
            )
        except (WaiterError, ClientError, BotoCoreError) as exc:
            raise error(f"Elastic Beanstalk environment {application}/{name} did not become Ready: {exc}") from exc
        env = self.environment(application, name)
        if env is None:
            raise error(f"Elastic Beanstalk environment {application}/{name} disappeared while it was changed")
        return env


def _environment(raw: dict[str, Any]) -> BeanstalkEnvironment:
    return BeanstalkEnvironment(
        name=str(raw["EnvironmentName"]),
        application=str(raw["ApplicationName"]),
        cname=str(raw.get("CNAME", "")),
        status=str(raw.get("Status", "")),
        version_label=raw.get("VersionLabel"),
        health=str(raw.get("Health", "Grey")),
        health_status=raw.get("HealthStatus"),
        solution_stack=raw.get("SolutionStackName"),
        arn=str(raw.get("EnvironmentArn", "")),
    )
