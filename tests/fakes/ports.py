"""In-memory implementations of Conveyor's ports: Ledger, Targets, Alarms, Notifier, ArtifactStore."""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conveyor.domain.contracts import PackageRef, ServedRelease
from conveyor.domain.environment import EnvironmentStatus, may_move
from conveyor.domain.errors import (
    AliasChangedError,
    BundleInvalidError,
    DeployFailedError,
    DeploymentNotOwnedError,
    DigestMismatchError,
    EntryChangedError,
    PipelineNotFoundError,
    StatusMoveRefusedError,
    TargetNotFoundError,
    TargetNotManagedError,
    TaskAnswerError,
    TrafficShiftError,
)
from conveyor.domain.freeze import OperatorFreeze
from conveyor.domain.manifest import FunctionConfig, base64_digest
from conveyor.domain.outcome import UNFINISHED, Outcome
from conveyor.domain.ports import (
    IN_FLIGHT_GRACE,
    AliasState,
    BeanstalkEnvironment,
    BeanstalkHealth,
    Ended,
    FunctionState,
    Invocation,
    ProbeResponse,
    StageWrites,
)
from conveyor.domain.records import DeploymentRecord, LockState, ReleaseRecord, StageEvent, TargetClaim, Waiter
from conveyor.domain.timing import utcnow


class IllegalMoveError(StatusMoveRefusedError, AssertionError):
    """A stage recorded an environment status that ``may_move`` does not allow after the one recorded."""


class FakeLedger:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.events: list[StageEvent] = []
        self.releases: dict[tuple[str, str], ReleaseRecord] = {}
        self.serving: dict[tuple[str, str], ServedRelease] = {}

    def start(
        self, record: DeploymentRecord, *, environments: dict[str, dict[str, Any]] | None = None
    ) -> DeploymentRecord | None:
        existing = self.records.get(record.deployment_id)
        if existing is not None and (
            existing["execution_arn"] != record.execution_arn
            or existing["status"] not in (Outcome.IN_PROGRESS, Outcome.SKIPPED_DUPLICATE)
        ):
            return None  # DynamoLedger's condition: new, or this execution's running attempt (or duplicate verdict)
        data = record.model_dump(exclude={"events"})
        if environments is not None:
            data["environments"] = copy.deepcopy(environments)
        executions = {record.execution_arn or "-"}
        if existing is not None:
            data |= {k: existing[k] for k in ("created_at", "skipped", "skipped_count") if k in existing}
            data["built_at"] = data["built_at"] or existing.get("built_at")
            executions |= existing.get("executions", set())
        data["executions"] = executions
        data["attempts"] = len(executions)
        self.records[record.deployment_id] = data
        return DeploymentRecord.model_validate(data)

    def record_event(self, event: StageEvent, writes: StageWrites | None = None) -> None:
        self.events.append(event)
        for served in writes.served if writes is not None else []:
            self.record_served(served)
        if writes is not None and writes.environment:
            assert event.environment is not None, f"{event.stage} updates an environment but names none"
            self.update_environment(event.deployment_id, event.environment, writes.environment)
        if writes is not None and writes.outcome is not None:
            self.finish(event.deployment_id, writes.outcome)

    def update_environment(
        self,
        deployment_id: str,
        environment: str,
        fields: dict[str, Any],
        *,
        expected: dict[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        record = self.records[deployment_id]
        if owner is not None and record["execution_arn"] != owner:
            raise DeploymentNotOwnedError(f"{deployment_id}: no longer the attempt of {owner}")
        current_entry = record["environments"].get(environment, {})
        changed = sorted(name for name, value in (expected or {}).items() if current_entry.get(name) != value)
        if changed or (expected is not None and not current_entry):
            raise EntryChangedError(f"{deployment_id} {environment}: changed since it was read ({changed})")
        entry = record["environments"].setdefault(environment, {})
        if "status" in fields:
            current = EnvironmentStatus(entry["status"]) if entry.get("status") else None
            if not may_move(current, EnvironmentStatus(fields["status"])):
                raise IllegalMoveError(f"{deployment_id} {environment}: {current} may not move to {fields['status']}")
        entry.update(copy.deepcopy(fields))
        record["updated_at"] = utcnow()

    def finish(self, deployment_id: str, outcome: Outcome, failure: dict[str, Any] | None = None) -> None:
        record = self.records[deployment_id]
        record.update(status=outcome, finished_at=utcnow(), updated_at=utcnow(), failure=failure)

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        data = self.records.get(deployment_id)
        if data is None:
            return None
        events = sorted((e for e in self.events if e.deployment_id == deployment_id), key=lambda e: e.finished_at)
        return DeploymentRecord.model_validate({**data, "events": events})

    def history(self, app: str | None = None, limit: int = 50, status: Outcome | None = None) -> list[DeploymentRecord]:
        """As DynamoLedger's: the records without their stage events (``get`` reads those)."""
        records = [DeploymentRecord.model_validate(data) for data in self.records.values()]
        found = [r for r in records if (app is None or r.app == app) and (status in (None, r.status))]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    def stage_events(self, stage: str) -> list[StageEvent]:
        return [e for e in self.events if e.stage == stage]

    # --- exactly-once (same semantics as DynamoLedger's conditional writes) ---------------
    notices: dict[tuple[str, str], str]

    def claim(self, seed: DeploymentRecord, *, replaceable: Collection[Outcome], stale_owner: str | None) -> bool:
        existing = self.records.get(seed.deployment_id)
        stale = stale_owner is not None and existing is not None and existing["execution_arn"] == stale_owner
        if existing is not None and not (
            existing["execution_arn"] == seed.execution_arn
            or (stale and existing["status"] in UNFINISHED)
            or existing["status"] in replaceable
        ):
            return False
        claimed = seed.model_dump(exclude={"events"})
        # DynamoLedger's claim sets only these; the rest (built_at, package_sha256, skipped, ...) is kept.
        written = ("deployment_id", "execution_arn", "updated_at", "app", "version", "artifact", "pushed_by")
        data = claimed if existing is None else {**existing, **{k: claimed[k] for k in written}}
        data |= {"status": Outcome.IN_PROGRESS, "finished_at": None, "failure": None, "environments": {}}
        data["executions"] = data.get("executions", set()) | {seed.execution_arn or "-"}
        data["attempts"] = len(data["executions"])
        self.records[seed.deployment_id] = data
        return True

    def record_skip(self, deployment_id: str, entry: dict[str, Any]) -> None:
        record = self.records[deployment_id]
        if any(e.get("execution_arn") == entry.get("execution_arn") for e in record.get("skipped", [])):
            return  # once per execution
        record["skipped"] = [*record.get("skipped", []), dict(entry)]
        record["skipped_count"] = record.get("skipped_count", 0) + 1

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
        moved = self.set_status(deployment_id, status, owner=owner, expected=expected)
        self.update_environment(deployment_id, environment, entry)
        if event is not None:
            self.record_event(event)
        return moved

    def set_status(
        self,
        deployment_id: str,
        status: Outcome,
        *,
        owner: str,
        expected: Collection[Outcome],
        fields: dict[str, Any] | None = None,
    ) -> bool:
        record = self.records.get(deployment_id)
        if record is None or record["execution_arn"] != owner or record["status"] not in expected:
            return False
        record["status"] = status
        record.update(copy.deepcopy(fields or {}))
        return True

    def claim_notice(self, deployment_id: str, key: str, *, now: float, lease_seconds: float) -> str | None:
        notices = self.__dict__.setdefault("notices", {})
        message_id, lease_until = notices.get((deployment_id, key), ("", None))
        if message_id:
            return message_id
        if lease_until is not None and lease_until >= now:
            return ""
        notices[(deployment_id, key)] = ("", now + lease_seconds)
        return None

    def record_notice(self, deployment_id: str, key: str, message_id: str) -> None:
        self.__dict__.setdefault("notices", {})[(deployment_id, key)] = (message_id, None)

    def release_notice(self, deployment_id: str, key: str, *, lease_until: float) -> None:
        notices = self.__dict__.setdefault("notices", {})
        if notices.get((deployment_id, key)) == ("", lease_until):
            del notices[(deployment_id, key)]

    # --- a version's content, and what each alias serves (DynamoLedger's conditions) -------------
    def claim_release(self, release: ReleaseRecord) -> ReleaseRecord:
        return self.releases.setdefault((release.app, release.version), release)

    def move_release(self, app: str, version: str, *, carrier: str, to: str) -> bool:
        current = self.releases.get((app, version))
        if current is None or current.deployment_id != carrier:
            return False
        self.releases[(app, version)] = current.model_copy(update={"deployment_id": to})
        return True

    def record_served(self, served: ServedRelease) -> None:
        self.serving[(served.function_name, served.alias)] = served

    def forget_served(self, function_name: str, alias: str) -> None:
        self.serving.pop((function_name, alias), None)

    def served(self, function_name: str, alias: str) -> ServedRelease | None:
        return self.serving.get((function_name, alias))


class FakeTaskTokens:
    """Step Functions' task tokens: records each answer, or raises ``refuse`` (a ``TaskAnswerError``)."""

    def __init__(self, refuse: TaskAnswerError | None = None) -> None:
        self.refuse = refuse
        self.answers: list[tuple[str, str, Any]] = []

    def succeed(self, token: str, output: dict[str, Any]) -> None:
        self._answer(token, "success", output)

    def fail(self, token: str, error: str, cause: str) -> None:
        self._answer(token, "failure", (error, cause))

    def _answer(self, token: str, kind: str, detail: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.answers.append((token, kind, detail))


class FakeExecutions:
    """Step Functions executions: RUNNING unless ``statuses`` says otherwise; ``ended`` as ``endings`` says."""

    def __init__(self, statuses: dict[str, str] | None = None) -> None:
        self.statuses = statuses or {}
        self.endings: dict[str, Ended] = {}
        self.asked: list[str] = []
        self.entered: dict[tuple[str, str], dict[str, Any]] = {}
        """(execution, state) -> the input of the execution's first entry into that state."""

    def status(self, execution_arn: str) -> str:
        self.asked.append(execution_arn)
        return self.statuses.get(execution_arn, "RUNNING")

    def ended(self, execution_arn: str) -> Ended | None:
        self.asked.append(execution_arn)
        return self.endings.get(execution_arn)

    def state_input(self, execution_arn: str, state: str) -> dict[str, Any] | None:
        return self.entered.get((execution_arn, state))

    def stop(self, execution_arn: str, at: datetime, *, status: str = "ABORTED", in_flight: bool = False) -> None:
        """The execution ended at ``at`` (with a stage invocation still running, if ``in_flight``)."""
        self.statuses[execution_arn] = status
        quiet_at = at + IN_FLIGHT_GRACE if in_flight else at
        self.endings[execution_arn] = Ended(status=status, stopped_at=at, quiet_at=quiet_at)


class FakeLocks:
    """``LockTable`` in memory, keyed by target, with the conditions DynamoLocks puts on each write."""

    def __init__(self) -> None:
        self.locks: dict[str, LockState] = {}
        self.queues: dict[str, dict[str, Waiter]] = {}

    def get(self, target: str) -> LockState | None:
        return self.locks.get(target)

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
    ) -> int | None:
        current = self.locks.get(target) or LockState()
        if not current.free_at(now) and (
            stale is None or (current.holder, current.token) != (stale.holder, stale.token)
        ):
            return None
        token = current.token + 1
        self.locks[target] = LockState(
            holder=holder,
            deployment_id=deployment_id,
            app=app,
            environment=environment,
            token=token,
            expires_at=now + lease_seconds,
        )
        return token

    def renew(self, target: str, *, holder: str, token: int, lease_seconds: int, now: float) -> bool:
        current = self.locks.get(target)
        if current is None or current.holder != holder or current.token != token:
            return False
        self.locks[target] = current.model_copy(update={"expires_at": now + lease_seconds})
        return True

    def release(self, target: str, holder: str) -> bool:
        current = self.locks.get(target)
        if current is None or current.holder != holder:
            return False
        self.locks[target] = LockState(token=current.token)
        return True

    def enqueue(self, target: str, waiter: Waiter) -> None:
        queue = self.queues.setdefault(target, {})
        existing = queue.get(waiter.key)
        if existing is None:
            queue[waiter.key] = waiter
        else:
            queue[waiter.key] = existing.model_copy(update={"last_seen": waiter.last_seen})

    def waiters(self, target: str) -> list[Waiter]:
        return sorted(self.queues.get(target, {}).values(), key=lambda w: w.key)

    def read(self, target: str) -> tuple[LockState | None, list[Waiter]]:
        return self.get(target), self.waiters(target)

    def supersede(self, target: str, key: str, by: str) -> None:
        queue = self.queues.get(target, {})
        if key in queue and queue[key].superseded_by is None:
            queue[key] = queue[key].model_copy(update={"superseded_by": by})

    def remove_waiter(self, target: str, key: str) -> None:
        self.queues.get(target, {}).pop(key, None)


class FakeTargetOwners:
    """``TargetOwners`` in memory: the first app to claim a function owns it."""

    def __init__(self) -> None:
        self.claims: dict[str, TargetClaim] = {}
        self.asked: list[str] = []  # every target a claim was asked for, in order

    def claim(self, target: str, *, app: str, environment: str) -> TargetClaim | None:
        self.asked.append(target)
        current = self.claims.get(target)
        if current is not None and current.app != app:
            return current
        self.claims[target] = TargetClaim(target=target, app=app, environment=environment, claimed_at=utcnow())
        return None

    def owner(self, target: str) -> TargetClaim | None:
        return self.claims.get(target)

    def owners(self, targets: Collection[str]) -> dict[str, TargetClaim]:
        return {target: self.claims[target] for target in targets if target in self.claims}

    def release(self, target: str, *, app: str) -> bool:
        current = self.claims.get(target)
        if current is None or current.app != app:
            return False
        del self.claims[target]
        return True


@dataclass
class FakeFunction:
    arn: str
    tags: dict[str, str] = field(default_factory=lambda: {"conveyor:managed": "true"})
    code_sha256: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    aliases: dict[str, tuple[str, dict[str, float]]] = field(default_factory=dict)
    alias_revisions: dict[str, int] = field(default_factory=dict)
    """Bumped on every write of an alias, as Lambda's ``RevisionId``."""
    changed_since_publish: bool = False
    """As Lambda: PublishVersion answers with the last published version when ``$LATEST`` has not changed since."""


class FakeTargets:
    """Lambda functions in memory; ``responses`` maps ``name:qualifier`` to an Invocation or an exception."""

    def __init__(self) -> None:
        self.functions: dict[str, FakeFunction] = {}
        self.responses: dict[str, Invocation | Exception] = {}
        self.invocations: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_route: Exception | None = None
        self.updates: list[tuple[str, PackageRef]] = []

    def add(self, name: str, *, managed: bool = True, alias: str | None = None, version: str = "1") -> FakeFunction:
        function = FakeFunction(arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}")
        if not managed:
            function.tags = {}
        if alias is not None:
            function.code_sha256 = "old-sha"
            function.versions[version] = ("old-sha", {})
            function.aliases[alias] = (version, {})
        self.functions[name] = function
        return function

    def _get(self, name: str) -> FakeFunction:
        if name not in self.functions:
            raise TargetNotFoundError(f"target function {name!r} does not exist")
        return self.functions[name]

    def managed_function(self, function_name: str, tag_key: str) -> FunctionState:
        function = self._get(function_name)
        if function.tags.get(tag_key) != "true":
            raise TargetNotManagedError(f"target function {function_name!r} is not tagged {tag_key}=true")
        return FunctionState(
            arn=function.arn,
            code_sha256=function.code_sha256,
            memory_mb=function.config.get("MemorySize"),
            timeout_seconds=function.config.get("Timeout"),
            environment=function.config.get("Environment"),
        )

    def ensure_managed(self, function_name: str, tag_key: str) -> str:
        return self.managed_function(function_name, tag_key).arn

    def alias_version(self, function_name: str, alias: str) -> str | None:
        entry = self._get(function_name).aliases.get(alias)
        return entry[0] if entry else None

    def alias_state(self, function_name: str, alias: str) -> AliasState | None:
        function = self._get(function_name)
        entry = function.aliases.get(alias)
        if entry is None:
            return None
        return AliasState(entry[0], dict(entry[1]), str(function.alias_revisions.get(alias, 0)))

    def version_description(self, function_name: str, version: str) -> str:
        return str(self._get(function_name).versions[version][1].get("description", ""))

    def update_code(
        self,
        function_name: str,
        package: PackageRef,
        config: FunctionConfig | None,
        current: FunctionState | None = None,
    ) -> None:
        self.updates.append((function_name, package))
        function = self._get(function_name)
        function.code_sha256 = base64_digest(package.sha256)
        function.changed_since_publish = True
        if config is not None:
            settings = {"MemorySize": config.memory_mb, "Timeout": config.timeout_seconds}
            function.config.update({k: v for k, v in settings.items() if v is not None})
            function.config["Environment"] = function.config.get("Environment", {}) | (config.environment or {})

    def put_code(self, function_name: str, code_sha256: str) -> None:
        """Someone (a test) changed ``$LATEST``'s code outside ``update_code``."""
        function = self._get(function_name)
        function.code_sha256 = code_sha256
        function.changed_since_publish = True

    def publish_version(self, function_name: str, code_sha256: str, description: str) -> str:
        function = self._get(function_name)
        if function.code_sha256 != code_sha256:
            raise DeployFailedError(f"$LATEST of {function_name!r} does not hold {code_sha256}")
        if function.versions and not function.changed_since_publish:
            return list(function.versions)[-1]
        version = str(len(function.versions) + 1)
        function.versions[version] = (code_sha256, {"description": description})
        function.changed_since_publish = False
        return version

    def route_alias(
        self,
        function_name: str,
        alias: str,
        version: str,
        extra: dict[str, float] | None,
        *,
        revision_id: str | None = None,
    ) -> str:
        if self.fail_route is not None:
            raise self.fail_route
        function = self._get(function_name)
        current = str(function.alias_revisions.get(alias, 0))
        if revision_id is not None and (alias not in function.aliases or revision_id != current):
            raise AliasChangedError(f"alias {function_name}:{alias} changed since revision {revision_id}")
        function.aliases[alias] = (version, dict(extra or {}))
        function.alias_revisions[alias] = function.alias_revisions.get(alias, 0) + 1
        return str(function.alias_revisions[alias])

    def delete_alias(self, function_name: str, alias: str) -> None:
        if self.fail_route is not None:
            raise self.fail_route
        self._get(function_name).alias_revisions.pop(alias, None)
        if self._get(function_name).aliases.pop(alias, None) is None:
            raise TrafficShiftError(f"alias {function_name}:{alias} does not exist")

    def invoke(self, function_name: str, qualifier: str, payload: dict[str, Any]) -> Invocation:
        self.invocations.append((function_name, qualifier, payload))
        response = self.responses.get(f"{function_name}:{qualifier}")
        if response is None:
            raise AssertionError(f"no response programmed for {function_name}:{qualifier}")
        if isinstance(response, Exception):
            raise response
        return response


class FakeAlarms:
    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.alarm_states = dict(states or {})
        self.asked: list[list[str]] = []
        self.error: Exception | None = None  # raised by every read when set (CloudWatch unavailable)

    def states(self, names: list[str]) -> dict[str, str]:
        self.asked.append(list(names))
        if self.error is not None:
            raise self.error
        return {name: self.alarm_states[name] for name in names if name in self.alarm_states}


class FakeFreezes:
    """Operator freezes in memory, one per scope (an app or ``*``), as ``DynamoFreezes`` keeps them."""

    def __init__(self, *freezes: OperatorFreeze) -> None:
        self.stored: dict[str, OperatorFreeze] = {freeze.scope: freeze for freeze in freezes}

    def all(self) -> list[OperatorFreeze]:
        return list(self.stored.values())

    def put(self, freeze: OperatorFreeze) -> None:
        self.stored[freeze.scope] = freeze

    def remove(self, scope: str) -> OperatorFreeze | None:
        return self.stored.pop(scope, None)


class FakeNotifier:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, str]]] = []

    def publish(self, subject: str, message: str, attributes: dict[str, str]) -> str:
        self.published.append((subject, message, dict(attributes)))
        return f"message-{len(self.published)}"


class FakeArtifacts:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.releases: dict[tuple[str, str], tuple[bytes, str]] = {}

    def read_bundle(self, bucket: str, key: str, version_id: str | None) -> bytes:
        if (bucket, key) not in self.objects:
            raise BundleInvalidError(f"s3://{bucket}/{key}: the pushed object no longer exists")
        return self.objects[(bucket, key)]

    def read_pipeline(self, bucket: str, app: str) -> bytes:
        key = f"pipelines/{app}.yaml"
        if (bucket, key) not in self.objects:
            raise PipelineNotFoundError(f"no pipeline is registered for app {app!r}")
        return self.objects[(bucket, key)]

    def put_release(self, bucket: str, key: str, package: bytes, sha256_hex: str) -> str | None:
        """Written only if absent, as S3Artifacts does; the object's version id."""
        stored = self.releases.setdefault((bucket, key), (package, sha256_hex))
        if stored[1] != sha256_hex:
            raise DigestMismatchError(f"s3://{bucket}/{key} already holds another sha256")
        return f"v-{sha256_hex[:8]}"


@dataclass
class FakeEbEnvironment:
    name: str
    cname: str
    version_label: str | None
    solution_stack: str = "64bit Amazon Linux 2023 v4.6.0 running Python 3.11"


class FakeBeanstalk:
    """``BeanstalkEnvironments`` in memory: environments of one application, their CNAMEs and labels.

    A version whose label is in ``broken`` makes its environment Red; ``calls`` records every change."""

    def __init__(self, application: str = "webapp", region: str = "us-east-1") -> None:
        self.application = application
        self.region = region
        self.environments: dict[str, FakeEbEnvironment] = {}
        self.versions: dict[str, tuple[str, str]] = {}
        self.broken: set[str] = set()
        self.unmanaged: set[str] = set()
        self.calls: list[tuple[str, ...]] = []

    def add(self, name: str, label: str | None, cname_prefix: str | None = None) -> FakeEbEnvironment:
        env = FakeEbEnvironment(name, f"{cname_prefix or name}.{self.region}.elasticbeanstalk.com", label)
        self.environments[name] = env
        if label is not None:
            self.versions.setdefault(label, ("bucket", f"{label}.zip"))
        return env

    def cname_of(self, name: str) -> str:
        return self.environments[name].cname

    def environment(self, application: str, name: str) -> BeanstalkEnvironment | None:
        env = self.environments.get(name)
        if env is None or application != self.application:
            return None
        color = "Red" if env.version_label in self.broken else "Green" if env.version_label else "Grey"
        return BeanstalkEnvironment(
            name=env.name,
            application=application,
            cname=env.cname,
            status="Ready",
            version_label=env.version_label,
            health=color,
            solution_stack=env.solution_stack,
        )

    def ensure_managed(self, environment: BeanstalkEnvironment, tag_key: str) -> None:
        if environment.name in self.unmanaged:
            raise TargetNotManagedError(
                f"Elastic Beanstalk environment {environment.name} is not tagged {tag_key}=true"
            )

    def version_exists(self, application: str, label: str) -> bool:
        return label in self.versions

    def create_version(self, application: str, label: str, bucket: str, key: str, description: str) -> None:
        self.calls.append(("create_version", label))
        self.versions[label] = (bucket, key)

    def create_environment(
        self, application: str, name: str, label: str, *, like: BeanstalkEnvironment, health_path: str, tag_key: str
    ) -> BeanstalkEnvironment:
        self.calls.append(("create_environment", name, label, health_path))
        self.add(name, label).solution_stack = like.solution_stack or ""
        env = self.environment(application, name)
        assert env is not None
        return env

    def deploy_version(self, application: str, name: str, label: str) -> BeanstalkEnvironment:
        self.calls.append(("deploy_version", name, label))
        self.environments[name].version_label = label
        env = self.environment(application, name)
        assert env is not None
        return env

    def swap_cnames(self, application: str, source: str, destination: str) -> None:
        self.calls.append(("swap_cnames", source, destination))
        one, other = self.environments[source], self.environments[destination]
        one.cname, other.cname = other.cname, one.cname

    def health(self, application: str, name: str) -> BeanstalkHealth:
        env = self.environment(application, name)
        assert env is not None
        if env.health == "Red":
            return BeanstalkHealth(color="Red", status="Severe", causes=["Health check URL /health failed: HTTP 500"])
        return BeanstalkHealth(color=env.health, status="Ok" if env.health == "Green" else "No Data")


class FakeProber:
    """``HttpProber`` answering from ``answers`` (URL -> status); every URL fetched is in ``fetched``."""

    def __init__(self, answers: dict[str, int] | None = None) -> None:
        self.answers = answers or {}
        self.fetched: list[str] = []

    def fetch(self, url: str, method: str, timeout_seconds: float) -> ProbeResponse:
        self.fetched.append(url)
        status = self.answers.get(url)
        if status is None:
            return ProbeResponse(status=None, body="", latency_ms=1.0, error=f"no route to {url}")
        return ProbeResponse(status=status, body="", latency_ms=1.0)
