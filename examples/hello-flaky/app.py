"""The sample app with a bug that only real traffic shows: 3 in 10 greetings fail, the health probe is fine.

A synthetic check alone would pass this build; `make demo` shows the canary's per-version error
rate catching it and rolling it back within one interval.
"""

import os

_calls = {"greetings": 0}


def handler(event, context):
    if event.get("probe") == "health":
        return {"status": "ok", "release": os.environ.get("RELEASE", "unknown")}
    _calls["greetings"] += 1
    if _calls["greetings"] % 10 in (1, 4, 7):  # the bug: a cache miss path that dereferences None
        raise RuntimeError("greeting cache returned None")
    return {"message": f"hello, {event.get('name', 'world')}", "release": os.environ.get("RELEASE", "unknown")}
