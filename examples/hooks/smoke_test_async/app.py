"""A step hook (``health.hooks``) that smoke-tests the version being released, reporting through its task token.

Conveyor invokes it ONCE, asynchronously, at each traffic step its ``at`` lists, with ``{"task_token": ...,
"invocation": {...}}`` (see ``examples/hooks/migrate``), and waits for ``SendTaskSuccess``/``SendTaskFailure``.
It greets the version under test a few times: any error or odd answer fails the step, and Conveyor rolls back.
Its role needs ``states:SendTaskSuccess``/``SendTaskFailure`` on Conveyor's state machine; the function needs
the ``conveyor:managed=true`` tag and ``MaximumRetryAttempts: 0`` on asynchronous invocations.
"""

import json

import boto3

GREETINGS = 5


def handler(event, context):
    token, invocation = event["task_token"], event["invocation"]
    sfn = boto3.client("stepfunctions")
    try:
        result = _smoke_test(invocation)
    except Exception as exc:
        sfn.send_task_failure(taskToken=token, error=type(exc).__name__, cause=str(exc)[:1000])
        return
    sfn.send_task_success(taskToken=token, output=json.dumps(result))


def _smoke_test(invocation):
    target = f"{invocation['function_name']}:{invocation['function_version']}"
    client = boto3.client("lambda")
    answers = []
    for attempt in range(GREETINGS):
        response = client.invoke(
            FunctionName=target, Payload=json.dumps({"probe": "health", "name": f"smoke-{attempt}"}).encode()
        )
        answers.append(json.loads(response["Payload"].read() or b"null"))
    failed = [a for a in answers if not isinstance(a, dict) or a.get("status") != "ok"]
    where = f"{target} at {invocation['weight']}% (step {invocation['step']})"
    if failed:
        return {
            "status": "fail",
            "detail": f"{len(failed)} of {GREETINGS} health probes of {where} failed: {failed[0]}",
            "output": {"answers": answers},
        }
    return {"status": "pass", "detail": f"{GREETINGS} health probes of {where} answered ok", "output": {}}
