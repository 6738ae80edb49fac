"""The orders app's worker function: fulfils the orders the API took (an SQS consumer on AWS)."""

import os


def handler(event, context):
    if event.get("probe") == "health":
        return {"status": "ok", "function": "worker", "release": os.environ.get("RELEASE", "unknown")}
    records = event.get("Records", [])
    return {"fulfilled": len(records), "release": os.environ.get("RELEASE", "unknown")}
