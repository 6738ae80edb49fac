"""A migration hook for Conveyor's ``migrate`` step (and its ``migrate.down``): asynchronous, through a task token.

Conveyor's state machine invokes this function ONCE, asynchronously, with::

    {"task_token": "...", "invocation": {"hook": "schema", "phase": "migrate" | "migrate_down",
     "deployment_id": ..., "app": ..., "version": ..., "environment": ..., "function_name": ...,
     "alias": ..., "function_version": ..., "previous_version": ..., "weight": 0, "step": null,
     "timeout_seconds": ...}}

and waits (up to the hook's ``timeout_seconds``, at most 15 minutes) for it to call back with
``SendTaskSuccess(output={"status": "pass" | "fail", "detail": "...", "output": {...}})`` or
``SendTaskFailure``. This function's own role needs ``states:SendTaskSuccess``, ``states:SendTaskFailure``
and ``states:SendTaskHeartbeat`` on Conveyor's state machine (Conveyor's roles never answer for a hook), and
the function needs the ``conveyor:managed=true`` tag and ``MaximumRetryAttempts: 0`` on its asynchronous
invocations (a hook that crashes must not be run again by Lambda: report the failure instead).

The "database" here is an S3 object per environment (``MIGRATION_BUCKET``/``schema/<app>/<environment>``)
holding the schema's release; the migration moves it to the new release, the down-migration back. Every run
is journaled (``runs/<deployment>/<hook>/<phase>/<request id>``). With ``HOLD_PREFIX`` set, the migration
waits until an object ``<HOLD_PREFIX><deployment id>`` exists (a stand-in for a long backfill), sending a
heartbeat every ``POLL_SECONDS`` while it waits and counting its polls in ``progress/<deployment id>``.
"""

import json
import os
import time

import boto3

BUCKET = os.environ["MIGRATION_BUCKET"]
HOLD_PREFIX = os.environ.get("HOLD_PREFIX", "")
POLL_SECONDS = float(os.environ.get("POLL_SECONDS", "5"))
#: Leave this long before the function's own timeout to report (an unreported hook fails on States.Timeout).
MARGIN_MS = 5000


def handler(event, context):
    token, invocation = event["task_token"], event["invocation"]
    sfn, s3 = boto3.client("stepfunctions"), boto3.client("s3")
    key = f"runs/{invocation['deployment_id']}/{invocation['hook']}/{invocation['phase']}/{context.aws_request_id}"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(invocation).encode())
    try:
        if invocation["phase"] == "migrate" and HOLD_PREFIX:
            _hold(s3, sfn, token, context, f"{HOLD_PREFIX}{invocation['deployment_id']}")
        result = _migrate(s3, invocation)
    except Exception as exc:
        sfn.send_task_failure(taskToken=token, error=type(exc).__name__, cause=str(exc)[:1000])
        return
    sfn.send_task_success(taskToken=token, output=json.dumps(result))


def _hold(s3, sfn, token, context, gate):
    """Wait for the gate object, heartbeating and recording progress (polls so far) beside the gate; give up
    before the function's own timeout."""
    polls = 0
    while context.get_remaining_time_in_millis() > MARGIN_MS:
        if s3.list_objects_v2(Bucket=BUCKET, Prefix=gate).get("KeyCount", 0):
            return
        sfn.send_task_heartbeat(taskToken=token)
        polls += 1
        s3.put_object(Bucket=BUCKET, Key=f"progress/{gate.rsplit('/', 1)[-1]}", Body=str(polls).encode())
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the backfill gate {gate} never opened")


def _migrate(s3, invocation):
    key = f"schema/{invocation['app']}/{invocation['environment']}"
    try:
        before = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())["release"]
    except s3.exceptions.NoSuchKey:
        before = None
    after = invocation["version"] if invocation["phase"] == "migrate" else _previous(s3, key)
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"release": after, "previous": before}).encode())
    verb = "migrated" if invocation["phase"] == "migrate" else "migrated back"
    return {
        "status": "pass",
        "detail": f"schema of {invocation['app']} in {invocation['environment']} {verb}: {before} -> {after}",
        "output": {"schema_before": before, "schema_after": after},
    }


def _previous(s3, key):
    """The schema release before the last migration (kept beside it)."""
    try:
        return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).get("previous")
    except s3.exceptions.NoSuchKey:
        return None
