"""A sample target app that Conveyor deploys: it greets, and answers a health probe."""

import os


def handler(event, context):
    if event.get("probe") == "health":
        return {"status": "ok", "release": os.environ.get("RELEASE", "unknown")}
    return {"message": f"hello, {event.get('name', 'world')}"}
