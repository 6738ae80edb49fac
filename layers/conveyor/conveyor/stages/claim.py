"""ClaimDeployment: exactly one execution acts for a pushed object, however often it is delivered.

The deployment id is derived from the object (bucket, key, version id or etag), so every delivery
and every console re-run of it names the same deployment. The first execution to claim it (a
conditional write on the ledger) proceeds; the others end at once, recorded on the deployment as
skipped, without notifying anyone:

- the deployment is running (or queued) under another execution: a duplicate;
- it already succeeded: the artifact is live, a no-op that says so, unless the execution input
  asks ``{"conveyor": {"force": true}}`` (then a new attempt);
- it ended in failure (FAILED, ROLLED_BACK, ROLLBACK_FAILED, SUPERSEDED), or as the duplicate of
  another deployment's release (SKIPPED_DUPLICATE): a new attempt of the same deployment
  (ValidateArtifact counts attempts, and judges a duplicate again);
- its owner execution stopped without ending it (aborted, timed out): this execution takes over.
"""

from __future__ import annotations

from pydantic import ValidationError

from conveyor.domain.contracts import Claim, ClaimRequest, ExecutionOptions
from conveyor.domain.errors import ArtifactLayoutError
from conveyor.domain.layout import ArtifactKey
from conveyor.domain.outcome import ENDED, UNFINISHED, Outcome
from conveyor.domain.ports import Executions, Ledger
from conveyor.domain.pushed_object import PushedObject
from conveyor.domain.timing import utcnow
from conveyor.domain.trust import require_bounded_input, require_own_bucket
from conveyor.domain.validation import describe
from conveyor.observability import MetricUnit, logger, metrics

RETRYABLE = ENDED - {Outcome.SUCCEEDED}
"""What a new claim may replace: a deployment that ended other than live (a forced one replaces a live one too)."""


def claim_deployment(request: ClaimRequest, *, ledger: Ledger, executions: Executions, artifact_bucket: str) -> Claim:
    require_bounded_input(request.event)  # before it is parsed
    try:
        options = ExecutionOptions.from_input(request.event)
        pushed = PushedObject.from_event(request.event)
    except (ArtifactLayoutError, ValidationError) as exc:
        # Not something this stage can deduplicate: ValidateArtifact rejects it with the reason.
        reason = describe("execution input 'conveyor'", exc) if isinstance(exc, ValidationError) else str(exc)
        return Claim(deployment_id="-", decision="proceed", reason=f"not deduplicated: {reason}")
    # Another bucket's object is never claimed: ForeignBucketError goes to NotifyFailure (ledger, notification).
    require_own_bucket(pushed.bucket, pushed.key, artifact_bucket=artifact_bucket)
    logger.set_correlation_id(pushed.deployment_id)
    logger.append_keys(deployment_id=pushed.deployment_id, key=pushed.key)
    try:
        where = ArtifactKey.parse(pushed.key)
        app, version = where.app, where.version
    except ArtifactLayoutError:
        app, version = "-", "-"
    seed = pushed.ledger_record(request.execution_arn, app, version)
    replaceable = RETRYABLE | ({Outcome.SUCCEEDED} if options.force else set())

    if ledger.claim(seed, replaceable=replaceable, stale_owner=None):
        return Claim(deployment_id=pushed.deployment_id, decision="proceed", reason="claimed")

    record = ledger.get(pushed.deployment_id)
    owner = record.execution_arn if record is not None else None
    if record is not None and record.status in UNFINISHED and owner:
        status = executions.status(owner)
        if status != "RUNNING" and ledger.claim(seed, replaceable=replaceable, stale_owner=owner):
            logger.warning("took over from a stopped execution", extra={"owner": owner, "owner_status": status})
            return Claim(
                deployment_id=pushed.deployment_id,
                decision="proceed",
                reason=f"the previous execution {owner} is {status} without having ended the deployment",
                owner_execution_arn=owner,
            )

    if record is not None and record.status is Outcome.SUCCEEDED:
        decision = "already_live"
        reason = (
            f"{record.app} {record.version} is already live (deployment {record.deployment_id} succeeded); "
            'nothing to do. To deploy it again, start an execution with {"conveyor": {"force": true}} beside the event'
        )
    else:
        decision = "duplicate"
        state = record.status.value if record is not None else "being created"
        reason = f"deployment {pushed.deployment_id} is already {state} under execution {owner}"
    ledger.record_skip(
        pushed.deployment_id,
        {
            "execution_arn": request.execution_arn,
            "at": utcnow().isoformat(),
            "outcome": Outcome.SKIPPED_DUPLICATE.value if decision == "duplicate" else "ALREADY_LIVE",
            "reason": reason,
        },
    )
    metrics.add_metric(name="DuplicateDeliveries", unit=MetricUnit.Count, value=1)
    logger.info("skipped", extra={"decision": decision, "owner": owner})
    return Claim(deployment_id=pushed.deployment_id, decision=decision, reason=reason, owner_execution_arn=owner)
