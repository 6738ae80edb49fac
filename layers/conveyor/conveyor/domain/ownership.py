"""One owner per target: a function belongs to one environment of one app's pipeline.

Two pipelines moving one alias would undo each other (one's rollback restoring what the other
just released), so the first app to claim a function owns it (``TargetOwners``, a conditional
write in the ledger). ``conveyor pipeline apply`` claims a spec's targets before registering it,
and ValidateArtifact claims them again before anything is deployed (a spec copied into the bucket
by hand is held to the same rule). Both refuse with both claimants named.
"""

from __future__ import annotations

from conveyor.domain.errors import TargetClaimedError
from conveyor.domain.pipeline import EnvironmentSpec, PipelineSpec
from conveyor.domain.ports import TargetOwners
from conveyor.domain.target_identity import FunctionId, Home, resolve_function


def target_field(spec: PipelineSpec, environment: EnvironmentSpec, source: str) -> str:
    """Where a target is written, for an error a person can follow: file, environment, field."""
    index = spec.environments.index(environment)
    return f"{source}: environments[{index}] ({environment.name}).target.function_name"


def resolve_targets(spec: PipelineSpec, home: Home, *, source: str) -> dict[str, FunctionId]:
    """Each environment's target as a canonical identity in ``home`` (``TargetIdentityError`` naming the field)."""
    return {
        env.name: resolve_function(env.target.function_name, home, field=target_field(spec, env, source))
        for env in spec.environments
    }


def claim_targets(spec: PipelineSpec, home: Home, owners: TargetOwners, *, source: str) -> dict[str, FunctionId]:
    """Claim every target of ``spec`` for its app; ``TargetClaimedError`` naming both claimants if one is taken.

    Claims made before the refused one stay: they are this app's by its own spec, and a caller that
    registers nothing after a refusal (``pipeline apply``) lets go of the ones it newly took.
    """
    resolved = resolve_targets(spec, home, source=source)
    for env in spec.environments:
        function = resolved[env.name]
        other = owners.claim(function.arn, app=spec.app, environment=env.name)
        if other is not None:
            raise TargetClaimedError(
                f"{target_field(spec, env, source)}: function {function.arn} belongs to app {other.app!r} "
                f"(environment {other.environment!r}); app {spec.app!r} (environment {env.name!r}) may not deploy "
                f"to it. One function has one owner: point one of them at another function, or remove it from "
                f"{other.app!r}'s pipeline and apply that first"
            )
    return resolved


def with_canonical_targets(spec: PipelineSpec, resolved: dict[str, FunctionId]) -> list[EnvironmentSpec]:
    """The spec's environments, each target written as its function's plain name.

    Resolved against the home, a name, a partial ARN and a full ARN are the same function; the
    stages after ValidateArtifact then call Lambda (and key the lock) with one spelling of it.
    """
    return [
        env.model_copy(update={"target": env.target.model_copy(update={"function_name": resolved[env.name].name})})
        for env in spec.environments
    ]


__all__ = ["claim_targets", "resolve_targets", "target_field", "with_canonical_targets"]
