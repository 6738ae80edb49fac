"""The ports stages talk to, and the values they answer with.

Each port is a ``typing.Protocol``; one adapter per AWS service implements it (``conveyor.adapters``),
and the tests' fakes implement it in memory (``tests/fakes/ports.py``). Nothing here does I/O.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from conveyor.domain.contracts import GateResult, PackageRef, ServedRelease
from conveyor.domain.events import LifecycleEvent
from conveyor.domain.freeze import OperatorFreeze
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord, LockState, ReleaseRecord, StageEvent, TargetClaim, Waiter

# --- the ledger, the locks and who owns a target ----------------------------------------------------
NOTICE_IN_FLIGHT = ""
"""``claim_notice``'s answer while another try holds the notice's lease and has not recorded a publication."""


@dataclass
class StageWrites:
    """What a stage records beside its event once its body completed: one ledger write for all of it.

    ``environment``: fields set on the event's environment entry; ``served``: the release each alias now
    serves (``Ledger.record_served``; one per function of the target); ``outcome``: how the deployment
    ended (``Ledger.finish``, no failure). A stage that raised records its event alone.
    """

    environment: dict[str, Any] = field(default_factory=dict)
    served: list[ServedRelease] = field(default_factory=list)
    outcome: Outcome | None = None

    def __post_init__(self) -> None:
        if self.environment and self.outcome is not None:
            # Both update the deployment's item, and one transaction may not write an item twice.
            raise ValueError("StageWrites: an environment's entry and the outcome are not written in one stage write")

    def __bool__(self) -> bool:
        return bool(self.environment or self.served or self.outcome)


@dataclass(frozen=True)
class GateCheck:
    """The gates' answer for an environment whose lock is held, its ``CheckGates`` event not written yet: AcquireLock
    writes it with the lock's own record, in one ledger write. ``result``, or the ``error`` that ended the check
    (raised once the event is written)."""

    event: StageEvent
    result: GateResult | None
    error: Exception | None = None


class Ledger(Protocol):
    def start(
        self, record: DeploymentRecord, *, environments: dict[str, dict[str, Any]] | None = None
    ) -> DeploymentRecord | None: ...
    def record_event(self, event: StageEvent, writes: StageWrites | None = None) -> None: ...
    def update_environment(
        self,
        deployment_id: str,
        environment: str,
        fields: dict[str, Any],
        *,
        expected: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        """Set ``fields`` on the environment's entry. ``expected``: entry fields that must still hold the values
        read (a compare-and-set: two decisions cannot both be recorded), else ``EntryChangedError``, nothing
        written. ``owner``: the execution whose attempt the deployment must still be (a closing write after its
        end must not touch a new attempt's entries), else ``DeploymentNotOwnedError``, nothing written."""
        ...

    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None: ...
    def get(self, deployment_id: str) -> DeploymentRecord | None: ...
    def history(
        self, app: str | None = None, limit: int = 50, status: Outcome | None = None
    ) -> list[DeploymentRecord]: ...
    def claim(self, seed: DeploymentRecord, *, replaceable: Collection[Outcome], stale_owner: str | None) -> bool: ...
    def record_skip(self, deployment_id: str, entry: dict[str, Any]) -> None: ...
    def set_status(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        fields: dict[str, Any] | None = None,
    ) -> bool: ...
    def set_status_with_entry(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        environment: str,
        entry: dict[str, Any],
        event: StageEvent | None = None,
    ) -> bool:
        """``set_status`` then ``update_environment(environment, entry)`` (and ``record_event(event)``), in one
        write where all apply."""
        ...

    def claim_notice(self, deployment_id: str, key: str, *, now: float, lease_seconds: float) -> str | None: ...
    def record_notice(self, deployment_id: str, key: str, message_id: str) -> None: ...
    def release_notice(self, deployment_id: str, key: str, *, lease_until: float) -> None: ...
    def claim_release(self, release: ReleaseRecord) -> ReleaseRecord: ...
    def move_release(self, app: str, version: str, *, carrier: str, to: str) -> bool: ...
    def record_served(self, served: ServedRelease) -> None: ...
    def forget_served(self, function_name: str, alias: str) -> None: ...
    def served(self, function_name: str, alias: str) -> ServedRelease | None: ...


class LockTable(Protocol):
    """One lock and one queue per target, keyed by the function's canonical ARN (``FunctionId.arn``)."""

    def get(self, target: str) -> LockState | None: ...
    def try_acquire(
        self,
        target: str,
        *,
        holder: str,
        deployment_id: str,
        app: str,
        environment: str,
        lease_seconds: int,
        now: float,
        stale: LockState | None = None,
    ) -> int | None: ...
    def renew(self, target: str, *, holder: str, token: int, lease_seconds: int, now: float) -> bool: ...
    def release(self, target: str, holder: str) -> bool: ...
    def enqueue(self, target: str, waiter: Waiter) -> None: ...
    def waiters(self, target: str) -> list[Waiter]: ...
    def read(self, target: str) -> tuple[LockState | None, list[Waiter]]:
        """``get`` and ``waiters`` together, in one read."""
        ...

    def supersede(self, target: str, key: str, by: str) -> None: ...
    def remove_waiter(self, target: str, key: str) -> None: ...


class TargetOwners(Protocol):
    def claim(self, target: str, *, app: str, environment: str) -> TargetClaim | None: ...
    def owner(self, target: str) -> TargetClaim | None: ...
    def owners(self, targets: Collection[str]) -> dict[str, TargetClaim]:
        """The claims on ``targets`` that exist, by target (one read for all of them)."""
        ...

    def release(self, target: str, *, app: str) -> bool: ...


class Freezes(Protocol):
    """Operator freezes (``conveyor freeze``), one per scope: an app, or ``*`` for every app."""

    def all(self) -> list[OperatorFreeze]:
        """Every stored freeze, lifted by ``until`` or not (the caller asks ``active``)."""
        ...

    def put(self, freeze: OperatorFreeze) -> None:
        """Store ``freeze``, replacing the scope's earlier one."""
        ...

    def remove(self, scope: str) -> OperatorFreeze | None:
        """Lift the scope's freeze; the one removed, or None when there was none."""
        ...


# --- the functions Conveyor deploys -----------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    payload: Any
    function_error: str | None
    executed_version: str | None
    duration_ms: float


@dataclass(frozen=True)
class AliasState:
    """Where an alias points right now, and the revision that names exactly this state."""

    version: str
    weights: dict[str, float]
    revision_id: str

    def serves(self, version: str) -> bool:
        """Whether any of the alias's traffic goes to ``version``."""
        return self.version == version or self.weights.get(version, 0) > 0


@dataclass(frozen=True)
class FunctionState:
    """A managed function: its ARN and what its ``$LATEST`` holds (code digest and configuration)."""

    arn: str
    code_sha256: str
    memory_mb: int | None = None
    timeout_seconds: int | None = None
    environment: dict[str, str] | None = None

    def holds(self, code_sha256: str, config: FunctionConfig | None) -> bool:
        """Whether ``$LATEST`` already has this code and every setting ``config`` asks for."""
        return self.code_sha256 == code_sha256 and self.has_config(config)

    def has_config(self, config: FunctionConfig | None) -> bool:
        """Whether ``$LATEST`` already has every setting ``config`` asks for."""
        if config is None:
            return True
        current = self.environment or {}
        return (
            config.memory_mb in (None, self.memory_mb)
            and config.timeout_seconds in (None, self.timeout_seconds)
            and all(current.get(k) == v for k, v in (config.environment or {}).items())
        )


class Targets(Protocol):
    def managed_function(self, function_name: str, tag_key: str) -> FunctionState: ...
    def ensure_managed(self, function_name: str, tag_key: str) -> str: ...
    def alias_version(self, function_name: str, alias: str) -> str | None: ...
    def alias_state(self, function_name: str, alias: str) -> AliasState | None: ...
    def version_description(self, function_name: str, version: str) -> str: ...
    def update_code(
        self,
        function_name: str,
        package: PackageRef,
        config: FunctionConfig | None,
        current: FunctionState | None = None,
    ) -> None: ...
    def publish_version(self, function_name: str, code_sha256: str, description: str) -> str: ...
    def route_alias(
        self,
        function_name: str,
        alias: str,
        version: str,
        extra: dict[str, float] | None,
        *,
        revision_id: str | None = None,
    ) -> str: ...
    def delete_alias(self, function_name: str, alias: str) -> None: ...
    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation: ...


# --- the artifact bucket ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BeanstalkEnvironment:
    """One Elastic Beanstalk environment as ``DescribeEnvironments`` sees it (a live one: not terminated)."""

    name: str
    application: str
    cname: str
    status: str
    version_label: str | None
    health: str
    health_status: str | None = None
    solution_stack: str | None = None
    arn: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "Ready"

    def holds(self, cname_prefix: str) -> bool:
        """Whether this environment answers on ``<cname_prefix>.<region>.elasticbeanstalk.com``."""
        return self.cname.lower().split(".", 1)[0] == cname_prefix.lower()


@dataclass(frozen=True)
class BeanstalkHealth:
    """An environment's health: EB's color and status and, when it is not Ok, the causes EB gives."""

    color: str
    status: str | None
    causes: list[str] = field(default_factory=list)


class BeanstalkEnvironments(Protocol):
    """Elastic Beanstalk, as the Beanstalk target uses it. Every call that changes an environment returns once
    the environment is ``Ready`` again (``TargetError`` when it does not become ready)."""

    def environment(self, application: str, name: str) -> BeanstalkEnvironment | None: ...
    def ensure_managed(self, environment: BeanstalkEnvironment, tag_key: str) -> None: ...
    def version_exists(self, application: str, label: str) -> bool: ...
    def create_version(self, application: str, label: str, bucket: str, key: str, description: str) -> None: ...
    def create_environment(
        self, application: str, name: str, label: str, *, like: BeanstalkEnvironment, health_path: str, tag_key: str
    ) -> BeanstalkEnvironment: ...
    def deploy_version(self, application: str, name: str, label: str) -> BeanstalkEnvironment: ...
    def swap_cnames(self, application: str, source: str, destination: str) -> None: ...
    def health(self, application: str, name: str) -> BeanstalkHealth: ...


class ArtifactStore(Protocol):
    def read_bundle(self, bucket: str, key: str, version_id: str | None) -> bytes: ...
    def read_pipeline(self, bucket: str, app: str) -> bytes: ...
    def put_release(self, bucket: str, key: str, package: bytes, sha256_hex: str) -> str | None: ...


# --- the state machine's executions -----------------------------------------------------------------
ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
"""Statuses of an execution that takes no further step (RUNNING and PENDING_REDRIVE may)."""
IN_FLIGHT_GRACE = timedelta(seconds=900)
"""Lambda's longest timeout: a stage invocation in flight when its execution stopped runs at most this long."""


@dataclass(frozen=True)
class Ended:
    """How an execution ended, and from when none of its work can still change anything."""

    status: str
    stopped_at: datetime
    quiet_at: datetime
    """``stopped_at``, or ``IN_FLIGHT_GRACE`` later when a stage invocation was still running then:
    stopping an execution does not stop a Lambda invocation it already made."""


@dataclass(frozen=True)
class ExecutionState:
    """One execution as Step Functions describes it now (what an operator, or a rebuilt event, needs)."""

    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None


class Executions(Protocol):
    def status(self, execution_arn: str) -> str: ...
    def ended(self, execution_arn: str) -> Ended | None: ...
    def state_input(self, execution_arn: str, state: str) -> dict[str, Any] | None: ...


class TaskTokens(Protocol):
    """Answers an execution that waits on a task token (``TaskAnswerError`` if Step Functions refuses)."""

    def succeed(self, token: str, output: dict[str, Any]) -> None: ...
    def fail(self, token: str, error: str, cause: str) -> None: ...


# --- health evidence: metrics, alarms, HTTP probes --------------------------------------------------
@dataclass(frozen=True)
class VersionStats:
    """What one version of a function served through an alias over a window."""

    version: str
    invocations: int
    errors: int
    p95_ms: float | None = None
    p99_ms: float | None = None

    @property
    def error_rate_percent(self) -> float | None:
        return None if self.invocations == 0 else 100.0 * self.errors / self.invocations


class LambdaMetrics(Protocol):
    def version_stats(
        self, function_name: str, alias: str, versions: list[str], start: datetime, end: datetime
    ) -> dict[str, VersionStats]:
        """``{version: stats}`` of the alias's traffic to each version between ``start`` and ``end``."""
        ...


class Alarms(Protocol):
    def states(self, names: list[str]) -> dict[str, str]:
        """``{alarm name: StateValue}`` for the alarms that exist; a missing alarm is absent."""
        ...


@dataclass(frozen=True)
class ProbeResponse:
    status: int | None
    body: str
    latency_ms: float
    error: str | None = None


class HttpProber(Protocol):
    def fetch(self, url: str, method: str, timeout_seconds: float) -> ProbeResponse: ...


# --- notifications ----------------------------------------------------------------------------------
class Notifier(Protocol):
    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> str: ...


class EventBus(Protocol):
    def put(self, events: Sequence[LifecycleEvent]) -> int:
        """Put every event on the bus (in order, batched); the number put. ``EventPublishError`` otherwise."""
        ...
