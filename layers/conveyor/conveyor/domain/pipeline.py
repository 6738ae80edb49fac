"""The pipeline spec an admin registers per app (``pipelines/<app>.yaml``).

Environments are data: the state machine runs one definition of "deploy to an environment"
for each entry, in order. Only targets named here can ever be deployed to.
"""

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.freeze import MAX_FREEZE_WINDOWS, FreezeWindow
from conveyor.domain.layout import AppName
from conveyor.domain.limits import (
    MAX_PIPELINE_SPEC_BYTES,
    MAX_PIPELINE_STATE_BYTES,
    YamlInvalidError,
    json_bytes,
    load_yaml,
)
from conveyor.domain.target_identity import FunctionRef
from conveyor.domain.validation import describe
from conveyor.domain.versions import DEFAULT_VERSION_ORDER, VersionOrder

EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:-]{1,140}$")]
AliasName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]*$", max_length=128)]
BeanstalkApplicationName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")]
"""An Elastic Beanstalk application name (EB allows up to 100 characters; no slash: it is part of an ARN path)."""
BeanstalkEnvironmentName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{2,38}[A-Za-z0-9])$")]
"""An EB environment name: 4 to 40 letters, digits and hyphens, not starting or ending with a hyphen."""
CnamePrefix = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{2,61}[a-z0-9])$")]

MAX_WAIT_SECONDS = 24 * 3600
MAX_APPROVAL_SECONDS = 7 * 24 * 3600
MAX_FREEZE_WAIT_SECONDS = 8 * 3600
"""A deployment waiting out a freeze must still finish within the state machine's 12 h ``TimeoutSeconds``."""
MAX_ENVIRONMENTS = 10
MAX_ALARMS = 10
"""Alarms per environment: each one is a check whose result stays in the state (``conveyor.limits``)."""
MAX_SYNTHETIC_PAYLOAD_BYTES = 2048
MAX_SYNTHETIC_EXPECT_BYTES = 1024
AlarmName = Annotated[str, StringConstraints(pattern=r"^[ !#-\[\]-~]{1,255}$")]
"""CloudWatch alarm names: printable ASCII without quotes or backslashes (each would double in the JSON
state), at most 255 characters."""


def _bounded(document: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    size = json_bytes(document)
    if size > max_bytes:
        raise ValueError(f"{size} bytes as JSON, more than the limit of {max_bytes}")
    return document


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


MAX_FUNCTIONS = 5
"""Functions one environment's target moves together: each adds its release to the state and its calls to a step."""


def _one_target_schema(schema: dict[str, Any]) -> None:
    """The schema says what the validator accepts: ``function_name``, or ``functions`` (whose first is then the
    ``function_name``), one of them at least."""
    required = [name for name in schema.pop("required", []) if name != "function_name"]
    if required:
        schema["required"] = required
    schema["anyOf"] = [{"required": ["function_name"]}, {"required": ["functions"]}]


class LambdaTarget(_Spec):
    """One function's alias, or (``functions``) the same alias of several functions of one app, released together.

    Several functions get the same package (each keeps its own handler) and move as one: each step sets every
    alias to the same weight, health is judged across all of them, a failed verdict restores all of them, and
    the environment's one lock covers all of them. ``function_name`` is the first of ``functions``: the
    function the ledger, the lock and the notices name the target by.
    """

    model_config = ConfigDict(json_schema_extra=_one_target_schema)

    kind: Literal["lambda"] = "lambda"
    function_name: FunctionName
    functions: list[FunctionName] = Field(
        default_factory=list,
        max_length=MAX_FUNCTIONS,
        description="several functions of the app released together with one package (instead of function_name)",
    )
    alias: AliasName = "live"

    @model_validator(mode="before")
    @classmethod
    def _first_of_functions(cls, data: Any) -> Any:
        """``functions: [a, b]`` names ``a`` as ``function_name``; both given, they must agree."""
        if not isinstance(data, dict) or data.get("functions") is None:
            return data
        if not data["functions"]:
            if "function_name" in data:
                return data  # a one-function target as it is dumped: the list empty
            raise ValueError("functions: name at least one function (or give function_name)")
        first = data["functions"][0]
        if "function_name" in data and data["function_name"] != first:
            raise ValueError(
                f"give function_name or functions, not both (function_name {data['function_name']!r} is not the "
                f"first of functions)"
            )
        return {**data, "function_name": first}

    @field_validator("function_name")
    @classmethod
    def _one_unqualified_function(cls, value: str) -> str:
        """A name, partial ARN or full ARN without a qualifier (the alias is ``alias``); see target_identity."""
        FunctionRef.parse(value)
        return value

    @field_validator("functions")
    @classmethod
    def _distinct_unqualified_functions(cls, values: list[str]) -> list[str]:
        names = [FunctionRef.parse(value).name for value in values]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each function once: {', '.join(twice)} named more than once")
        return values

    @property
    def function(self) -> FunctionRef:
        return FunctionRef.parse(self.function_name)

    @property
    def function_names(self) -> list[str]:
        """Every function the target moves, ``function_name`` first."""
        return self.functions or [self.function_name]

    @property
    def companions(self) -> list[str]:
        """The functions released together with ``function_name`` (none for a one-function target)."""
        return self.function_names[1:]

    @property
    def label(self) -> str:
        """The target as a person reads it in a notice."""
        if self.companions:
            return f"{'+'.join(FunctionRef.parse(name).name for name in self.function_names)}:{self.alias}"
        return f"{self.function_name}:{self.alias}"

    def ledger_fields(self) -> dict[str, Any]:
        """How the ledger's environment entry names the target."""
        fields: dict[str, Any] = {"function_name": self.function_name, "alias": self.alias}
        if self.companions:
            fields["functions"] = self.function_names
        return fields


class ElasticBeanstalkTarget(_Spec):
    """An Elastic Beanstalk web app: a release becomes an application version of ``application``.

    ``all_at_once`` updates ``environment`` to the new version. ``blue_green`` keeps two environments,
    ``environment`` and ``idle_environment``: whichever holds the production CNAME (``cname_prefix``) is live,
    the other is idle (created from the live one's platform when missing). A release is deployed to the idle
    one and verified on its own URL, then the CNAMEs are swapped; a failed verdict swaps them back, and the
    environment that served before is kept, unchanged, until the bake ends. The ledger names the target by
    ``application`` and ``environment`` (its ``function_name`` and ``alias`` fields).
    """

    kind: Literal["elasticbeanstalk"]
    application: BeanstalkApplicationName
    environment: BeanstalkEnvironmentName = Field(description="the environment that serves production first")
    idle_environment: BeanstalkEnvironmentName | None = Field(
        default=None, description="blue_green: the second environment, created when missing"
    )
    cname_prefix: CnamePrefix | None = Field(
        default=None,
        description="blue_green: the production CNAME's prefix (<prefix>.<region>.elasticbeanstalk.com), which "
        "moves between environment and idle_environment",
    )

    @property
    def label(self) -> str:
        return f"{self.application}/{self.environment}"

    def ledger_fields(self) -> dict[str, str]:
        """The ledger's names for a target (``function_name``, ``alias``): the application and the environment."""
        return {"function_name": self.application, "alias": self.environment, "target_kind": self.kind}

    @model_validator(mode="after")
    def _pair_is_distinct(self) -> "ElasticBeanstalkTarget":
        if self.idle_environment is not None and self.idle_environment == self.environment:
            raise ValueError(f"idle_environment must differ from environment ({self.environment!r})")
        return self


def _target_kind(value: Any) -> str:
    """A target without ``kind`` is a Lambda target, as every spec written before other kinds existed."""
    kind = value.get("kind", "lambda") if isinstance(value, dict) else getattr(value, "kind", "lambda")
    return str(kind)


Target = Annotated[
    Annotated[LambdaTarget, Tag("lambda")] | Annotated[ElasticBeanstalkTarget, Tag("elasticbeanstalk")],
    Discriminator(_target_kind),
]


class TrafficStep(_Spec):
    """Move the alias to ``weight`` percent on the new version, then wait ``wait_seconds`` before judging.

    Weight 0 moves nothing: the new version is verified (synthetic invoke, pre-traffic hook) while the
    alias still sends all production traffic to the old one.
    """

    weight: int = Field(ge=0, le=100)
    wait_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS)


class AllAtOnce(_Spec):
    type: Literal["all_at_once"]
    bake_seconds: int = Field(default=0, ge=0, le=MAX_WAIT_SECONDS)

    def steps(self) -> list[TrafficStep]:
        return [TrafficStep(weight=100, wait_seconds=self.bake_seconds)]


class Canary(_Spec):
    type: Literal["canary"]
    weight: int = Field(ge=1, le=99, description="percent of traffic on the new version during the canary")
    bake_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS, description="wait at the canary weight before judging")
    final_bake_seconds: int = Field(default=0, ge=0, le=MAX_WAIT_SECONDS)

    def steps(self) -> list[TrafficStep]:
        return [
            TrafficStep(weight=self.weight, wait_seconds=self.bake_seconds),
            TrafficStep(weight=100, wait_seconds=self.final_bake_seconds),
        ]


class Linear(_Spec):
    type: Literal["linear"]
    step_percent: int = Field(ge=1, le=50)
    interval_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS)
    final_bake_seconds: int = Field(default=0, ge=0, le=MAX_WAIT_SECONDS)

    def steps(self) -> list[TrafficStep]:
        weights = list(range(self.step_percent, 100, self.step_percent))
        return [TrafficStep(weight=w, wait_seconds=self.interval_seconds) for w in weights] + [
            TrafficStep(weight=100, wait_seconds=self.final_bake_seconds)
        ]


class BlueGreen(_Spec):
    """Verify the new version with no production traffic, then switch 0 -> 100% in one step and bake.

    During the bake the old version stays published and ready: a failed verdict points the alias back
    at it in one call.
    """

    type: Literal["blue_green"]
    verify_seconds: int = Field(
        default=0, ge=0, le=MAX_WAIT_SECONDS, description="wait before verifying the idle new version"
    )
    bake_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS, description="bake at 100% with the old version ready")

    def steps(self) -> list[TrafficStep]:
        return [
            TrafficStep(weight=0, wait_seconds=self.verify_seconds),
            TrafficStep(weight=100, wait_seconds=self.bake_seconds),
        ]


Strategy = Annotated[AllAtOnce | Canary | Linear | BlueGreen, Field(discriminator="type")]


class SyntheticCheck(_Spec):
    """Invoke the new version with ``payload``; the response must contain ``expect`` (a subset match)."""

    function: FunctionName | None = Field(
        default=None,
        description="which of the target's functions is invoked (a target of several functions); default: the first",
    )

    payload: dict[str, Any] = Field(
        default_factory=dict, description=f"at most {MAX_SYNTHETIC_PAYLOAD_BYTES} bytes as JSON"
    )
    expect: dict[str, Any] = Field(description=f"at most {MAX_SYNTHETIC_EXPECT_BYTES} bytes as JSON")

    @field_validator("payload")
    @classmethod
    def _bounded_payload(cls, payload: dict[str, Any]) -> dict[str, Any]:
        return _bounded(payload, MAX_SYNTHETIC_PAYLOAD_BYTES)

    @field_validator("expect")
    @classmethod
    def _bounded_expect(cls, expect: dict[str, Any]) -> dict[str, Any]:
        return _bounded(expect, MAX_SYNTHETIC_EXPECT_BYTES)


#: The metric rules: each one can fail a verdict. The rest of ``MetricsCheck`` only tunes them.
METRIC_RULES = ("max_error_rate_percent", "max_p95_ms", "max_p99_ms", "max_error_rate_ratio", "max_latency_ratio")
#: The rules a ``metrics`` check carries when its spec writes none of ``METRIC_RULES``: an absolute error
#: limit and a comparison with the old version. Written down in README and in the JSON Schema.
DEFAULT_METRIC_RULES: dict[str, float] = {"max_error_rate_percent": 1.0, "max_error_rate_ratio": 2.0}


class MetricsCheck(_Spec):
    """Per-version AWS/Lambda metrics of the alias's traffic (``ExecutedVersion``), judged after each step.

    Absolute limits apply to the new version; the comparison limits compare it with the old version over
    the same window. A comparison fails only when the ratio is exceeded *and* the difference is larger
    than its tolerance (so 0.1% vs 0% errors, or 3 ms vs 2 ms, is not a regression).

    The rules that judge are the ones the spec writes: a spec that names any rule (``METRIC_RULES``, even
    as ``null``) gets exactly those, and an unwritten rule is off. Only a ``metrics`` check that writes no
    rule at all gets ``DEFAULT_METRIC_RULES`` (errors at most 1%, at most 2x the old version's), and
    ``pipeline apply``/``pipeline show`` announce them. So no limit the team did not write can fail its
    release unannounced.
    """

    min_invocations: int = Field(
        default=20, ge=1, le=1_000_000, description="fewer invocations of the new version: inconclusive"
    )
    window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_WAIT_SECONDS,
        description="default: the step's wait, at least the time since it (scaled like the waits on the local "
        "cloud's --time-scale)",
    )
    max_error_rate_percent: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="new version's error rate limit; 1 when no metric rule is written, null turns it off",
    )
    max_p95_ms: float | None = Field(default=None, gt=0, description="new version's p95 latency limit; off if unset")
    max_p99_ms: float | None = Field(default=None, gt=0, description="new version's p99 latency limit; off if unset")
    max_error_rate_ratio: float | None = Field(
        default=None,
        ge=1,
        description="new error rate / old error rate; 2 when no metric rule is written, null turns it off",
    )
    error_rate_tolerance_percent: float = Field(
        default=0.5, ge=0, le=100, description="points of error rate over the baseline never called a regression"
    )
    max_latency_ratio: float | None = Field(default=None, ge=1, description="new p95 / old p95; off if unset")
    latency_tolerance_ms: float = Field(
        default=25.0, ge=0, description="milliseconds over the baseline's p95 never called a regression"
    )
    _defaulted_rules: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _default_rules_only_when_none_written(
        cls, data: Any, handler: "ModelWrapValidatorHandler[MetricsCheck]"
    ) -> Any:
        defaulted = isinstance(data, dict) and not any(rule in data for rule in METRIC_RULES)
        model = handler({**DEFAULT_METRIC_RULES, **data} if defaulted else data)
        if defaulted:
            model._defaulted_rules = frozenset(DEFAULT_METRIC_RULES)
        return model

    @property
    def defaulted_rules(self) -> frozenset[str]:
        """The rules this check carries because its spec wrote none (``DEFAULT_METRIC_RULES``)."""
        return self._defaulted_rules

    @property
    def rules(self) -> dict[str, float]:
        """The rules that judge (the written ones, or the defaults), by field name."""
        return {rule: value for rule in METRIC_RULES if (value := getattr(self, rule)) is not None}


class HttpProbe(_Spec):
    """GET (or HEAD) a URL that serves the alias: expected status, optional body text, latency budget."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2048)]
    method: Literal["GET", "HEAD"] = "GET"
    expect_status: int = Field(default=200, ge=100, le=599)
    body_contains: str | None = Field(default=None, max_length=1024)
    latency_budget_ms: float = Field(default=2000, gt=0, le=60_000)
    timeout_seconds: float = Field(default=10, gt=0, le=60)


class HookSpec(_Spec):
    """A Lambda the team owns (migrations, integration tests), invoked with a ``HookPayload``.

    It must answer ``{"status": "pass" | "fail", "detail": "..."}``; an error or another answer fails.
    It must carry the managed tag: Conveyor's invoke permission is conditioned on it.
    """

    function_name: FunctionName
    qualifier: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9$_-]{1,128}$")] = "$LATEST"


MAX_HOOK_SECONDS = 15 * 60
"""A task-token hook's longest run: a Lambda function's own limit, so one invocation can do the whole job."""
MAX_STEP_HOOKS = 5
"""Step hooks per environment: the ones due at a step travel in its traffic state (``TrafficState.hooks``)."""
HookName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,63}$")]


class TaskHookSpec(_Spec):
    """A hook Lambda the team owns (a migration, an integration suite), invoked ONCE and asynchronously.

    Step Functions invokes it with ``InvocationType: Event`` and a task token, then waits: the hook reports
    with ``SendTaskSuccess`` (``{"status": "pass" | "fail", "detail": "...", "output": ...}``) or
    ``SendTaskFailure`` within ``timeout_seconds`` (and, if set, sends ``SendTaskHeartbeat`` at least every
    ``heartbeat_seconds``). Nothing waits on an HTTP response, so no SDK read timeout re-invokes a slow hook.
    The hook's payload is ``conveyor.domain.contracts.HookInvocation`` beside the ``task_token``. It must
    carry the managed tag (the state machine's invoke permission is conditioned on it), and its role, not
    Conveyor's, holds ``states:SendTaskSuccess``/``SendTaskFailure``/``SendTaskHeartbeat``.
    """

    name: HookName = Field(description="how the ledger, the notices and the payload name this hook")
    function_name: FunctionName
    qualifier: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9$_-]{1,128}$")] = "$LATEST"
    timeout_seconds: int = Field(
        default=300, ge=1, le=MAX_HOOK_SECONDS, description="the hook must report within this (at most 15 minutes)"
    )
    heartbeat_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_HOOK_SECONDS,
        description="if set, the hook must call SendTaskHeartbeat at least this often (defaults to timeout_seconds: "
        "no heartbeat needed)",
    )

    @model_validator(mode="after")
    def _heartbeat_within_timeout(self) -> "TaskHookSpec":
        """The state reads both from the spec (``HeartbeatSecondsPath``): an unset heartbeat is the timeout."""
        if self.heartbeat_seconds is None:
            object.__setattr__(self, "heartbeat_seconds", self.timeout_seconds)
        elif self.heartbeat_seconds > self.timeout_seconds:
            raise ValueError(
                f"hook {self.name!r}: heartbeat_seconds ({self.heartbeat_seconds}) is longer than its "
                f"timeout_seconds ({self.timeout_seconds})"
            )
        return self


class StepHookSpec(TaskHookSpec):
    """A task-token hook that runs at the traffic steps ``at`` names, right after the alias moved there
    (0: before any traffic, on the new version alone). A failure rolls back like a failed verdict."""

    at: list[int] = Field(min_length=1, max_length=20, description="traffic weights (percent) this hook runs at")

    @field_validator("at")
    @classmethod
    def _weights(cls, at: list[int]) -> list[int]:
        if any(not 0 <= weight <= 100 for weight in at) or len(set(at)) != len(at):
            raise ValueError(f"at must list distinct weights from 0 to 100, got {at}")
        return sorted(at)


class MigrationSpec(TaskHookSpec):
    """The ``migrate`` step: runs once after Deploy, before any traffic moves. ``down`` (optional) runs on a
    rollback of this environment, after the alias is restored, whenever the migration was started."""

    down: TaskHookSpec | None = None


class EnvironmentHealthCheck(_Spec):
    """An Elastic Beanstalk target's own health, judged at every step: the environment's health (Green/Ok
    passes; Red or Severe fails; no data is inconclusive) and an HTTP GET of ``path`` on the URL of the
    environment being judged (blue/green: the idle one's own CNAME before the swap, the production CNAME after).
    """

    path: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$", max_length=512)] = "/"
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout_seconds: float = Field(default=10, gt=0, le=60)


CheckKind = Literal["synthetic", "alarms", "metrics", "http", "pre_traffic", "post_traffic", "environment"]
#: Where each kind of check can run, for the message that refuses a step no configured check judges.
CHECKS_BY_STEP = {
    "no traffic (0%)": "synthetic, alarms, pre_traffic",
    "some traffic": "synthetic, alarms, metrics, http",
    "the last step (100%)": "synthetic, alarms, metrics, http, post_traffic",
}


def _one_or_many(schema: dict[str, Any]) -> None:
    """``synthetic`` as written: one check, or a list of them (the model holds a list)."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [items, {"type": "array", "items": items, "maxItems": MAX_FUNCTIONS}, {"type": "null"}]
    schema.pop("maxItems", None)


class HealthSpec(_Spec):
    synthetic: list[SyntheticCheck] = Field(
        default_factory=list,
        max_length=MAX_FUNCTIONS,
        description="one check (a mapping), or a list of them (one per function of a target of several functions)",
        json_schema_extra=_one_or_many,
    )
    alarms: list[AlarmName] = Field(default_factory=list, max_length=MAX_ALARMS)
    metrics: MetricsCheck | None = None
    http: HttpProbe | None = None
    pre_traffic: HookSpec | None = Field(default=None, description="run against the new version before any traffic")
    post_traffic: HookSpec | None = Field(default=None, description="run once the new version serves 100%")
    hooks: list[StepHookSpec] = Field(
        default_factory=list,
        max_length=MAX_STEP_HOOKS,
        description="task-token hooks run at chosen traffic steps (up to 15 minutes each, invoked once)",
    )
    environment: EnvironmentHealthCheck | None = Field(
        default=None, description="elasticbeanstalk targets only: the environment's health and its health path"
    )
    on_inconclusive: Literal["fail", "pass", "retry", "pause"] = Field(
        default="fail",
        description="what not enough data means (an alarm with INSUFFICIENT_DATA, too few invocations): "
        "fail, pass, judge again after another interval up to max_inconclusive_retries then fail, or pause "
        "the rollout until a person promotes (`conveyor approve`) or rolls back (`conveyor reject`) within "
        "the environment's approval.timeout_seconds; no data is never a pass by default",
    )
    max_inconclusive_retries: int = Field(default=3, ge=0, le=20)

    @field_validator("synthetic", mode="before")
    @classmethod
    def _one_check_is_a_list_of_one(cls, value: Any) -> Any:
        return [] if value is None else [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _checks_something(self) -> "HealthSpec":
        checks = (self.metrics, self.http, self.pre_traffic, self.post_traffic, self.environment)
        if all(check is None for check in checks) and not self.alarms and not self.synthetic:
            raise ValueError(
                "health needs at least one check (synthetic, alarms, metrics, http, environment or a hook)"
            )
        return self

    def checks_at(self, weight: int, *, last: bool) -> list[CheckKind]:
        """The configured checks that run at a traffic step of ``weight`` percent (``last``: the final step).

        The one rule of which check runs where, read by EvaluateHealth and by the spec's own validation:
        synthetic and alarms run at every step; metrics and the HTTP probe judge the new version's traffic,
        so only once it serves some (weight > 0); the pre-traffic hook runs at weight 0, before any traffic;
        the post-traffic hook once the new version serves 100% at the last step.
        """
        runs: list[CheckKind] = []
        if self.synthetic:
            runs.append("synthetic")
        if self.alarms:
            runs.append("alarms")
        if self.environment is not None:
            runs.append("environment")
        if weight > 0 and self.metrics is not None:
            runs.append("metrics")
        if weight > 0 and self.http is not None:
            runs.append("http")
        if weight == 0 and self.pre_traffic is not None:
            runs.append("pre_traffic")
        if last and weight == 100 and self.post_traffic is not None:
            runs.append("post_traffic")
        return runs


MAX_APPROVERS = 20
"""Entries of ``approval.approvers``: each travels in the execution's state with the spec."""
Approver = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+=,.@_:/*?-]{1,256}$")]
"""An approver: an IAM user or role name (or an assumed role's session name), an IAM user or role ARN, or an
ARN pattern with ``*`` and ``?`` (``arn:aws:iam::123456789012:role/release-*``)."""


class ApprovalSpec(_Spec):
    """People approve (``conveyor approve``) or reject (``conveyor reject``) before the environment is touched.

    Asked before the environment's lock is taken, so nobody else waits on a human. The approver is the caller's
    AWS identity (STS GetCallerIdentity), never a name they type: ``approvers`` says whose identity counts
    (empty: anyone allowed to call ``states:SendTaskSuccess`` on the state machine and write the ledger),
    ``required_approvals`` how many distinct ones are needed before the deployment goes on, and the person who
    pushed the release is refused unless ``allow_self_approval``. No answer within ``timeout_seconds`` ends the
    deployment with nothing deployed in that environment; ``on_timeout`` says how it is recorded: ``fail`` (the
    deployment FAILED, the environment APPROVAL_TIMED_OUT) or ``reject`` (recorded as a rejection by nobody, so
    a change board counts it with the rejected releases). Approving on a timeout is never offered: silence is not
    consent. The timeout also bounds a pause for a person (``health.on_inconclusive: pause``), which is always
    rolled back when nobody decides; it takes one decision (of an allowed approver, not the pusher): its traffic
    has moved, and a restore must not wait for a quorum.
    """

    required: bool = False
    timeout_seconds: int = Field(default=24 * 3600, ge=60, le=MAX_APPROVAL_SECONDS)
    approvers_note: str | None = Field(
        default=None, max_length=1000, description="shown to the approvers in the notification"
    )
    required_approvals: int = Field(
        default=1, ge=1, le=MAX_APPROVERS, description="distinct approvers needed before the deployment goes on"
    )
    approvers: list[Approver] = Field(
        default_factory=list,
        max_length=MAX_APPROVERS,
        description="who may decide: IAM user/role names, session names, IAM ARNs or ARN patterns "
        "(* and ?); empty: anyone with the permission",
    )
    allow_self_approval: bool = Field(
        default=False, description="let the identity that pushed the release approve it (refused by default)"
    )
    on_timeout: Literal["fail", "reject"] = Field(
        default="fail",
        description="what nobody deciding in time records: fail (APPROVAL_TIMED_OUT) or reject (a rejection); "
        "either way nothing is deployed there",
    )

    @model_validator(mode="after")
    def _enough_approvers(self) -> "ApprovalSpec":
        """N distinct approvers cannot come from fewer IAM users. Only a list of IAM user ARNs is counted: a
        role (every person who assumes it), a name (a role's, or a session's) or a pattern may match many."""
        users = {a for a in self.approvers if ":user/" in a and not set(a) & {"*", "?"}}
        if self.approvers and users == set(self.approvers) and len(users) < self.required_approvals:
            raise ValueError(
                f"required_approvals is {self.required_approvals} but approvers names only {len(users)} IAM "
                "user(s): no deployment could ever be approved"
            )
        return self


class EnvironmentSpec(_Spec):
    name: EnvironmentName
    target: Target
    strategy: Strategy = Field(default_factory=lambda: AllAtOnce(type="all_at_once"))
    health: HealthSpec
    approval: ApprovalSpec = Field(default_factory=ApprovalSpec)
    migrate: MigrationSpec | None = Field(
        default=None, description="a task-token hook run after Deploy and before any traffic moves"
    )

    def traffic_steps(self) -> list[TrafficStep]:
        """The strategy's plan; a pre-traffic hook (or a step hook ``at: [0]``) adds a first step at weight 0."""
        steps = self.strategy.steps()
        wants_zero = self.health.pre_traffic is not None or any(0 in hook.at for hook in self.health.hooks)
        if wants_zero and steps[0].weight != 0:
            steps = [TrafficStep(weight=0, wait_seconds=0), *steps]
        return steps

    @model_validator(mode="after")
    def _checks_fit_the_target(self) -> "EnvironmentSpec":
        """A Lambda target has no environment health; an EB target is judged by it, has no versions to
        invoke or per-version Lambda metrics, and moves traffic all at once or by a CNAME swap."""
        if isinstance(self.target, LambdaTarget):
            if self.health.environment is not None:
                raise ValueError("health.environment: only an elasticbeanstalk target has an environment's health")
            members = {FunctionRef.parse(name).name for name in self.target.function_names}
            for check in self.health.synthetic:
                if check.function is not None and FunctionRef.parse(check.function).name not in members:
                    raise ValueError(
                        f"health.synthetic.function: {check.function!r} is not one of the target's functions "
                        f"({', '.join(self.target.function_names)})"
                    )
            return self
        if self.health.environment is None:
            raise ValueError(
                "health.environment: an elasticbeanstalk target is judged by its environment's health and health "
                "path; add `environment: {path: /health}` (or the path your app answers on)"
            )
        for kind, written in (("synthetic", bool(self.health.synthetic)), ("metrics", self.health.metrics is not None)):
            if written:
                raise ValueError(f"health.{kind}: a Lambda check; an elasticbeanstalk target has no Lambda version")
        if self.strategy.type not in ("all_at_once", "blue_green"):
            raise ValueError(
                f"strategy {self.strategy.type!r}: an elasticbeanstalk target deploys all_at_once or blue_green"
            )
        if self.strategy.type == "blue_green" and (
            self.target.idle_environment is None or self.target.cname_prefix is None
        ):
            raise ValueError(
                "target: blue_green on elasticbeanstalk needs idle_environment and cname_prefix (the production "
                "CNAME that is swapped between the two environments)"
            )
        return self

    @model_validator(mode="after")
    def _every_step_judged(self) -> "EnvironmentSpec":
        """Refuse a plan with a step no configured check runs at: its verdict would always be "no health
        check ran", so every deployment would fail there (a ``blue_green`` verification judged only by
        metrics or HTTP, which need traffic; a canary judged only by a post-traffic hook)."""
        steps = self.traffic_steps()
        for index, step in enumerate(steps, start=1):
            last = index == len(steps)
            if not self.health.checks_at(step.weight, last=last):
                where = "no traffic (0%)" if step.weight == 0 else "the last step (100%)" if last else "some traffic"
                raise ValueError(
                    f"health: no configured check runs at traffic step {index} of {len(steps)} "
                    f"({step.weight}% on the new version, {self.strategy.type}), so every deployment would fail "
                    f'there with "no health check ran"; at {where} only {CHECKS_BY_STEP[where]} run: add one'
                )
        return self

    @model_validator(mode="after")
    def _hooks_at_plan_steps(self) -> "EnvironmentSpec":
        """A step hook runs where the plan moves the alias: a weight the plan never takes would never run it."""
        weights = [step.weight for step in self.traffic_steps()]
        names = [hook.name for hook in self.hooks_by_name()]
        if len(set(names)) != len(names):
            raise ValueError(
                f"hook names must be unique in an environment (migrate, its down and health.hooks): {names}"
            )
        for hook in self.health.hooks:
            missing = [weight for weight in hook.at if weight not in weights]
            if missing:
                raise ValueError(
                    f"health.hooks {hook.name!r}: at {missing} is not a step of the {self.strategy.type} plan "
                    f"(its weights: {weights})"
                )
        return self

    def hooks_by_name(self) -> list[TaskHookSpec]:
        """Every task-token hook of the environment: the migration, its down-migration, the step hooks."""
        hooks: list[TaskHookSpec] = []
        if self.migrate is not None:
            hooks.append(self.migrate)
            if self.migrate.down is not None:
                hooks.append(self.migrate.down)
        hooks.extend(self.health.hooks)
        return hooks

    def hooks_at(self, weight: int) -> list[StepHookSpec]:
        """The step hooks that run once the alias serves ``weight`` percent on the new version, in spec order."""
        return [hook for hook in self.health.hooks if weight in hook.at]


def target_keys(target: LambdaTarget | ElasticBeanstalkTarget) -> list[tuple[str, str]]:
    """What a target moves, for comparing targets within one spec (the home is not known here, and another
    account's ARN is refused anyway): its function by name, or each EB environment of its application."""
    if isinstance(target, LambdaTarget):
        names = [FunctionRef.parse(name).name for name in target.function_names]
        return [(f"lambda:{name}", f"function {name!r}") for name in names]
    envs = [target.environment] + ([target.idle_environment] if target.idle_environment else [])
    return [(f"eb:{target.application}/{env}", f"Elastic Beanstalk environment {env!r}") for env in envs]


class Notifications(_Spec):
    on_success: bool = False


class RolloutPolicy(_Spec):
    """How deployments of one app share its environments (carried in the execution's state)."""

    concurrency: Literal["queue", "supersede"] = Field(
        default="queue",
        description="queue: wait in line (FIFO) for an environment's lock; "
        "supersede: a newer artifact cancels older ones still waiting",
    )
    lock_wait_seconds: int = Field(
        default=3600, ge=60, le=MAX_WAIT_SECONDS, description="how long a deployment may wait for a lock before failing"
    )
    allow_downgrade: bool = Field(default=False, description="accept an artifact older than what is live")
    version_order: VersionOrder = Field(
        default=DEFAULT_VERSION_ORDER,
        description="semver: SemVer 2.0 precedence (other versions are refused); build_time: the manifest's "
        "created_at, then commit time (for commit-hash versions). See conveyor.versions",
    )
    freeze_windows: list[FreezeWindow] = Field(
        default_factory=list,
        max_length=MAX_FREEZE_WINDOWS,
        description="times when no deployment starts in an environment (recurring or once, each with a reason); "
        "checked once each environment's lock is held, before anything moves, with `conveyor freeze` stops",
    )
    on_freeze: Literal["wait", "refuse"] = Field(
        default="refuse",
        description="a deployment reaching a frozen environment: refuse (FAILED, DeploymentFrozenError, nothing "
        "touched) or wait for the freeze to end, at most freeze_wait_seconds, then refuse",
    )
    freeze_wait_seconds: int = Field(
        default=3600,
        ge=60,
        le=MAX_FREEZE_WAIT_SECONDS,
        description="on_freeze: wait: how long one environment may wait; a freeze known to last longer is refused "
        "at once",
    )


class PipelineSpec(RolloutPolicy):
    """The spec file; its rollout policy fields (``concurrency``...) sit at the top level."""

    schema_version: Literal[1] = 1
    app: AppName
    environments: list[EnvironmentSpec] = Field(min_length=1, max_length=MAX_ENVIRONMENTS)
    notifications: Notifications = Field(default_factory=Notifications)

    @property
    def policy(self) -> RolloutPolicy:
        return RolloutPolicy.model_validate(self.model_dump(include=set(RolloutPolicy.model_fields)))

    @model_validator(mode="after")
    def _unique(self) -> "PipelineSpec":
        names = [env.name for env in self.environments]
        if len(set(names)) != len(names):
            raise ValueError(f"environment names must be unique, got {names}")
        claimed: dict[str, str] = {}
        for env in self.environments:
            for key, what in target_keys(env.target):
                other = claimed.setdefault(key, env.name)
                if other != env.name:
                    raise ValueError(
                        f"environments {other!r} and {env.name!r} both target {what}: "
                        "a target belongs to one environment of one pipeline (one lock, one owner)"
                    )
        for index, window in enumerate(self.freeze_windows):
            for position, name in enumerate(window.environments):
                if name not in names:
                    # A misspelt environment would freeze nothing, silently.
                    raise ValueError(
                        f"freeze_windows[{index}].environments[{position}]: {name!r} is not an environment of this "
                        f"pipeline ({', '.join(names)})"
                    )
        return self

    @model_validator(mode="after")
    def _fits_the_state(self) -> "PipelineSpec":
        # Every state of the execution carries the environments: bounded as a whole, not only per field.
        size = json_bytes(self.model_dump(mode="json"))
        if size > MAX_PIPELINE_STATE_BYTES:
            raise ValueError(f"the spec is {size} bytes as JSON, more than the limit of {MAX_PIPELINE_STATE_BYTES}")
        return self

    @classmethod
    def from_yaml(cls, raw: bytes | str, source: str) -> "PipelineSpec":
        """Parse and validate a spec; every refusal is a ``PipelineInvalidError`` naming ``source``.

        The size is checked before parsing, and YAML anchors and aliases are refused, so a hostile
        spec can neither expand (a "billion laughs") nor carry more than the state machine can hold.
        """
        size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
        if size > MAX_PIPELINE_SPEC_BYTES:
            raise PipelineInvalidError(
                f"{source}: {size} bytes, more than the pipeline spec limit of {MAX_PIPELINE_SPEC_BYTES}"
            )
        try:
            document = load_yaml(raw)
        except YamlInvalidError as exc:
            raise PipelineInvalidError(f"{source}: not valid YAML ({exc})") from exc
        except RecursionError as exc:
            raise PipelineInvalidError(f"{source}: not valid YAML (nested too deeply)") from exc
        if not isinstance(document, dict):
            raise PipelineInvalidError(f"{source}: expected a mapping at the top level")
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            raise PipelineInvalidError(describe(source, exc)) from exc

    def environment(self, name: str) -> EnvironmentSpec:
        for env in self.environments:
            if env.name == name:
                return env
        raise KeyError(name)


SCHEMA_ID = "https://conveyor.dev/schemas/pipeline-v1.json"


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema of a pipeline spec file, generated from these models (defaults and descriptions
    included), for editor completion (``# yaml-language-server: $schema=...``). ``docs/pipeline.schema.json``
    is this, committed; a test regenerates it and compares."""
    schema = PipelineSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}
