"""Every patch of moto internals the local cloud makes (moto pinned at 5.2.5), one module per service.

``apply(settings)`` installs them all (idempotent) and configures them for the running cloud;
``restore()`` undoes it. ``SEAM_SIGNATURES`` (``registry``) lists every moto attribute we replace or
rely on, each registered by the module that uses it, and ``check_seams()`` verifies each still
exists with the signature we were written against, so a moto upgrade fails loudly here instead of
subtly at runtime. Each module's docstring says which seams it holds and why:

- ``awslambda``: run a version's code in a worker, weighted alias routing, async invokes and their
  retries, the ``Qualifier`` parameter, alias revisions, ``S3ObjectVersion``, preconditions, faults;
- ``stepfunctions``: time scaling, ``States.*`` iteration errors, ``SendTaskFailure``'s cause, how an
  execution ends (replacements in ``conveyor_local.executions``), one parse per definition, one
  Lambda client per region for Task states;
- ``events``: Step Functions and Lambda targets; ``s3``: bucket-policy conditions, upload checksums verified and kept;
  ``cloudwatch``: percentiles; ``dynamodb``: atomic writes and ledger faults; ``sns``: topic faults;
  ``dynamodbstreams``: a table's changes delivered to its mapped functions by a poller, not inline;
- ``elasticbeanstalk``: application versions, environments that serve their bundle, CNAMEs and their
  swap, health (the emulation is ``conveyor_local.beanstalk``);
- ``backends``: moto's dispatch listed once, no model instance kept for its dashboard, and the names
  persistence and the server rely on without patching.

Emulation that is not a patch lives beside this package: ``conveyor_local.workers`` (execution
environments), ``conveyor_local.lambda_telemetry`` (metrics and logs), ``conveyor_local.lambda_rules``
(what Lambda refuses), ``conveyor_local.executions`` (how an execution ends, status-change events),
``conveyor_local.faults`` (the fault plan), ``conveyor_local.beanstalk`` (Beanstalk environments and the
HTTP front their CNAMEs resolve through), ``conveyor_local.requests_log`` (the request counter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conveyor_local.moto_patches import (  # noqa: F401 - each module registers its seams on import
    awslambda,
    backends,
    cloudwatch,
    dynamodb,
    dynamodbstreams,
    elasticbeanstalk,
    events,
    registry,
    s3,
    sns,
    stepfunctions,
)
from conveyor_local.moto_patches.registry import (
    ORIGINALS,
    PATCHES,
    SEAM_SIGNATURES,
    STATE,
    TIME_SCALE_ENV,
    SeamMovedError,
    check_seams,
    resolve_dotted,
)
from conveyor_local.workers import DEFAULT_MAX_WORKERS_PER_VERSION, ReapingPolicy, WorkerPool

__all__ = [
    "ORIGINALS",
    "PATCHES",
    "SEAMS",
    "SEAM_SIGNATURES",
    "STATE",
    "SeamMovedError",
    "Settings",
    "apply",
    "check_seams",
    "resolve_dotted",
    "restore",
]

#: Every registered seam, once each module has registered its own.
SEAMS: tuple[str, ...] = tuple(SEAM_SIGNATURES)


@dataclass(frozen=True)
class Settings:
    """What the patches need from the running local cloud."""

    endpoint_url: str
    cache_dir: Path
    time_scale: float = 1.0
    max_workers_per_version: int = DEFAULT_MAX_WORKERS_PER_VERSION
    reaping: ReapingPolicy = field(default_factory=ReapingPolicy)
    #: The Beanstalk front's port (``conveyor_local.beanstalk.Front``); 0 picks a free one.
    beanstalk_front_port: int = 0


def apply(settings: Settings) -> WorkerPool:
    """Install every patch (once) and (re)configure them; returns the worker pool now in use."""
    from conveyor_local.beanstalk import CLOUD as BEANSTALK
    from conveyor_local.faults import FAULTS_FILE, FaultPlan

    with registry.CONFIG_LOCK:
        problems = check_seams()
        if problems:
            raise SeamMovedError("\n".join(problems))
        registry.install()
        backends.forget_tracked_models()
        old_pool = STATE.get("pool")
        if old_pool is not None:
            old_pool.shutdown()
        # The stages scale what they derive from the spec's waits (metric windows, approval expiry) and show
        # both times; on AWS the variable is absent and the scale is 1.
        scale = {TIME_SCALE_ENV: repr(settings.time_scale)} if settings.time_scale != 1.0 else {}
        # A Beanstalk CNAME resolves nowhere: the workers reach it through the local cloud's front, as a proxy.
        BEANSTALK.configure(settings.cache_dir, settings.beanstalk_front_port)
        pool = WorkerPool(
            settings.endpoint_url,
            settings.cache_dir,
            settings.max_workers_per_version,
            reaping=settings.reaping,
            cloud_environment={**scale, **BEANSTALK.proxy_environment()},
        )
        STATE.update(
            pool=pool, time_scale=settings.time_scale, faults=FaultPlan(settings.cache_dir.parent / FAULTS_FILE)
        )
        return pool


def restore() -> None:
    """Undo ``apply`` (kills workers and Beanstalk instances); for in-process use such as tests."""
    from conveyor_local.beanstalk import CLOUD as BEANSTALK

    with registry.CONFIG_LOCK:
        pool = STATE.pop("pool", None)
        if pool is not None:
            pool.shutdown()
        BEANSTALK.shutdown()
        registry.uninstall()
