"""The pipeline spec an admin registers per app (``pipelines/<app>.yaml``).

Environments are data: the state machine runs one definition of "deploy to an environment"
for each entry, in order. Only targets named here can ever be deployed to.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from conveyor.errors import PipelineInvalidError
from conveyor.layout import AppName
from conveyor.validation import describe

EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:-]{1,140}$")]
AliasName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*[A-Za-z_-][A-Za-z0-9_-]*$", max_length=128)]

MAX_WAIT_SECONDS = 24 * 3600


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LambdaTarget(_Spec):
    kind: Literal["lambda"] = "lambda"
    function_name: FunctionName
    alias: AliasName = "live"


class TrafficStep(_Spec):
    """Move the alias to ``weight`` percent on the new version, then wait ``wait_seconds`` before judging."""

    weight: int = Field(ge=1, le=100)
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


Strategy = Annotated[AllAtOnce | Canary | Linear, Field(discriminator="type")]


class SyntheticCheck(_Spec):
    """Invoke the new version with ``payload``; the response must contain ``expect`` (a subset match)."""

    payload: dict[str, Any] = Field(default_factory=dict)
    expect: dict[str, Any]


class HealthSpec(_Spec):
    synthetic: SyntheticCheck | None = None
    alarms: list[Annotated[str, StringConstraints(min_length=1, max_length=255)]] = Field(
        default_factory=list, max_length=100
    )
    on_inconclusive: Literal["fail", "pass"] = Field(
        default="fail", description="what an alarm with INSUFFICIENT_DATA means; no data is never a pass by default"
    )

    @model_validator(mode="after")
    def _checks_something(self) -> HealthSpec:
        if self.synthetic is None and not self.alarms:
            raise ValueError("health needs at least one check (synthetic or alarms)")
        return self


class EnvironmentSpec(_Spec):
    name: EnvironmentName
    target: LambdaTarget
    strategy: Strategy = Field(default_factory=lambda: AllAtOnce(type="all_at_once"))
    health: HealthSpec

    def traffic_steps(self) -> list[TrafficStep]:
        return self.strategy.steps()


class Notifications(_Spec):
    on_success: bool = False


class PipelineSpec(_Spec):
    schema_version: Literal[1] = 1
    app: AppName
    environments: list[EnvironmentSpec] = Field(min_length=1, max_length=10)
    notifications: Notifications = Field(default_factory=Notifications)

    @model_validator(mode="after")
    def _unique(self) -> PipelineSpec:
        names = [env.name for env in self.environments]
        if len(set(names)) != len(names):
            raise ValueError(f"environment names must be unique, got {names}")
        targets = [(env.target.function_name, env.target.alias) for env in self.environments]
        if len(set(targets)) != len(targets):
            raise ValueError("two environments deploy to the same function alias")
        return self

    @classmethod
    def from_yaml(cls, raw: bytes | str, source: str) -> PipelineSpec:
        try:
            document = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise PipelineInvalidError(f"{source}: not valid YAML ({exc})") from exc
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
