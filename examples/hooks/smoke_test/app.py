"""A pre-/post-traffic hook: smoke-test the version under test with a few real greetings.

Conveyor invokes it with a ``HookPayload`` (app, version, environment, function, alias, the Lambda
version under test, current weight) and expects ``{"status": "pass" | "fail", "detail": "..."}``.
Like every function Conveyor may invoke, it must carry the ``conveyor:managed=true`` tag.
"""

import json

import boto3

GREETINGS = 5


def handler(event, context):
    target = f"{event['function_name']}:{event['function_version']}"
    client = boto3.client("lambda")
    failures = []
    for attempt in range(GREETINGS):
        response = client.invoke(FunctionName=target, Payload=json.dumps({"name": f"smoke-{attempt}"}).encode())
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError") or not isinstance(body, dict) or "message" not in body:
            failures.append(f"greeting {attempt + 1} answered {body}")
    if failures:
        detail = f"{len(failures)} of {GREETINGS} greetings to {target} failed: {failures[0]}"
        return {"status": "fail", "detail": detail}
    detail = f"{GREETINGS} greetings to {target} answered ({event['phase']}, {event['weight']}%)"
    return {"status": "pass", "detail": detail}
