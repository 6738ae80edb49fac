"""The sample app with a bug: a bad connection string, so its health probe reports the database down.

`make demo` pushes this build to show a failed health check and the automatic rollback.
"""

import os

DATABASE_HOST = "db.internal.invalid"  # the bug: should have come from the environment


def handler(event, context):
    if event.get("probe") == "health":
        return {"status": "degraded", "error": f"cannot reach database at {DATABASE_HOST}"}
    return {"message": f"hello, {event.get('name', 'world')}", "release": os.environ.get("RELEASE", "unknown")}
