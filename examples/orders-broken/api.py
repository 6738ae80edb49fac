"""The orders app's API function: takes an order and answers a health probe.

The orders app is two functions built from one package: this one (handler ``api.handler``) and the
worker (``worker.handler``). Its pipeline (``examples/pipelines/orders.yaml``) releases both together.
"""

import os


def handler(event, context):
    if event.get("probe") == "health":
        return {"status": "ok", "function": "api", "release": os.environ.get("RELEASE", "unknown")}
    return {"order": event.get("order", "o-1"), "accepted": True, "release": os.environ.get("RELEASE", "unknown")}
