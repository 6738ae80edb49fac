"""Where the CLI's AWS calls go: the embedded local cloud, or a deployed Conveyor stack on AWS.

``--local`` or ``CONVEYOR_LOCAL=1`` selects the local cloud (its state file gives the endpoint
and the stack outputs); otherwise the outputs come from the CloudFormation stack that
``sam deploy`` created (``--stack-name``, default ``conveyor``, as in samconfig.toml).

Either way the CLI talks through one boto3 session of its own (``Cloud.session``), from which it builds
the library's adapters; it never changes this process's environment to steer them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError
from conveyor.domain.target_identity import Home

from conveyor_local.server import client_env, read_state

STATE_DIR_ENV = "CONVEYOR_STATE_DIR"
REQUIRED_OUTPUTS = ("ArtifactBucketName", "StateMachineArn", "LedgerTableName", "NotificationTopicArn")


class CliError(Exception):
    """A failure the CLI reports as one line and a non-zero exit code."""


@dataclass(frozen=True)
class Outputs:
    bucket: str
    state_machine_arn: str
    ledger_table: str
    topic_arn: str
    reconcile_function_name: str | None = None
    reconcile_dead_letter_queue_url: str | None = None

    @property
    def reconcile_function(self) -> str:
        return self._required(self.reconcile_function_name, "ReconcileFunctionName")

    @property
    def reconcile_dead_letter_queue(self) -> str:
        return self._required(self.reconcile_dead_letter_queue_url, "ReconcileDeadLetterQueueUrl")

    @staticmethod
    def _required(value: str | None, output: str) -> str:
        if not value:
            raise CliError(f"the stack has no {output} output: deploy this version of Conveyor (sam deploy)")
        return value

    @classmethod
    def from_mapping(cls, outputs: dict[str, str], source: str) -> Outputs:
        missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
        if missing:
            raise CliError(f"{source} lacks the outputs {', '.join(missing)}")
        return cls(
            bucket=outputs["ArtifactBucketName"],
            state_machine_arn=outputs["StateMachineArn"],
            ledger_table=outputs["LedgerTableName"],
            topic_arn=outputs["NotificationTopicArn"],
            reconcile_function_name=outputs.get("ReconcileFunctionName"),
            reconcile_dead_letter_queue_url=outputs.get("ReconcileDeadLetterQueueUrl"),
        )

    def as_dict(self) -> dict[str, str]:
        values = (self.bucket, self.state_machine_arn, self.ledger_table, self.topic_arn)
        return dict(zip(REQUIRED_OUTPUTS, values, strict=True))


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV, ".conveyor"))


def wants_local(flag: bool) -> bool:
    return flag or os.environ.get("CONVEYOR_LOCAL", "") not in ("", "0", "false")


class LocalCloudSession(Session):
    """A boto3 session whose every client goes to the local cloud's endpoint, with its fake credentials.

    botocore reads a default endpoint only from the environment or a config file, so the session supplies
    it to each client it builds (a resource builds its client through ``client`` too); an endpoint a
    caller names still wins.
    """

    def __init__(self, state: dict[str, Any]) -> None:
        env = client_env(state)
        super().__init__(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )
        self.endpoint_url = env["AWS_ENDPOINT_URL"]

    def client(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("endpoint_url") is None:
            kwargs["endpoint_url"] = self.endpoint_url
        return super().client(*args, **kwargs)


class Cloud:
    """The session, clients and stack outputs of one target (local or AWS)."""

    def __init__(self, *, local: bool, stack_name: str = "conveyor", local_state: Path | None = None) -> None:
        self.local = local
        self.session: Session
        self.endpoint_url: str | None = None
        if local:
            state = read_state(local_state or state_dir())
            local_session = LocalCloudSession(state)
            self.session, self.endpoint_url = local_session, local_session.endpoint_url
            self.outputs = Outputs.from_mapping(state["outputs"], f"the local cloud ({state_dir()})")
        else:
            # Credentials, region and profile as the AWS CLI finds them (AWS_PROFILE, ~/.aws/config, ...).
            self.session = Session()
            self.outputs = Outputs.from_mapping(_stack_outputs(self.session, stack_name), f"stack {stack_name!r}")

    def client(self, service: str) -> Any:
        return self.session.client(service)  # type: ignore[call-overload]

    def home(self) -> Home:
        """The account and region Conveyor runs in, read from its state machine's ARN (no STS call)."""
        try:
            return Home.from_arn(self.outputs.state_machine_arn)
        except ValueError as exc:
            raise CliError(f"cannot tell Conveyor's account and region: {exc}") from exc


def _stack_outputs(session: Session, stack_name: str) -> dict[str, str]:
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as exc:
        raise CliError(
            f"cannot read stack {stack_name!r} ({exc}); deploy it with `sam deploy`, or use --local"
        ) from exc
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
