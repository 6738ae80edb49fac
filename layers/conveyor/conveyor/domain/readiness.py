"""Before a spec is registered, everything it names must exist and be Conveyor's to use.

A target function or hook that does not exist, or lacks the managed tag (``conveyor:managed=true``: the
template's IAM conditions let Conveyor read, change and invoke only such functions), fails every
deployment at ValidateArtifact; an alarm that does not exist fails every health verdict. ``conveyor
pipeline apply`` asks all of it at once and refuses with every problem named by its field path and
resource, so the first push is not where a team learns it. Deployments still ask again (ValidateArtifact,
EvaluateHealth): a tag or an alarm can go after the spec was registered.
"""

from __future__ import annotations

from conveyor.domain.errors import PipelineNotReadyError, TargetError, TargetNotFoundError, TargetNotManagedError
from conveyor.domain.ownership import TargetId
from conveyor.domain.pipeline import ElasticBeanstalkTarget, EnvironmentSpec, LambdaTarget, PipelineSpec, TaskHookSpec
from conveyor.domain.ports import Alarms, BeanstalkEnvironments, Targets
from conveyor.domain.target_identity import FunctionRef


def _function_problem(targets: Targets, function: str, tag_key: str, what: str) -> str | None:
    try:
        targets.ensure_managed(function, tag_key)
    except TargetNotFoundError:
        return f"{what} {function!r} does not exist"
    except TargetNotManagedError:
        return f"{what} {function!r} is not tagged {tag_key}=true (Conveyor may use only managed functions)"
    except TargetError as exc:  # throttled, unreachable: not a fault of the spec, but nothing to apply it on yet
        return f"{what} {function!r} could not be read: {exc}"
    return None


def _lambda_problems(target: LambdaTarget, resolved: TargetId, targets: Targets, tag_key: str) -> list[str]:
    """Each function of the target that is missing or unmanaged (``resolved``: its first, canonical)."""
    if not target.companions:
        problem = _function_problem(targets, resolved.name, tag_key, "target function")
        return [f"target.function_name: {problem}"] if problem else []
    names = [resolved.name] + [FunctionRef.parse(name).name for name in target.companions]
    return [
        f"target.functions[{index}]: {problem}"
        for index, name in enumerate(names)
        if (problem := _function_problem(targets, name, tag_key, "target function"))
    ]


def _beanstalk_problems(target: ElasticBeanstalkTarget, beanstalk: BeanstalkEnvironments, tag_key: str) -> list[str]:
    """The spec's ``environment`` must exist and be managed; ``idle_environment`` may be missing (the first
    blue/green release creates it), but if it exists it must be managed too."""
    problems = []
    for field, name, required in (
        ("environment", target.environment, True),
        ("idle_environment", target.idle_environment, False),
    ):
        if name is None:
            continue
        env = beanstalk.environment(target.application, name)
        if env is None:
            if required:
                problems.append(
                    f"target.{field}: Elastic Beanstalk environment {target.application}/{name} does not exist"
                )
            continue
        try:
            beanstalk.ensure_managed(env, tag_key)
        except TargetError as exc:
            problems.append(f"target.{field}: {exc}")
    return problems


def missing_resources(
    spec: PipelineSpec,
    resolved: dict[str, TargetId],
    *,
    targets: Targets,
    alarms: Alarms,
    tag_key: str,
    beanstalk: BeanstalkEnvironments | None = None,
) -> list[str]:
    """Each function or alarm of ``spec`` that is missing or not managed, as ``field path: problem``.

    ``resolved``: each environment's target as its canonical function (``ownership.resolve_targets``).
    """
    problems: list[str] = []
    for index, env in enumerate(spec.environments):
        where = f"environments[{index}] ({env.name})"
        if isinstance(env.target, LambdaTarget):
            problems += [
                f"{where}.{problem}" for problem in _lambda_problems(env.target, resolved[env.name], targets, tag_key)
            ]
        elif beanstalk is not None:
            problems += [f"{where}.{problem}" for problem in _beanstalk_problems(env.target, beanstalk, tag_key)]
        for phase, hook in (("pre_traffic", env.health.pre_traffic), ("post_traffic", env.health.post_traffic)):
            if hook is not None and (problem := _function_problem(targets, hook.function_name, tag_key, "hook")):
                problems.append(f"{where}.health.{phase}.function_name: {problem}")
        for field, task_hook in _task_hooks(env):
            if problem := _function_problem(targets, task_hook.function_name, tag_key, "hook"):
                problems.append(f"{where}.{field}.function_name: {problem}")
        if env.health.alarms:
            found = alarms.states(list(env.health.alarms))
            problems += [
                f"{where}.health.alarms[{position}]: alarm {name!r} does not exist"
                for position, name in enumerate(env.health.alarms)
                if name not in found
            ]
    return problems


def _task_hooks(env: EnvironmentSpec) -> list[tuple[str, TaskHookSpec]]:
    """The task-token hooks with their field paths (``migrate``, ``migrate.down``, ``health.hooks[i]``)."""
    hooks: list[tuple[str, TaskHookSpec]] = []
    if env.migrate is not None:
        hooks.append(("migrate", env.migrate))
        if env.migrate.down is not None:
            hooks.append(("migrate.down", env.migrate.down))
    hooks += [(f"health.hooks[{position}]", hook) for position, hook in enumerate(env.health.hooks)]
    return hooks


def require_resources(
    spec: PipelineSpec,
    resolved: dict[str, TargetId],
    *,
    targets: Targets,
    alarms: Alarms,
    tag_key: str,
    source: str,
    beanstalk: BeanstalkEnvironments | None = None,
) -> None:
    """``PipelineNotReadyError`` naming every missing or unmanaged function, EB environment and missing alarm of
    ``spec`` (EB environments only given ``beanstalk``)."""
    problems = missing_resources(spec, resolved, targets=targets, alarms=alarms, tag_key=tag_key, beanstalk=beanstalk)
    if problems:
        raise PipelineNotReadyError(
            f"{source}: {len(problems)} resource(s) the spec names cannot be used, nothing was registered: "
            + "; ".join(problems)
            + f". Create them (tag functions and Beanstalk environments {tag_key}=true), then apply again"
        )
