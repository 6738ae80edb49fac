"""Where the CLI's AWS calls go: the embedded local cloud, or a deployed Conveyor stack on AWS.

``--local`` or ``CONVEYOR_LOCAL=1`` selects the local cloud (its state file gives the endpoint
and the stack outputs); otherwise the outputs come from the CloudFormation stack that
``sam deploy`` created (``--stack-name``, default ``conveyor``, as in samconfig.toml), read with the
credentials, profile (``--profile``) and region (``--region``) the AWS CLI would use.

The local cloud's state lives in one directory whatever folder a command runs from (``state_dir``):
``CONVEYOR_STATE_DIR`` if set (``conveyor local env`` exports it), else the user's data directory
(``$XDG_DATA_HOME/conveyor``, by default ``~/.local/share/conveyor``). A ``./.conveyor`` left by an earlier
Conveyor, which kept its state in the working directory, is still found (``StateDir.legacy`` says so).

Either way the CLI talks through one boto3 session of its own (``Cloud.session``), from which it builds
the library's adapters; it never changes this process's environment to steer them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boto3.session import Session
from botocore.exceptions import BotoCoreError, ClientError
from conveyor.domain.target_identity import Home

from conveyor_local.server import STATE_FILE, client_env, read_state

STATE_DIR_ENV = "CONVEYOR_STATE_DIR"
LEGACY_STATE_DIR = Path(".conveyor")
"""Where Conveyor kept the local cloud's state before it moved to the user's data directory (relative to
the working directory, which is why every command run elsewhere found no local cloud)."""
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_NAME = "template.yaml"
REQUIRED_OUTPUTS = ("ArtifactBucketName", "StateMachineArn", "LedgerTableName", "NotificationTopicArn")


class CliError(Exception):
    """A failure the CLI reports as one line and a non-zero exit code."""


class UsageError(CliError):
    """Arguments that cannot work together (found after argparse): one line and exit code 2, as argparse's own."""


@dataclass(frozen=True)
class Outputs:
    bucket: str
    state_machine_arn: str
    ledger_table: str
    topic_arn: str
    reconcile_function_name: str | None = None
    reconcile_dead_letter_queue_url: str | None = None
    others: dict[str, str] = field(default_factory=dict)
    """Every other output of the stack (the lifecycle event bus, the dashboard, ...), by name."""

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
            others={name: str(value) for name, value in outputs.items() if name not in REQUIRED_OUTPUTS},
        )

    def as_dict(self) -> dict[str, str]:
        """Every output of the stack: the four Conveyor needs first, then the others by name."""
        values = (self.bucket, self.state_machine_arn, self.ledger_table, self.topic_arn)
        return dict(zip(REQUIRED_OUTPUTS, values, strict=True)) | dict(sorted(self.others.items()))


def user_data_dir() -> Path:
    """The user's data directory for Conveyor, as the XDG base directory spec places it."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".local" / "share"  # the spec ignores relative
    return root / "conveyor"


@dataclass(frozen=True)
class StateDir:
    """Where the local cloud's state is, and why there."""

    path: Path
    legacy: bool = False
    """True when it is a ``./.conveyor`` left by an earlier Conveyor (the data directory holds nothing yet)."""

    def note(self) -> str | None:
        """What to tell the user about a legacy state directory (None for any other)."""
        if not self.legacy:
            return None
        return (
            f"using the local cloud state in {self.path} (where an earlier Conveyor kept it, found because "
            f"{user_data_dir()} holds none): run `conveyor local down`, then move it there, or set "
            f"{STATE_DIR_ENV}={self.path}"
        )


def _holds_state(path: Path) -> bool:
    return (path / STATE_FILE).is_file() or (path / "snapshot").is_dir()


def resolve_state_dir() -> StateDir:
    """``CONVEYOR_STATE_DIR``, else the user's data directory, else a ``./.conveyor`` from before (see the module)."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return StateDir(Path(configured).expanduser().resolve())
    default = user_data_dir()
    legacy = LEGACY_STATE_DIR.resolve()
    if not _holds_state(default) and _holds_state(legacy):
        return StateDir(legacy, legacy=True)
    return StateDir(default)


def state_dir() -> Path:
    """The local cloud's state directory, the same from any working directory (``resolve_state_dir``)."""
    return resolve_state_dir().path


def default_template() -> Path:
    """The SAM template ``conveyor local up`` provisions: the one of the Conveyor checkout this CLI runs from.

    Not ``./template.yaml``: the CLI works from any folder, and another project's template is not Conveyor's.
    """
    template = REPOSITORY_ROOT / TEMPLATE_NAME
    if not template.is_file():
        raise CliError(
            f"no {TEMPLATE_NAME} beside this Conveyor ({REPOSITORY_ROOT}): pass the stack's template with --template"
        )
    return template


def warn(message: str) -> None:
    """One line on stderr, as the CLI reports what is not an error."""
    print(f"conveyor: {message}", file=sys.stderr)


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

    def __init__(
        self,
        *,
        local: bool,
        stack_name: str = "conveyor",
        local_state: Path | None = None,
        profile: str | None = None,
        region: str | None = None,
    ) -> None:
        self.local = local
        self.session: Session
        self.endpoint_url: str | None = None
        #: The local cloud's HTTP front for Elastic Beanstalk CNAMEs (``conveyor_local.beanstalk``); None on AWS.
        self.beanstalk_front: str | None = None
        if local:
            # The local cloud has one region and fake credentials: --profile and --region do not apply.
            where = local_state or state_dir()
            state = read_state(where)
            local_session = LocalCloudSession(state)
            self.session, self.endpoint_url = local_session, local_session.endpoint_url
            self.outputs = Outputs.from_mapping(state["outputs"], f"the local cloud ({where})")
            self.beanstalk_front = state.get("beanstalk_front")
        else:
            # Credentials as the AWS CLI finds them (--profile or AWS_PROFILE, ~/.aws/config, ...), and the region as
            # AWS CLI v2 does: --region, then AWS_REGION (which botocore alone does not read), then
            # AWS_DEFAULT_REGION or the profile's.
            try:
                self.session = Session(profile_name=profile, region_name=region or os.environ.get("AWS_REGION") or None)
            except BotoCoreError as exc:  # ProfileNotFound names the profile
                raise CliError(str(exc)) from exc
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
