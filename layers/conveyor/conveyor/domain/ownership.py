"""One owner per target: a function belongs to one environment of one app's pipeline.

Two pipelines moving one alias would undo each other (one's rollback restoring what the other
just released), so the first app to claim a function owns it (``TargetOwners``, a conditional
write in the ledger). ``conveyor pipeline apply`` claims a spec's targets before registering it,
and ValidateArtifact claims them again before anything is deployed (a spec copied into the bucket
by hand is held to the same rule). Both refuse with both claimants named.
"""

from __future__ import annotations

from conveyor.domain.errors import TargetClaimedError
from conveyor.domain.pipeline import ElasticBeanstalkTarget, EnvironmentSpec, LambdaTarget, PipelineSpec
from conveyor.domain.ports import TargetOwners
from conveyor.domain.target_identity import (
    BeanstalkEnvironmentId,
    FunctionId,
    FunctionRef,
    Home,
    beanstalk_environment,
    resolve_function,
)

TargetId = FunctionId | BeanstalkEnvironmentId
"""A target's canonical identity: a function, or (Elastic Beanstalk) the environment named in the spec; a
blue/green pair's idle environment is a member beside it (``resolve_members``), owned and locked with it."""


def target_field(spec: PipelineSpec, environment: EnvironmentSpec, source: str) -> str:
    """Where a target is written, for an error a person can follow: file, environment, field."""
    index = spec.environments.index(environment)
    field = "function_name" if isinstance(environment.target, LambdaTarget) else "environment"
    return f"{source}: environments[{index}] ({environment.name}).target.{field}"


def member_field(field: str, target: LambdaTarget | ElasticBeanstalkTarget, position: int) -> str:
    """Where the ``position``-th member of a target is written, given where the target is (``target_field``): a
    function of a target of several (``target.functions[i]``), or a blue/green pair's ``target.idle_environment``."""
    if isinstance(target, ElasticBeanstalkTarget):
        return field if position == 0 else f"{field.removesuffix('.environment')}.idle_environment"
    if not target.companions:
        return field
    return f"{field.removesuffix('.function_name')}.functions[{position}]"


def resolve_target(target: LambdaTarget | ElasticBeanstalkTarget, home: Home, *, field: str) -> TargetId:
    """``target`` as a canonical identity in ``home`` (``TargetIdentityError`` naming ``field``)."""
    if isinstance(target, ElasticBeanstalkTarget):
        return beanstalk_environment(target.application, target.environment, home)
    return resolve_function(target.function_name, home, field=field)


def resolve_members(environment: EnvironmentSpec, home: Home, *, field: str) -> list[TargetId]:
    """Everything ``environment``'s target moves, as canonical identities (the first is the target's own): each
    of its functions, or its Elastic Beanstalk environment and, blue/green, the idle one it swaps with (either may
    serve production: the pair has one owner, and is locked as one)."""
    target = environment.target
    if isinstance(target, ElasticBeanstalkTarget):
        idle = target.idle_environment
        pair = [] if idle is None else [beanstalk_environment(target.application, idle, home)]
        return [resolve_target(target, home, field=field), *pair]
    return [
        resolve_function(name, home, field=member_field(field, target, position))
        for position, name in enumerate(target.function_names)
    ]


def resolve_targets(spec: PipelineSpec, home: Home, *, source: str) -> dict[str, TargetId]:
    """Each environment's target as a canonical identity in ``home`` (``TargetIdentityError`` naming the field)."""
    return {
        env.name: resolve_target(env.target, home, field=target_field(spec, env, source)) for env in spec.environments
    }


def resolve_all_members(spec: PipelineSpec, home: Home, *, source: str) -> dict[str, list[TargetId]]:
    """Everything each environment's target moves (``resolve_members``), by environment: what ``spec`` owns."""
    return {env.name: resolve_members(env, home, field=target_field(spec, env, source)) for env in spec.environments}


def claim_targets(spec: PipelineSpec, home: Home, owners: TargetOwners, *, source: str) -> dict[str, TargetId]:
    """Claim every target of ``spec`` for its app; ``TargetClaimedError`` naming both claimants if one is taken.

    The claims are read first, in one call: a target already this app's, for the same environment (every
    deployment after the first), is not written again. Claims made before the refused one stay: they are
    this app's by its own spec, and a caller that registers nothing after a refusal (``pipeline apply``)
    lets go of the ones it newly took.
    """
    resolved = resolve_targets(spec, home, source=source)
    members = {env.name: resolve_members(env, home, field=target_field(spec, env, source)) for env in spec.environments}
    held = owners.owners([member.arn for env_members in members.values() for member in env_members])
    for env in spec.environments:
        field = target_field(spec, env, source)
        for position, member in enumerate(members[env.name]):
            claim = held.get(member.arn)
            if claim is None or (claim.app, claim.environment) != (spec.app, env.name):
                _claim(spec, env, member, owners, field=member_field(field, env.target, position))
    return resolved


def _claim(spec: PipelineSpec, env: EnvironmentSpec, function: TargetId, owners: TargetOwners, *, field: str) -> None:
    other = owners.claim(function.arn, app=spec.app, environment=env.name)
    if other is not None:
        raise TargetClaimedError(
            f"{field}: {_kind(function)} {function.arn} belongs to app {other.app!r} "
            f"(environment {other.environment!r}); app {spec.app!r} (environment {env.name!r}) may not deploy "
            f"to it. One {_noun(function)} has one owner: point one of them at another, or remove it from "
            f"{other.app!r}'s pipeline and apply that first"
        )


def _kind(target: TargetId) -> str:
    return "function" if isinstance(target, FunctionId) else "Elastic Beanstalk environment"


def _noun(target: TargetId) -> str:
    return "function" if isinstance(target, FunctionId) else "environment"


def with_canonical_targets(spec: PipelineSpec, resolved: dict[str, TargetId]) -> list[EnvironmentSpec]:
    """The spec's environments, each Lambda target written as its function's plain name.

    Resolved against the home, a name, a partial ARN and a full ARN are the same function; the
    stages after ValidateArtifact then call Lambda (and key the lock) with one spelling of it.
    """
    return [
        env.model_copy(update={"target": canonical_lambda_target(env.target, resolved[env.name].name)})
        if isinstance(env.target, LambdaTarget)
        else env
        for env in spec.environments
    ]


def canonical_lambda_target(target: LambdaTarget, name: str) -> LambdaTarget:
    """``target`` with each function written as its plain name (validated already: ``resolve_members``)."""
    functions = [FunctionRef.parse(member).name for member in target.functions]
    return target.model_copy(update={"function_name": name, "functions": functions})


__all__ = [
    "claim_targets",
    "resolve_all_members",
    "resolve_members",
    "resolve_targets",
    "target_field",
    "with_canonical_targets",
]
